// The engine's Eigen GEMM (Eigen's blocking, packing and kernel called step
// by step, with C zeroed block by block) gives exactly the bits of Eigen's
// product expression, at every ISA level, in both precisions, for every
// transpose combination, beta 0 and 1, padded strides and shapes that make
// Eigen block the depth, the rows and the columns.
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cpu/kernel_table.h"
#include "gtest/gtest.h"
#include "tests/engine/numerics/test_fill.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Fill;

template <typename T>
void ExpectSameBits(GemmFn<T> gemm, GemmFn<T> reference, const char* isa, int m,
                    int n, int k) {
  const int pad = 3;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad;
      const int ldc = n + pad;
      const std::vector<T> a = Fill<T>(int64_t{ta ? k : m} * lda, 1);
      const std::vector<T> b = Fill<T>(int64_t{tb ? n : k} * ldb, 2);
      for (const T beta : {T(0), T(1)}) {
        std::vector<T> want = Fill<T>(int64_t{m} * ldc, 3), got = want;
        reference(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, beta,
                  want.data(), ldc);
        gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, beta, got.data(),
             ldc);
        ASSERT_EQ(0,
                  std::memcmp(want.data(), got.data(), want.size() * sizeof(T)))
            << isa << " " << sizeof(T) * 8 << "-bit m=" << m << " n=" << n
            << " k=" << k << " ta=" << ta << " tb=" << tb << " beta=" << beta;
      }
    }
  }
}

class EigenBlockedGemmTest
    : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(EigenBlockedGemmTest, SameBitsAsEigensProductExpression) {
  const auto [m, n, k] = GetParam();
  for (const Isa isa :
       {Isa::kX86_64, Isa::kX86_64_V3, Isa::kX86_64_V4, Isa::kNative}) {
    const absl::StatusOr<const CpuKernelTable*> table = KernelsFor(isa);
    if (!table.ok()) continue;  // a level this CPU lacks
    const CpuKernelTable& t = **table;
    ExpectSameBits<float>(t.sgemm, t.sgemm_reference, t.isa, m, n, k);
    ExpectSameBits<double>(t.dgemm, t.dgemm_reference, t.isa, m, n, k);
  }
}

TEST(EigenBlockingTest, BlockSizesAreFixedNotTheCpusCaches) {
  // Eigen blocks from the fixed cache sizes of kernel_table.h, so every CPU
  // of a level blocks, and therefore rounds, alike. Pinned here: the values
  // are the same on any machine that runs this test (the native level,
  // built for its build host, is left out).
  struct Want {
    const char* isa;
    int m, n, k;
    int64_t f_kc, f_mc, f_nc, d_kc, d_mc, d_nc;
  };
  const Want wants[] = {
      {"x86-64", 64, 96, 3000, 1008, 96, 64, 752, 96, 64},
      {"x86-64", 4096, 4096, 4096, 824, 4096, 228, 688, 4096, 140},
      {"x86-64-v3", 64, 512, 256, 256, 264, 64, 256, 180, 64},
      {"x86-64-v3", 4096, 4096, 4096, 416, 4096, 456, 376, 4096, 256},
      {"x86-64-v4", 64, 512, 256, 256, 288, 64, 256, 192, 64},
      {"x86-64-v4", 64, 96, 3000, 752, 96, 64, 752, 96, 64},
      {"x86-64-v4", 4096, 4096, 4096, 824, 4096, 228, 824, 4096, 116},
  };
  int checked = 0;
  for (const Isa isa : {Isa::kX86_64, Isa::kX86_64_V3, Isa::kX86_64_V4}) {
    const absl::StatusOr<const CpuKernelTable*> table = KernelsFor(isa);
    if (!table.ok()) continue;  // a level this CPU lacks
    const CpuKernelTable& t = **table;
    for (const Want& w : wants) {
      if (std::string(w.isa) != t.isa) continue;
      int64_t kc = 0, mc = 0, nc = 0;
      t.sblocking(w.m, w.n, w.k, &kc, &mc, &nc);
      EXPECT_EQ(std::make_tuple(kc, mc, nc),
                std::make_tuple(w.f_kc, w.f_mc, w.f_nc))
          << t.isa << " float m=" << w.m << " n=" << w.n << " k=" << w.k;
      t.dblocking(w.m, w.n, w.k, &kc, &mc, &nc);
      EXPECT_EQ(std::make_tuple(kc, mc, nc),
                std::make_tuple(w.d_kc, w.d_mc, w.d_nc))
          << t.isa << " double m=" << w.m << " n=" << w.n << " k=" << w.k;
      ++checked;
    }
  }
  EXPECT_GE(checked, 2);  // x86-64 runs on every x86-64 CPU
}

// Context::Gemm sends Eigen no product with m == 1, n == 1 or
// m + n + k < 24 (NeedsPlainLoop), so neither does this test.
INSTANTIATE_TEST_SUITE_P(Shapes, EigenBlockedGemmTest,
                         ::testing::Values(std::make_tuple(64, 512, 256),
                                           std::make_tuple(64, 256, 1024),
                                           std::make_tuple(1000, 100, 256),
                                           std::make_tuple(64, 96, 3000),
                                           std::make_tuple(33, 517, 70),
                                           std::make_tuple(7, 40, 2049),
                                           std::make_tuple(300, 700, 40),
                                           std::make_tuple(2, 3, 30),
                                           std::make_tuple(130, 96, 1000),
                                           std::make_tuple(500, 48, 5)));

}  // namespace
}  // namespace driftscope
