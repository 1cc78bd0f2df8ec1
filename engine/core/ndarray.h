// NdArray: an owning, dense, C-order array of float32 or float64 values.
//
// This is the value type that crosses module boundaries: run results,
// imported weights, .npy files and drift inputs. Math code works on raw
// pointers into it. Not thread-safe for concurrent mutation; copies are deep.
#ifndef DRIFTSCOPE_ENGINE_CORE_NDARRAY_H_
#define DRIFTSCOPE_ENGINE_CORE_NDARRAY_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace driftscope {

enum class DType { kFloat32, kFloat64 };

inline const char* DTypeName(DType d) {
  return d == DType::kFloat32 ? "float32" : "float64";
}
inline int64_t DTypeSize(DType d) { return d == DType::kFloat32 ? 4 : 8; }

// Array memory. Blocks of at least kLargeArrayBytes are mapped on their own
// and, when freed, kept for reuse in a process-wide cache of at most
// DRIFTSCOPE_ARRAY_CACHE_MB (environment; default 512, 0 turns it off),
// oldest out first. First touching a fresh 4 KiB page costs about as much as
// copying a few hundred bytes, so a large array written once (a received
// result, an eval output) paid more for its page faults than for its data; a
// reused block has its pages already. A cached block is marked MADV_FREE:
// under memory pressure the kernel takes its pages back without writing them
// anywhere, so the cache holds no memory the machine needs. Nothing here
// changes what an array holds (a reused block's old bytes are overwritten or
// zeroed as for a new one).
inline constexpr size_t kLargeArrayBytes = size_t{8} << 20;

class ArrayBlockCache {
 public:
  explicit ArrayBlockCache(size_t limit_bytes) : limit_(limit_bytes) {}
  ~ArrayBlockCache();  // unmaps the cached blocks
  ArrayBlockCache(const ArrayBlockCache&) = delete;
  ArrayBlockCache& operator=(const ArrayBlockCache&) = delete;

  // The process' cache, sized from DRIFTSCOPE_ARRAY_CACHE_MB.
  static ArrayBlockCache& Global();

  // `size` bytes, page aligned, contents unspecified; throws std::bad_alloc.
  // Blocks under kLargeArrayBytes come from operator new.
  void* Allocate(size_t size);
  void Free(void* block, size_t size);  // `size` as allocated

  size_t cached_bytes() const;

 private:
  struct Block {
    void* p;
    size_t length;
  };
  const size_t limit_;
  mutable std::mutex mu_;
  std::vector<Block> blocks_;  // oldest first
  size_t cached_ = 0;
};

// The allocator of array bytes: ArrayBlockCache::Global(), and new bytes
// left uninitialised (`value_type()` would zero them), so an array that is
// about to be overwritten skips a pass over its memory.
template <typename T>
struct ArrayAllocator {
  using value_type = T;
  ArrayAllocator() = default;
  template <typename U>
  ArrayAllocator(const ArrayAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    return static_cast<T*>(ArrayBlockCache::Global().Allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    ArrayBlockCache::Global().Free(p, n * sizeof(T));
  }
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  friend bool operator==(const ArrayAllocator&, const ArrayAllocator<U>&) {
    return true;
  }
  template <typename U>
  friend bool operator!=(const ArrayAllocator&, const ArrayAllocator<U>&) {
    return false;
  }
};

template <typename T>
constexpr DType DTypeOf() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "NdArray holds float or double");
  return std::is_same_v<T, float> ? DType::kFloat32 : DType::kFloat64;
}

class NdArray {
 public:
  NdArray() = default;
  NdArray(DType dtype, std::vector<int64_t> shape)
      : dtype_(dtype), shape_(std::move(shape)) {
    bytes_.assign(static_cast<size_t>(size() * DTypeSize(dtype_)), 0);
  }

  // An array whose values are unspecified until written: for a buffer that
  // is about to be filled completely (a received tensor), where zeroing it
  // first would cost a pass over its memory.
  static NdArray Uninitialized(DType dtype, std::vector<int64_t> shape) {
    NdArray a;
    a.dtype_ = dtype;
    a.shape_ = std::move(shape);
    a.bytes_.resize(static_cast<size_t>(a.size() * DTypeSize(dtype)));
    return a;
  }

  template <typename T>
  static NdArray From(std::vector<int64_t> shape, const T* values) {
    NdArray a = Uninitialized(DTypeOf<T>(), std::move(shape));
    std::memcpy(a.bytes_.data(), values, a.bytes_.size());
    return a;
  }
  template <typename T>
  static NdArray From(std::vector<int64_t> shape, const std::vector<T>& v) {
    return From<T>(std::move(shape), v.data());
  }

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
  }
  int64_t nbytes() const { return static_cast<int64_t>(bytes_.size()); }

  // Typed access; T must match dtype() (checked by callers via dtype()).
  template <typename T>
  T* data() {
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes_.data());
  }
  uint8_t* raw() { return bytes_.data(); }
  const uint8_t* raw() const { return bytes_.data(); }

  // Element i converted to double, whatever the dtype.
  double at(int64_t i) const {
    return dtype_ == DType::kFloat32 ? static_cast<double>(data<float>()[i])
                                     : data<double>()[i];
  }
  // A copy converted to another dtype (round to nearest when narrowing).
  NdArray AsType(DType to) const;

  std::string ShapeString() const;  // NumpyShapeText(shape())

  friend bool operator==(const NdArray& a, const NdArray& b) {
    return a.dtype_ == b.dtype_ && a.shape_ == b.shape_ && a.bytes_ == b.bytes_;
  }

 private:
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
  std::vector<uint8_t, ArrayAllocator<uint8_t>> bytes_;
};

// A shape as numpy prints it: "(2, 3, 4)", "(5,)" (1-D keeps its comma),
// "()". The one spelling of a shape in messages and .npy headers.
std::string NumpyShapeText(const std::vector<int64_t>& shape);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CORE_NDARRAY_H_
