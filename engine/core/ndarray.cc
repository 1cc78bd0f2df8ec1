#include "engine/core/ndarray.h"

namespace driftscope {

NdArray NdArray::AsType(DType to) const {
  if (to == dtype_) return *this;
  NdArray out(to, shape_);
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

std::string NdArray::ShapeString() const {
  std::string s = "(";
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape_[i]);
  }
  if (shape_.size() == 1) s += ",";
  return s + ")";
}

}  // namespace driftscope
