// PythonRandom against CPython's own `random` module
// (tests/golden/seeding/make_seeding_golden.py): seeding with
// init_by_array, the raw MT19937 words, and randint's rejection loop.
#include "engine/rng/python_random.h"

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/io/npy.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

NdArray Golden(const std::string& name) {
  absl::StatusOr<NdArray> a = ReadNpy(std::string(DRIFTSCOPE_SOURCE_DIR) +
                                      "/tests/golden/seeding/" + name);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : NdArray();
}

TEST(PythonRandomTest, RawWordsEqualGetrandbits32) {
  const NdArray words = Golden("python_uint32_seed42.npy");
  ASSERT_EQ(words.size(), 8);
  PythonRandom rng(42);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(static_cast<double>(rng.NextUint32()), words.at(i)) << i;
  }
}

// Covers one-word keys, the key [0] for seed 0, a seed with the top bit of
// its word set, 2^32 - 1 and a two-word key (2^40 + 5).
TEST(PythonRandomTest, RandIntEqualsCPythonForEverySeed) {
  const NdArray seeds = Golden("python_randint_seeds.npy");
  const NdArray values = Golden("python_randint.npy");
  ASSERT_EQ(values.ndim(), 2);
  ASSERT_EQ(values.shape()[0], seeds.size());
  const int64_t n = values.shape()[1];
  for (int64_t r = 0; r < seeds.size(); ++r) {
    const uint64_t seed = static_cast<uint64_t>(seeds.at(r));
    PythonRandom rng(seed);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(static_cast<double>(rng.RandInt(1, 1000000000)),
                values.at(r * n + i))
          << "seed " << seed << " draw " << i;
    }
  }
}

}  // namespace
}  // namespace driftscope
