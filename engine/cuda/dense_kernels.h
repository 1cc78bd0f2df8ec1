// Keras Dense on the device: after the GEMM and the bias rows
// (sequence_kernels.h), the activation in place, and backward
// dz = a'(y) ⊙ dy. One thread per value.
#ifndef DRIFTSCOPE_ENGINE_CUDA_DENSE_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_DENSE_KERNELS_H_

#include "engine/cuda/activations_kernels.h"

namespace driftscope {
namespace dev {

struct DenseForwardArgs {
  float* y = nullptr;
  int64_t n = 0;
  int act = kActLinear;
  DS_HD void operator()(int64_t e) const { y[e] = ActForward(act, y[e]); }
  int64_t size() const { return n; }
};

struct DenseBackwardArgs {
  const float* y = nullptr;
  const float* dy = nullptr;
  float* dz = nullptr;
  int64_t n = 0;
  int act = kActLinear;
  DS_HD void operator()(int64_t e) const {
    dz[e] = ActBackward(act, y[e], dy[e]);
  }
  int64_t size() const { return n; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DENSE_KERNELS_H_
