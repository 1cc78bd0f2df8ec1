// Keras Dense on the device: one GEMM over all (batch, time) rows, bias
// rows, the activation; backward as engine/layers/dense.cc.
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "engine/cuda/device_layer.h"

namespace driftscope {
namespace {

class DeviceDense final : public DeviceLayer {
 public:
  using DeviceLayer::DeviceLayer;

  absl::Status Allocate(DeviceArena* arena, int max_batch) override {
    const int64_t rows = static_cast<int64_t>(max_batch) * steps();
    absl::StatusOr<float*> dz = arena->Floats(rows * spec_.units);
    if (!dz.ok()) return dz.status();
    dz_ = *dz;
    return absl::OkStatus();
  }

  absl::Status Forward(const float* params, const float* x, int batch,
                       float* y) override {
    const int64_t rows = static_cast<int64_t>(batch) * steps();
    const int D = in_.dim, U = spec_.units;
    batch_ = batch;
    x_ = x;
    y_out_ = y;
    DS_RETURN_IF_ERROR(Gemm(false, false, rows, U, D, x, D, params, U, y, U));
    if (spec_.use_bias) {
      DS_RETURN_IF_ERROR(
          AddBias(y, rows, U, U, params + static_cast<int64_t>(D) * U));
    }
    dev::DenseForwardArgs a;
    a.y = y;
    a.n = rows * U;
    a.act = static_cast<int>(spec_.activation);
    return Run(a);
  }

  absl::Status Backward(const float* params, const float* dy, float* dx,
                        float* dparams) override {
    const int S = steps();
    const int64_t rows = static_cast<int64_t>(batch_) * S;
    const int D = in_.dim, U = spec_.units;
    dev::DenseBackwardArgs a;
    a.y = y_out_;
    a.dy = dy;
    a.dz = dz_;
    a.n = rows * U;
    a.act = static_cast<int>(spec_.activation);
    DS_RETURN_IF_ERROR(Run(a));
    float* dW = dparams;
    DS_RETURN_IF_ERROR(Gemm(true, false, D, U, rows, x_, D, dz_, U, dW, U,
                            dev::GemmRole::kWeightGrad));
    if (spec_.use_bias) {
      // Rows are (b, t) batch-major: inner sum over the batch, outer time.
      DS_RETURN_IF_ERROR(BiasGrad(dz_, S, U, batch_,
                                  static_cast<int64_t>(S) * U, U,
                                  dW + static_cast<int64_t>(D) * U));
    }
    if (dx != nullptr) {
      return Gemm(false, true, rows, D, U, dz_, U, params, U, dx, D);
    }
    return absl::OkStatus();
  }

 private:
  int steps() const { return in_.sequence ? in_.timesteps : 1; }
  int batch_ = 0;
  const float* x_ = nullptr;  // valid until Backward (the layer contract)
  const float* y_out_ = nullptr;
  float* dz_ = nullptr;
};

// An LSTM or GRU layer run by the table's cuDNN layer (rnn=cudnn): the
// whole sequence in one call each way, parameters in the Keras layout.

}  // namespace

std::unique_ptr<DeviceLayer> NewDeviceDense(dev::DeviceOps* ops,
                                            const LayerSpec& spec,
                                            const ActivationShape& in,
                                            bool tf32) {
  return std::make_unique<DeviceDense>(ops, spec, in, tf32);
}

}  // namespace driftscope
