// The array block cache: large blocks are reused instead of faulted in
// afresh, within the byte limit, oldest out first, and an array built on a
// reused block holds exactly what a new one would (zeros, or the copied
// values), never the previous tenant's bytes.
#include <cstring>
#include <thread>
#include <vector>

#include "engine/core/ndarray.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(ArrayBlockCacheTest, FreedLargeBlockIsReusedForTheSameSize) {
  ArrayBlockCache cache(64 * kMiB);
  void* a = cache.Allocate(16 * kMiB);
  std::memset(a, 0x5a, 16 * kMiB);
  cache.Free(a, 16 * kMiB);
  EXPECT_EQ(cache.cached_bytes(), 16 * kMiB);
  void* b = cache.Allocate(16 * kMiB);
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  // Writable over its whole length.
  std::memset(b, 1, 16 * kMiB);
  cache.Free(b, 16 * kMiB);
}

TEST(ArrayBlockCacheTest, LargerBlockIsCutToSizeAndSmallestFitWins) {
  ArrayBlockCache cache(256 * kMiB);
  void* big = cache.Allocate(64 * kMiB);
  void* mid = cache.Allocate(24 * kMiB);
  cache.Free(big, 64 * kMiB);
  cache.Free(mid, 24 * kMiB);
  // 20 MiB fits both; the 24 MiB block is the closer fit.
  void* c = cache.Allocate(20 * kMiB + 1);
  EXPECT_EQ(c, mid);
  EXPECT_EQ(cache.cached_bytes(), 64 * kMiB);
  std::memset(c, 2, 20 * kMiB + 1);
  // Freed with the size it was asked for: the cut-off tail is not counted.
  cache.Free(c, 20 * kMiB + 1);
  EXPECT_EQ(cache.cached_bytes(), 64 * kMiB + 20 * kMiB + 4096);
}

TEST(ArrayBlockCacheTest, LimitEvictsTheOldestAndZeroCachesNothing) {
  ArrayBlockCache cache(40 * kMiB);
  void* first = cache.Allocate(16 * kMiB);
  void* second = cache.Allocate(16 * kMiB);
  void* third = cache.Allocate(16 * kMiB);
  cache.Free(first, 16 * kMiB);
  cache.Free(second, 16 * kMiB);
  cache.Free(third, 16 * kMiB);  // 48 MiB > 40: `first` goes
  EXPECT_EQ(cache.cached_bytes(), 32 * kMiB);
  void* x = cache.Allocate(16 * kMiB);
  void* y = cache.Allocate(16 * kMiB);
  EXPECT_TRUE((x == second && y == third) || (x == third && y == second));
  cache.Free(x, 16 * kMiB);
  cache.Free(y, 16 * kMiB);

  ArrayBlockCache off(0);
  void* z = off.Allocate(16 * kMiB);
  off.Free(z, 16 * kMiB);
  EXPECT_EQ(off.cached_bytes(), 0u);
}

TEST(ArrayBlockCacheTest, SmallBlocksAreNotCached) {
  ArrayBlockCache cache(64 * kMiB);
  void* a = cache.Allocate(kLargeArrayBytes - 1);
  cache.Free(a, kLargeArrayBytes - 1);
  EXPECT_EQ(cache.cached_bytes(), 0u);
}

TEST(ArrayBlockCacheTest, ArraysOnReusedBlocksHoldOnlyTheirOwnValues) {
  // Through the process cache, as every NdArray allocates: a zero-filled
  // array on the block a non-zero one just left is all zeros.
  const std::vector<int64_t> shape = {4, 1024, 1024};  // 16 MiB of float32
  const void* block = nullptr;
  {
    NdArray dirty(DType::kFloat32, shape);
    for (int64_t i = 0; i < dirty.size(); ++i) dirty.data<float>()[i] = 3.5f;
    block = dirty.raw();
  }
  NdArray clean(DType::kFloat32, shape);
  EXPECT_EQ(static_cast<const void*>(clean.raw()), block);  // it was reused
  for (int64_t i = 0; i < clean.size(); ++i) {
    ASSERT_EQ(clean.data<float>()[i], 0.0f) << "element " << i;
  }
  // A copy is a copy, on whichever block it lands.
  NdArray copy = clean;
  copy.data<float>()[7] = 1;
  NdArray again = copy;
  EXPECT_EQ(again, copy);
  EXPECT_FALSE(again == clean);
}

TEST(ArrayBlockCacheTest, ConcurrentAllocationsNeverShareABlock) {
  ArrayBlockCache cache(128 * kMiB);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 50; ++i) {
        const size_t size = (8 + (i + t) % 5) * kMiB;
        auto* p = static_cast<unsigned char*>(cache.Allocate(size));
        p[0] = p[size - 1] = static_cast<unsigned char>(t);
        std::this_thread::yield();
        // Another thread writing the same block would show here.
        ASSERT_EQ(p[0], t);
        ASSERT_EQ(p[size - 1], t);
        cache.Free(p, size);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_LE(cache.cached_bytes(), 128 * kMiB);
}

}  // namespace
}  // namespace driftscope
