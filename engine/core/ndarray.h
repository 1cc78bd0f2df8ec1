// NdArray: an owning, dense, C-order array of float32 or float64 values.
//
// This is the value type that crosses module boundaries: run results,
// imported weights, .npy files and drift inputs. Math code works on raw
// pointers into it. Not thread-safe for concurrent mutation; copies are deep.
#ifndef DRIFTSCOPE_ENGINE_CORE_NDARRAY_H_
#define DRIFTSCOPE_ENGINE_CORE_NDARRAY_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace driftscope {

enum class DType { kFloat32, kFloat64 };

inline const char* DTypeName(DType d) {
  return d == DType::kFloat32 ? "float32" : "float64";
}
inline int64_t DTypeSize(DType d) { return d == DType::kFloat32 ? 4 : 8; }

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

  template <typename T>
  static NdArray From(std::vector<int64_t> shape, const T* values) {
    NdArray a(DTypeOf<T>(), std::move(shape));
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

  std::string ShapeString() const;  // "(2, 3, 4)"

  friend bool operator==(const NdArray& a, const NdArray& b) {
    return a.dtype_ == b.dtype_ && a.shape_ == b.shape_ && a.bytes_ == b.bytes_;
  }

 private:
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
  std::vector<uint8_t> bytes_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CORE_NDARRAY_H_
