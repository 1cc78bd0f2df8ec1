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
// - float32: each framework's float32 result carries its own rounding error
//   of the same order, so the engine's float32 is compared with the Keras
//   float64 result (the truth here) and must be at most 4 times as far from
//   it as Keras' own float32 result is, plus 1e-6 for tensors on which Keras
//   happens to be nearly exact: "at least as accurate as Keras float32".
// Relative errors use a floor, |a - r| / max(|r|, 1e-3 * max|r|), so that
// elements that cancel to ~0 are measured against the tensor's scale.
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
inline constexpr double kF32VsKerasFactor = 4.0;
inline constexpr double kF32AbsSlack = 1e-6;
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

template <typename T>
RelError MaxRel(const T* actual, const NdArray& ref) {
  double scale = 0;
  for (int64_t i = 0; i < ref.size(); ++i)
    scale = std::max(scale, std::fabs(ref.at(i)));
  const double floor = std::max(kRelFloor * scale, 1e-300);
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
// case's f64 directory (and, for float32 runs, against Keras' own float32
// error from the f32 directory). Returns the engine's max relative error
// against Keras float64.
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
    const NdArray ref32 = Load(dir32, name);
    const RelError keras = MaxRel(Values<double>(ref32).data(), ref64);
    const double tol = kF32VsKerasFactor * keras.max_rel + kF32AbsSlack;
    EXPECT_LE(e.max_rel, tol)
        << what << " " << name << ": float32 max rel error vs Keras float64 "
        << e.max_rel << " at flat index " << e.worst << " (engine " << e.actual
        << ", Keras f64 " << e.ref << "); Keras float32's own "
        << "error is " << keras.max_rel << ", tolerance " << tol;
  }
  return e.max_rel;
}

}  // namespace golden
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_ENGINE_GOLDEN_GOLDEN_UTIL_H_
