// Keras SimpleRNN on the device: engine/layers/simple_rnn.cc's steps as
// DeviceOps.
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "engine/cuda/device_layer.h"

namespace driftscope {
namespace {

class DeviceSimpleRnn final : public DeviceLayer {
 public:
  using DeviceLayer::DeviceLayer;

  absl::Status Allocate(DeviceArena* arena, int max_batch) override {
    const int64_t S = in_.timesteps, D = in_.dim, U = spec_.units;
    const int64_t B = max_batch;
    for (auto [buf, n] : {std::pair<float**, int64_t>{&xp_, S * B * D},
                          {&pre_, S * B * U},
                          {&hs_, (S + 1) * B * U},
                          {&hr_, B * U},
                          {&da_, S * B * U},
                          {&dh_, B * U},
                          {&dxp_, S * B * D}}) {
      absl::StatusOr<float*> p = arena->Floats(n);
      if (!p.ok()) return p.status();
      *buf = *p;
    }
    return absl::OkStatus();
  }

  absl::Status Forward(const float* params, const float* x, int batch,
                       float* y) override {
    const int S = in_.timesteps, D = in_.dim, U = spec_.units;
    const int64_t rows = static_cast<int64_t>(S) * batch;
    const int64_t hblock = static_cast<int64_t>(batch) * U;
    batch_ = batch;
    const float* W = params;
    const float* R = W + static_cast<int64_t>(D) * U;
    const float* bias =
        spec_.use_bias ? R + static_cast<int64_t>(U) * U : nullptr;
    DS_RETURN_IF_ERROR(ToTimeMajor(x, batch, xp_));
    DS_RETURN_IF_ERROR(Gemm(false, false, rows, U, D, xp_, D, W, U, pre_, U));
    if (bias != nullptr) DS_RETURN_IF_ERROR(AddBias(pre_, rows, U, U, bias));
    DS_RETURN_IF_ERROR(ZeroFloats(hs_, hblock));
    for (int k = 0; k < S; ++k) {
      if (k > 0) {
        DS_RETURN_IF_ERROR(
            Gemm(false, false, batch, U, U, hs_ + k * hblock, U, R, U, hr_, U));
      }
      dev::SimpleRnnForwardArgs a;
      a.batch = batch;
      a.units = U;
      a.steps = S;
      a.step = k;
      a.pre = pre_ + k * hblock;
      a.hr = k > 0 ? hr_ : nullptr;
      a.h = hs_ + (k + 1) * hblock;
      a.y = spec_.return_sequences ? y : nullptr;
      a.act = static_cast<int>(spec_.activation);
      DS_RETURN_IF_ERROR(Run(a));
    }
    if (!spec_.return_sequences) {
      DS_RETURN_IF_ERROR(CopyFloats(y, hs_ + S * hblock, hblock));
    }
    return absl::OkStatus();
  }

  absl::Status Backward(const float* params, const float* dy, float* dx,
                        float* dparams) override {
    const int S = in_.timesteps, D = in_.dim, U = spec_.units;
    const int batch = batch_;
    const int64_t rows = static_cast<int64_t>(S) * batch;
    const int64_t hblock = static_cast<int64_t>(batch) * U;
    const float* W = params;
    const float* R = W + static_cast<int64_t>(D) * U;
    float* dW = dparams;
    float* dR = dW + static_cast<int64_t>(D) * U;
    float* db = spec_.use_bias ? dR + static_cast<int64_t>(U) * U : nullptr;
    DS_RETURN_IF_ERROR(ZeroFloats(dh_, hblock));
    for (int k = S - 1; k >= 0; --k) {
      dev::SimpleRnnBackwardArgs a;
      a.batch = batch;
      a.units = U;
      a.steps = S;
      a.step = k;
      a.return_sequences = spec_.return_sequences;
      a.dy = dy;
      a.dh = dh_;
      a.h = hs_ + (k + 1) * hblock;
      a.da = da_ + k * hblock;
      a.act = static_cast<int>(spec_.activation);
      DS_RETURN_IF_ERROR(Run(a));
      if (k > 0) {
        DS_RETURN_IF_ERROR(
            Gemm(false, true, batch, U, U, da_ + k * hblock, U, R, U, dh_, U));
      }
    }
    DS_RETURN_IF_ERROR(Gemm(true, false, D, U, rows, xp_, D, da_, U, dW, U,
                            dev::GemmRole::kWeightGrad));
    DS_RETURN_IF_ERROR(Gemm(true, false, U, U, rows - batch, hs_ + hblock, U,
                            da_ + hblock, U, dR, U,
                            dev::GemmRole::kWeightGrad));
    if (db != nullptr) {
      DS_RETURN_IF_ERROR(BiasGrad(da_, S, hblock, batch, U, U, db));
    }
    if (dx != nullptr) return InputGradient(da_, batch, U, W, dx);
    return absl::OkStatus();
  }

  std::vector<const float*> final_states() const override {
    return {hs_ + in_.timesteps * static_cast<int64_t>(batch_) * spec_.units};
  }

 private:
  int batch_ = 0;
  float *xp_ = nullptr, *pre_ = nullptr, *hs_ = nullptr, *hr_ = nullptr,
        *da_ = nullptr, *dh_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceLayer> NewDeviceSimpleRnn(dev::DeviceOps* ops,
                                                const LayerSpec& spec,
                                                const ActivationShape& in,
                                                bool tf32) {
  return std::make_unique<DeviceSimpleRnn>(ops, spec, in, tf32);
}

}  // namespace driftscope
