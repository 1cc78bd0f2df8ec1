// Writes random array pairs (.npy) and their CompareArrays results (JSON)
// for tests/python/test_drift_metrics.py, which recomputes every metric with
// numpy. Skipped unless DRIFTSCOPE_DRIFT_EXPORT_DIR is set.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/drift/array_drift.h"
#include "engine/drift/report_io.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

// A minimal .npy 1.0 writer, so this test does not depend on engine/io.
bool WriteNpyFile(const std::string& path, const NdArray& a) {
  std::vector<std::string> dims;
  for (int64_t d : a.shape()) dims.push_back(absl::StrCat(d));
  std::string shape = absl::StrJoin(dims, ", ");
  if (dims.size() == 1) shape += ",";
  std::string header =
      absl::StrCat("{'descr': '", a.dtype() == DType::kFloat32 ? "<f4" : "<f8",
                   "', 'fortran_order': False, 'shape': (", shape, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.put(static_cast<char>(len & 0xFF));
  f.put(static_cast<char>(len >> 8));
  f << header;
  f.write(reinterpret_cast<const char*>(a.raw()), a.nbytes());
  return static_cast<bool>(f);
}

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
double Uniform(uint64_t i) {
  return static_cast<double>(Mix(i) >> 11) * 0x1p-53;
}

// Reference values over several magnitudes; `a` = ref·(1 + noise), some
// exact copies, a few zeros, and optionally NaN/Inf sprinkled in.
template <typename TA, typename TR>
void MakeCase(std::vector<int64_t> shape, uint64_t seed, double noise,
              bool nonfinite, NdArray* a, NdArray* r) {
  *a = NdArray(DTypeOf<TA>(), shape);
  *r = NdArray(DTypeOf<TR>(), shape);
  TA* ap = a->data<TA>();
  TR* rp = r->data<TR>();
  for (int64_t i = 0; i < a->size(); ++i) {
    const uint64_t k = seed * 1000003 + static_cast<uint64_t>(i) * 4;
    const double mag = std::ldexp(1.0, static_cast<int>(Uniform(k) * 20) - 10);
    const double rv = (Uniform(k + 1) * 2 - 1) * mag;
    const double u = Uniform(k + 2);
    double av = rv * (1 + noise * (Uniform(k + 3) * 2 - 1));
    if (u < 0.2) av = rv;
    rp[i] = static_cast<TR>(u > 0.97 ? 0.0 : rv);
    ap[i] = static_cast<TA>(u > 0.985 ? 0.0 : av);
    if (nonfinite && u < 0.01) {
      const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                                 std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity()};
      const uint64_t w = Mix(k + 5);
      if (w & 1) ap[i] = static_cast<TA>(specials[(w >> 1) % 3]);
      if (w & 8) rp[i] = static_cast<TR>(specials[(w >> 4) % 3]);
    }
  }
}

// Disabled in the plain test run: it writes files for
// tests/python/test_drift_metrics.py, which runs it with
// --gtest_also_run_disabled_tests and the directory set.
TEST(DriftExportTest, DISABLED_WritesArraysAndMetricsForNumpy) {
  const char* dir = std::getenv("DRIFTSCOPE_DRIFT_EXPORT_DIR");
  ASSERT_NE(dir, nullptr) << "set DRIFTSCOPE_DRIFT_EXPORT_DIR";
  struct Case {
    std::string name;
    NdArray a, r;
    DriftOptions options;
  };
  std::vector<Case> cases(5);
  cases[0].name = "f32_seq";
  MakeCase<float, float>({13, 17, 9}, 1, 1e-6, false, &cases[0].a, &cases[0].r);
  cases[1].name = "f32_nonfinite";
  MakeCase<float, float>({40, 7, 33}, 2, 3e-5, true, &cases[1].a, &cases[1].r);
  cases[1].options.atol = 1e-6;
  cases[1].options.rtol = 1e-4;
  cases[1].options.max_ulp = 500;
  cases[2].name = "f64_flat";
  MakeCase<double, double>({5000}, 3, 1e-12, false, &cases[2].a, &cases[2].r);
  cases[3].name = "f32_vs_f64";
  MakeCase<float, double>({6, 50, 11}, 4, 1e-7, false, &cases[3].a,
                          &cases[3].r);
  cases[3].options.rel_floor = 1e-3;
  cases[4].name = "f64_vs_f32_2d";
  MakeCase<double, float>({300, 7}, 5, 1e-5, true, &cases[4].a, &cases[4].r);

  std::vector<std::string> entries;
  for (const Case& c : cases) {
    absl::StatusOr<ArrayDrift> d = CompareArrays(c.a, c.r, c.options);
    ASSERT_TRUE(d.ok()) << d.status();
    const std::string base = absl::StrCat(dir, "/", c.name);
    ASSERT_TRUE(WriteNpyFile(base + "_a.npy", c.a));
    ASSERT_TRUE(WriteNpyFile(base + "_ref.npy", c.r));
    entries.push_back(absl::StrCat(
        "{\"name\":\"", c.name, "\",\"atol\":", c.options.atol,
        ",\"rtol\":", c.options.rtol, ",\"max_ulp\":",
        c.options.max_ulp ? absl::StrCat(*c.options.max_ulp) : "null",
        ",\"rel_floor\":", c.options.rel_floor,
        ",\"drift\":", ArrayDriftToJson(*d), "}"));
  }
  std::ofstream f(absl::StrCat(dir, "/cases.json"));
  f << "[" << absl::StrJoin(entries, ",\n") << "]\n";
  ASSERT_TRUE(static_cast<bool>(f));
}

}  // namespace
}  // namespace driftscope
