// An LSTM or GRU layer run by the table's cuDNN layer (rnn=cudnn): the
// whole sequence in one call each way, parameters in the Keras layout.
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "engine/cuda/device_layer.h"

namespace driftscope {
namespace {

class DeviceCudnnRnn final : public DeviceLayer {
 public:
  using DeviceLayer::DeviceLayer;

  absl::Status Allocate(DeviceArena*, int max_batch) override {
    return DeviceStatus(
        *ops_, ops_->CudnnLayerCreate(spec_, in_.timesteps, in_.dim, max_batch,
                                      &layer_));
  }
  absl::Status Forward(const float* params, const float* x, int batch,
                       float* y) override {
    return DeviceStatus(*ops_,
                        ops_->CudnnLayerForward(layer_, params, x, batch, y));
  }
  absl::Status Backward(const float*, const float* dy, float* dx,
                        float* dparams) override {
    return DeviceStatus(*ops_,
                        ops_->CudnnLayerBackward(layer_, dy, dx, dparams));
  }
  std::vector<const float*> final_states() const override {
    const float* s[2] = {nullptr, nullptr};
    int n = 0;
    if (ops_->CudnnLayerStates(layer_, s, &n) != dev::OpStatus::kOk) return {};
    return std::vector<const float*>(s, s + std::min(n, 2));
  }

 private:
  int layer_ = -1;
};

}  // namespace

std::unique_ptr<DeviceLayer> NewDeviceCudnnRnn(dev::DeviceOps* ops,
                                               const LayerSpec& spec,
                                               const ActivationShape& in,
                                               bool tf32) {
  return std::make_unique<DeviceCudnnRnn>(ops, spec, in, tf32);
}

}  // namespace driftscope
