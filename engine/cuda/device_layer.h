// DeviceLayer: one layer's forward and backward pass on a DeviceOps table,
// the device mirror of engine/layers/layer.h; the concrete layers live in
// device_{lstm,gru,simple_rnn,dense,cudnn_rnn}.cc with the CPU layers' names
// and order of operations. Internal to engine/cuda (DeviceModel owns them).
// Buffers come from the model's DeviceArena; one thread at a time.
#ifndef DRIFTSCOPE_ENGINE_CUDA_DEVICE_LAYER_H_
#define DRIFTSCOPE_ENGINE_CUDA_DEVICE_LAYER_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "engine/cuda/device_model.h"
#include "engine/cuda/device_ops.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/layers/layer_internal.h"

// Propagates a failed step as its absl::Status (engine/cuda only).
#define DS_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    if (absl::Status _st = (expr); !_st.ok()) return _st; \
  } while (0)

namespace driftscope {

class DeviceLayer {
 public:
  DeviceLayer(dev::DeviceOps* ops, const LayerSpec& spec,
              const ActivationShape& in, bool tf32)
      : ops_(ops),
        spec_(spec),
        in_(in),
        out_(LayerOutputShape(spec, in)),
        tf32_(tf32) {}
  virtual ~DeviceLayer() = default;

  virtual absl::Status Allocate(DeviceArena* arena, int max_batch) = 0;
  virtual absl::Status Forward(const float* params, const float* x, int batch,
                               float* y) = 0;
  virtual absl::Status Backward(const float* params, const float* dy, float* dx,
                                float* dparams) = 0;
  virtual std::vector<const float*> final_states() const { return {}; }
  ActivationShape output_shape() const { return out_; }
  ActivationShape input_shape() const { return in_; }

 protected:
  template <typename Args>
  absl::Status Run(const Args& args) {
    if (args.size() == 0) return absl::OkStatus();
    return DeviceStatus(*ops_, ops_->Run(args));
  }
  // C (m×n, ldc) = op(A)·op(B).
  absl::Status Gemm(bool ta, bool tb, int64_t m, int n, int64_t k,
                    const float* a, int lda, const float* b, int ldb, float* c,
                    int ldc, dev::GemmRole role = dev::GemmRole::kForward) {
    if (m == 0 || n == 0) return absl::OkStatus();
    dev::GemmArgs g;
    g.ta = ta;
    g.tb = tb;
    g.m = static_cast<int>(m);
    g.n = n;
    g.k = static_cast<int>(k);
    g.a = a;
    g.lda = lda;
    g.b = b;
    g.ldb = ldb;
    g.c = c;
    g.ldc = ldc;
    g.tf32 = tf32_;
    return DeviceStatus(*ops_, ops_->Gemm(g, role));
  }
  absl::Status ToTimeMajor(const float* x, int batch, float* xp) {
    dev::TimeMajorArgs a;
    a.src = x;
    a.dst = xp;
    a.batch = batch;
    a.steps = in_.timesteps;
    a.dim = in_.dim;
    a.backwards = spec_.go_backwards;
    return Run(a);
  }
  // dx (batch-major) from the time-major δA (rows = steps·batch, width g)
  // and the kernel W (dim × g): one GEMM, then the reordering.
  absl::Status InputGradient(const float* da, int batch, int g, const float* w,
                             float* dx) {
    const int64_t rows = static_cast<int64_t>(in_.timesteps) * batch;
    DS_RETURN_IF_ERROR(
        Gemm(false, true, rows, in_.dim, g, da, g, w, g, dxp_, in_.dim));
    dev::TimeMajorArgs a;
    a.src = dxp_;
    a.dst = dx;
    a.batch = batch;
    a.steps = in_.timesteps;
    a.dim = in_.dim;
    a.backwards = spec_.go_backwards;
    a.to_time_major = false;
    return Run(a);
  }
  absl::Status AddBias(float* m, int64_t rows, int cols, int64_t ld,
                       const float* bias) {
    dev::AddBiasArgs a;
    a.m = m;
    a.rows = rows;
    a.cols = cols;
    a.ld = ld;
    a.bias = bias;
    return Run(a);
  }
  absl::Status BiasGrad(const float* d, int outer, int64_t so, int inner,
                        int64_t si, int cols, float* out) {
    dev::BiasGradArgs a;
    a.d = d;
    a.outer = outer;
    a.so = so;
    a.inner = inner;
    a.si = si;
    a.cols = cols;
    a.out = out;
    return Run(a);
  }
  absl::Status CopyFloats(float* dst, const float* src, int64_t n) {
    return DeviceStatus(*ops_, ops_->Copy(dst, src, n * sizeof(float)));
  }
  absl::Status ZeroFloats(float* dst, int64_t n) {
    return DeviceStatus(*ops_, ops_->Zero(dst, n * sizeof(float)));
  }
  int impl() const { return spec_.implementation; }

  dev::DeviceOps* ops_;
  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const bool tf32_;
  float* dxp_ = nullptr;  // time-major input gradient scratch (RNNs)
};

std::unique_ptr<DeviceLayer> NewDeviceLstm(dev::DeviceOps* ops,
                                           const LayerSpec& spec,
                                           const ActivationShape& in,
                                           bool tf32);
std::unique_ptr<DeviceLayer> NewDeviceGru(dev::DeviceOps* ops,
                                          const LayerSpec& spec,
                                          const ActivationShape& in, bool tf32);
std::unique_ptr<DeviceLayer> NewDeviceSimpleRnn(dev::DeviceOps* ops,
                                                const LayerSpec& spec,
                                                const ActivationShape& in,
                                                bool tf32);
std::unique_ptr<DeviceLayer> NewDeviceDense(dev::DeviceOps* ops,
                                            const LayerSpec& spec,
                                            const ActivationShape& in,
                                            bool tf32);
// An LSTM or GRU run by the table's cuDNN layer (rnn=cudnn).
std::unique_ptr<DeviceLayer> NewDeviceCudnnRnn(dev::DeviceOps* ops,
                                               const LayerSpec& spec,
                                               const ActivationShape& in,
                                               bool tf32);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_LAYER_H_
