// Context::Pack / GemmPacked: a right operand packed once gives, product
// after product, exactly the bits of Context::Gemm on the unpacked operand,
// for every profile, ISA level, precision and shape class (Eigen's k and
// column blocking, the fixed 512-column tiles, the plain-loop shapes).
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "engine/numerics/context.h"
#include "gtest/gtest.h"
#include "tests/engine/numerics/test_fill.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Fill;

// Products of `steps` different A's with one B: through Gemm, and through
// one Pack and GemmPacked, each in its own Context (sr=on draws from a
// stream that advances per product, the same in both).
template <typename T>
void ExpectPackedMatchesGemm(const std::string& profile_text, int m, int n,
                             int k, int ldb_pad) {
  const absl::StatusOr<Profile> profile = Profile::Parse(profile_text);
  ASSERT_TRUE(profile.ok()) << profile.status();
  if (!Context::Check(*profile).ok()) return;  // a level this CPU lacks
  const int ldb = n + ldb_pad, steps = 3;
  const std::vector<T> b = Fill<T>(static_cast<int64_t>(k) * ldb, 7);
  Context plain(*profile, 42), packed(*profile, 42);
  PackedB<T> pb;
  packed.Pack<T>(m, n, k, b.data(), ldb, &pb);
  for (int s = 0; s < steps; ++s) {
    const std::vector<T> a = Fill<T>(static_cast<int64_t>(m) * k, 100 + s);
    std::vector<T> want(static_cast<size_t>(m) * n, T(3));
    std::vector<T> got(want.size(), T(-5));
    plain.Gemm<T>(false, false, m, n, k, a.data(), k, b.data(), ldb, T(0),
                  want.data(), n);
    packed.GemmPacked<T>(a.data(), k, pb, got.data(), n);
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(T)))
        << profile_text << " m=" << m << " n=" << n << " k=" << k << " product "
        << s;
  }
}

class PackedGemmTest
    : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(PackedGemmTest, SameBitsAsGemmForEveryProfile) {
  const auto [m, n, k] = GetParam();
  for (const char* profile :
       {"fp32", "fp32-sse2", "fp32-avx2", "fp32-avx512", "fp32,isa=native",
        "fp32,threads=3", "tf32", "bf16", "fp16", "fp32,gemm=pairwise",
        "fp32,gemm=split-k=3", "fp32,threads=2,reduce=threads", "fp32,sr=on"}) {
    ExpectPackedMatchesGemm<float>(profile, m, n, k, 0);
    ExpectPackedMatchesGemm<float>(profile, m, n, k, 5);
  }
  for (const char* profile : {"ref64", "fp64,isa=x86-64", "fp64,isa=x86-64-v3",
                              "fp64,isa=x86-64-v4", "fp64,threads=3"}) {
    ExpectPackedMatchesGemm<double>(profile, m, n, k, 0);
    ExpectPackedMatchesGemm<double>(profile, m, n, k, 3);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PackedGemmTest,
    ::testing::Values(
        // The recurrent products of the benchmark models (h·R, δA·Rᵀ).
        std::make_tuple(64, 1024, 256), std::make_tuple(64, 256, 1024),
        std::make_tuple(32, 256, 64), std::make_tuple(32, 64, 256),
        std::make_tuple(32, 128, 32),
        // Depth blocking (k split into Eigen's kc), row blocking, tails.
        std::make_tuple(7, 517, 2049), std::make_tuple(33, 1030, 70),
        std::make_tuple(100, 96, 3000), std::make_tuple(300, 700, 40),
        // A last tile of one column, and the plain-loop shapes.
        std::make_tuple(16, 513, 40), std::make_tuple(4, 12, 3),
        std::make_tuple(1, 64, 33), std::make_tuple(6, 1, 9)));

TEST(PackedGemmTest, PacksForEigensKernelsOnly) {
  const std::vector<float> b = Fill<float>(256 * 1024, 1);
  PackedB<float> pb;
  Context(*Profile::Parse("fp32"))
      .Pack<float>(64, 1024, 256, b.data(), 1024, &pb);
  EXPECT_TRUE(pb.packed());
  // Shapes the plain loop computes, and profiles that round or reorder.
  Context(*Profile::Parse("fp32"))
      .Pack<float>(1, 1024, 256, b.data(), 1024, &pb);
  EXPECT_FALSE(pb.packed());
  for (const char* profile :
       {"fp32,gemm=pairwise", "tf32", "fp32,sr=on", "fp32-nondet"}) {
    Context(*Profile::Parse(profile))
        .Pack<float>(64, 1024, 256, b.data(), 1024, &pb);
    EXPECT_FALSE(pb.packed()) << profile;
  }
}

TEST(PackedGemmTest, RepackingReusesStorageForNewShapesAndValues) {
  Context ctx(*Profile::Parse("fp32"));
  PackedB<float> pb;
  for (const auto& [m, n, k] :
       {std::make_tuple(64, 1024, 256), std::make_tuple(8, 40, 17),
        std::make_tuple(64, 1024, 256)}) {
    for (uint32_t seed : {1u, 2u}) {
      const std::vector<float> a = Fill<float>(int64_t{m} * k, seed);
      const std::vector<float> b = Fill<float>(int64_t{k} * n, seed + 10);
      ctx.Pack<float>(m, n, k, b.data(), n, &pb);
      std::vector<float> want(static_cast<size_t>(m) * n), got(want.size());
      ctx.Gemm<float>(false, false, m, n, k, a.data(), k, b.data(), n, 0.f,
                      want.data(), n);
      ctx.GemmPacked<float>(a.data(), k, pb, got.data(), n);
      EXPECT_EQ(want, got) << m << "x" << n << "x" << k << " seed " << seed;
    }
  }
}

}  // namespace
}  // namespace driftscope
