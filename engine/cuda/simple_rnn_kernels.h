// Keras SimpleRNN on the device: h_t = a((x_t·W + b) + h_{t-1}·R) and its
// backward step δa = a'(h_t) ⊙ (output gradient + carried δh), one thread
// per (sample, unit).
#ifndef DRIFTSCOPE_ENGINE_CUDA_SIMPLE_RNN_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_SIMPLE_RNN_KERNELS_H_

#include "engine/cuda/activations_kernels.h"

namespace driftscope {
namespace dev {

struct SimpleRnnForwardArgs {
  int batch = 0, units = 0, steps = 0, step = 0;
  const float* pre = nullptr;  // x·W + b of this step (batch, U)
  const float* hr = nullptr;   // h_{t-1}·R, null at step 0
  float* h = nullptr;
  float* y = nullptr;  // (batch, steps, U) or null
  int act = kActTanh;
  DS_HD void operator()(int64_t e) const {
    const float v = ActForward(act, Add(pre[e], hr != nullptr ? hr[e] : 0.0f));
    h[e] = v;
    if (y != nullptr) {
      const int64_t b = e / units, u = e % units;
      y[(b * steps + step) * units + u] = v;
    }
  }
  int64_t size() const { return static_cast<int64_t>(batch) * units; }
};

struct SimpleRnnBackwardArgs {
  int batch = 0, units = 0, steps = 0, step = 0;
  bool return_sequences = false;
  const float* dy = nullptr;
  const float* dh = nullptr;  // carried δh
  const float* h = nullptr;   // h_t
  float* da = nullptr;        // (batch, U) of this step
  int act = kActTanh;
  DS_HD void operator()(int64_t e) const {
    const int64_t b = e / units, u = e % units;
    float d = dh[e];
    if (return_sequences) {
      d = Add(dy[(b * steps + step) * units + u], d);
    } else if (step == steps - 1) {
      d = Add(dy[b * units + u], d);
    }
    da[e] = ActBackward(act, h[e], d);
  }
  int64_t size() const { return static_cast<int64_t>(batch) * units; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_SIMPLE_RNN_KERNELS_H_
