#include "engine/core/ndarray.h"

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace driftscope {

namespace {

constexpr size_t kPage = size_t{4} << 10;

size_t PageRound(size_t n) { return (n + kPage - 1) / kPage * kPage; }

size_t CacheLimitFromEnvironment() {
  const char* v = std::getenv("DRIFTSCOPE_ARRAY_CACHE_MB");
  if (v == nullptr || *v == '\0') return size_t{512} << 20;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(v, &end, 10);
  if (*end != '\0' || mb > (size_t{1} << 30)) {
    std::fprintf(stderr,
                 "DRIFTSCOPE_ARRAY_CACHE_MB=%s is not a size in MiB; the "
                 "array cache is off\n",
                 v);
    return 0;
  }
  return static_cast<size_t>(mb) << 20;
}

}  // namespace

ArrayBlockCache& ArrayBlockCache::Global() {
  // Never destroyed: arrays may be freed by other static destructors.
  static ArrayBlockCache* const cache =
      new ArrayBlockCache(CacheLimitFromEnvironment());
  return *cache;
}

ArrayBlockCache::~ArrayBlockCache() {
  for (const Block& b : blocks_) munmap(b.p, b.length);
}

size_t ArrayBlockCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}

void* ArrayBlockCache::Allocate(size_t size) {
  if (size < kLargeArrayBytes) return ::operator new(size);
  const size_t length = PageRound(size);
  Block found{nullptr, 0};
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The smallest block that is large enough; of equals the newest (its
    // pages are the likeliest still to be in the caches).
    size_t best = blocks_.size();
    for (size_t i = 0; i < blocks_.size(); ++i) {
      if (blocks_[i].length >= length &&
          (best == blocks_.size() ||
           blocks_[i].length <= blocks_[best].length)) {
        best = i;
      }
    }
    if (best < blocks_.size()) {
      found = blocks_[best];
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(best));
      cached_ -= found.length;
    }
  }
  if (found.p != nullptr) {
    // Cut to size, so that Free's `size` names the whole mapping.
    if (found.length > length) {
      munmap(static_cast<char*>(found.p) + length, found.length - length);
    }
    return found.p;
  }
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void ArrayBlockCache::Free(void* block, size_t size) {
  if (block == nullptr) return;
  if (size < kLargeArrayBytes) {
    ::operator delete(block);
    return;
  }
  const size_t length = PageRound(size);
  // Pages the kernel may take back at no cost; kept when it does not.
  if (length > limit_ || madvise(block, length, MADV_FREE) != 0) {
    munmap(block, length);
    return;
  }
  std::vector<Block> evicted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocks_.push_back(Block{block, length});
    cached_ += length;
    while (cached_ > limit_) {
      evicted.push_back(blocks_.front());
      cached_ -= blocks_.front().length;
      blocks_.erase(blocks_.begin());
    }
  }
  for (const Block& b : evicted) munmap(b.p, b.length);
}

NdArray NdArray::AsType(DType to) const {
  if (to == dtype_) return *this;
  NdArray out = Uninitialized(to, shape_);  // every element written below
  const int64_t n = size();
  if (to == DType::kFloat32) {
    const double* src = data<double>();
    float* dst = out.data<float>();
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  } else {
    const float* src = data<float>();
    double* dst = out.data<double>();
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<double>(src[i]);
  }
  return out;
}

std::string NumpyShapeText(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::string NdArray::ShapeString() const { return NumpyShapeText(shape_); }

}  // namespace driftscope
