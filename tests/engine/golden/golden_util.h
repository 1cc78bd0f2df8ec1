// Helpers shared by the Keras/PyTorch golden tests: loading the committed
// .npy goldens and the error measure and tolerances they are judged by.
//
// Tolerances (the argument, once):
// - float64: the engine and Keras compute the same formulas in double; only
//   summation order, libm vs Eigen transcendental functions and the place of
//   a bias add differ, each worth a few ulp (1e-16) per operation, amplified
//   by at most a few orders of magnitude over 5 timesteps and 6 training
//   steps. 1e-10 relative is therefore a claim of "same math"; any formula
//   difference (gate order, a Keras constant, an epsilon's place) shows up
//   far above it.
// - float32: measured normwise, max|a - r| / max|r| against the Keras
//   float64 result r (the truth here), because float32 rounding of sums and
//   of cancelling terms is absolute at the tensor's scale, not relative to
//   each element. Keras' own float32 results are within 1.2e-6 of its
//   float64 ones on every golden tensor (layer and training cases); the
//   bound 1e-5 (~170 ulp at the tensor's scale) leaves 8x headroom for a
//   different but equally valid summation order, while a formula error (wrong
//   gate, constant or derivative) is >= 1e-3. Small formula differences
//   below float32 resolution are the float64 test's job.
// float64 errors are relative per element with a floor,
// |a - r| / max(|r|, 1e-3 * max|r|), so that elements that cancel to ~0 are
// measured against the tensor's scale.
// Not thread-safe (plain functions over test data).
#ifndef DRIFTSCOPE_TESTS_ENGINE_GOLDEN_GOLDEN_UTIL_H_
#define DRIFTSCOPE_TESTS_ENGINE_GOLDEN_GOLDEN_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/ndarray.h"
#include "engine/io/npy.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace golden {

inline constexpr double kF64RelTol = 1e-10;
inline constexpr double kF32NormTol = 1e-5;
inline constexpr double kRelFloor = 1e-3;

inline std::string GoldenDir(const std::string& kind, const std::string& name,
                             bool fp64) {
  return absl::StrCat(DRIFTSCOPE_SOURCE_DIR, "/tests/golden/model/", kind, "/",
                      name, fp64 ? "/f64/" : "/f32/");
}

// Loads dir + name + ".npy"; a failure is a test failure, and the returned
// array is then empty.
inline NdArray Load(const std::string& dir, const std::string& name) {
  absl::StatusOr<NdArray> a = ReadNpy(dir + name + ".npy");
  EXPECT_TRUE(a.ok()) << dir << name << ": " << a.status();
  return a.ok() ? *std::move(a) : NdArray();
}

template <typename T>
std::vector<T> Values(const NdArray& a) {
  std::vector<T> v(static_cast<size_t>(a.size()));
  for (int64_t i = 0; i < a.size(); ++i) v[i] = static_cast<T>(a.at(i));
  return v;
}

struct RelError {
  double max_rel = 0;
  int64_t worst = 0;
  double actual = 0, ref = 0;
};

// floor_fraction 1 gives the normwise error max|a - r| / max|r|.
template <typename T>
RelError MaxRel(const T* actual, const NdArray& ref,
                double floor_fraction = kRelFloor) {
  double scale = 0;
  for (int64_t i = 0; i < ref.size(); ++i)
    scale = std::max(scale, std::fabs(ref.at(i)));
  const double floor = std::max(floor_fraction * scale, 1e-300);
  RelError e;
  for (int64_t i = 0; i < ref.size(); ++i) {
    const double a = static_cast<double>(actual[i]);
    const double r = ref.at(i);
    double rel = std::fabs(a - r) / std::max(std::fabs(r), floor);
    if (std::isnan(rel)) rel = INFINITY;
    if (rel > e.max_rel || i == 0) {
      e.max_rel = rel;
      e.worst = i;
      e.actual = a;
      e.ref = r;
    }
  }
  return e;
}

// Checks `actual` (count values) against the golden tensor `name` in the
// case's f64 directory with the tolerance of T (dir32 supplies Keras' own
// float32 result for the failure message). Returns the engine's error as
// measured for T.
template <typename T>
double ExpectMatchesKeras(const std::string& what, const T* actual,
                          int64_t count, const std::string& dir64,
                          const std::string& dir32, const std::string& name) {
  const NdArray ref64 = Load(dir64, name);
  if (ref64.size() == 0 && count != 0) return INFINITY;
  EXPECT_EQ(count, ref64.size()) << what << " " << name << " element count";
  if (count != ref64.size()) return INFINITY;
  const RelError e = MaxRel(actual, ref64);
  if (std::is_same_v<T, double>) {
    EXPECT_LE(e.max_rel, kF64RelTol)
        << what << " " << name << ": float64 max rel error " << e.max_rel
        << " at flat index " << e.worst << " (engine " << e.actual << ", Keras "
        << e.ref << ")";
  } else {
    // Keras' own float32 error is in the message to put the engine's in
    // context; it is not part of the bound.
    const RelError keras =
        MaxRel(Values<double>(Load(dir32, name)).data(), ref64, 1.0);
    const RelError norm = MaxRel(actual, ref64, 1.0);
    EXPECT_LE(norm.max_rel, kF32NormTol)
        << what << " " << name << ": float32 normwise error vs Keras float64 "
        << norm.max_rel << " at flat index " << norm.worst << " (engine "
        << norm.actual << ", Keras f64 " << norm.ref
        << "); Keras float32's own normwise error is " << keras.max_rel;
    return norm.max_rel;
  }
  return e.max_rel;
}

}  // namespace golden
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_ENGINE_GOLDEN_GOLDEN_UTIL_H_
