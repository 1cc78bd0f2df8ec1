// Keras LSTM on the device: engine/layers/lstm.cc's steps as DeviceOps
// (x·W for all steps, h·R and the LSTM kernel per step, weight gradients as
// single GEMMs, the bias gradient "batch, then time").
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "engine/cuda/device_layer.h"

namespace driftscope {
namespace {

class DeviceLstm final : public DeviceLayer {
 public:
  using DeviceLayer::DeviceLayer;

  absl::Status Allocate(DeviceArena* arena, int max_batch) override {
    const int64_t S = in_.timesteps, D = in_.dim, U = spec_.units, G = 4 * U;
    const int64_t B = max_batch;
    for (auto [buf, n] : {std::pair<float**, int64_t>{&xp_, S * B * D},
                          {&gates_, S * B * G},
                          {&hs_, (S + 1) * B * U},
                          {&cs_, (S + 1) * B * U},
                          {&tau_, S * B * U},
                          {&hr_, B * G},
                          {&da_, S * B * G},
                          {&dh_, B * U},
                          {&dc_, B * U},
                          {&dxp_, S * B * D}}) {
      absl::StatusOr<float*> p = arena->Floats(n);
      if (!p.ok()) return p.status();
      *buf = *p;
    }
    return absl::OkStatus();
  }

  absl::Status Forward(const float* params, const float* x, int batch,
                       float* y) override {
    const int S = in_.timesteps, D = in_.dim, U = spec_.units, G = 4 * U;
    const int64_t rows = static_cast<int64_t>(S) * batch;
    const int64_t hblock = static_cast<int64_t>(batch) * U;
    const int64_t gblock = static_cast<int64_t>(batch) * G;
    const bool mode1 = impl() == 1;
    batch_ = batch;
    const float* W = params;
    const float* R = W + static_cast<int64_t>(D) * G;
    const float* bias =
        spec_.use_bias ? R + static_cast<int64_t>(U) * G : nullptr;
    DS_RETURN_IF_ERROR(ToTimeMajor(x, batch, xp_));
    if (mode1) {
      // Keras mode 1: one GEMM of width U per gate, the bias right after.
      for (int g = 0; g < 4; ++g) {
        DS_RETURN_IF_ERROR(Gemm(false, false, rows, U, D, xp_, D, W + g * U, G,
                                gates_ + g * U, G));
      }
      if (bias != nullptr)
        DS_RETURN_IF_ERROR(AddBias(gates_, rows, G, G, bias));
    } else {
      DS_RETURN_IF_ERROR(
          Gemm(false, false, rows, G, D, xp_, D, W, G, gates_, G));
    }
    DS_RETURN_IF_ERROR(ZeroFloats(hs_, hblock));
    DS_RETURN_IF_ERROR(ZeroFloats(cs_, hblock));
    for (int k = 0; k < S; ++k) {
      const float* hp = hs_ + k * hblock;
      if (k > 0) {
        if (mode1) {
          for (int g = 0; g < 4; ++g) {
            DS_RETURN_IF_ERROR(Gemm(false, false, batch, U, U, hp, U, R + g * U,
                                    G, hr_ + g * U, G));
          }
        } else {
          DS_RETURN_IF_ERROR(
              Gemm(false, false, batch, G, U, hp, U, R, G, hr_, G));
        }
      }
      dev::LstmForwardArgs a;
      a.batch = batch;
      a.units = U;
      a.steps = S;
      a.step = k;
      a.gates = gates_ + k * gblock;
      a.hr = k > 0 ? hr_ : nullptr;
      a.bias = mode1 ? nullptr : bias;
      a.c_prev = cs_ + k * hblock;
      a.c = cs_ + (k + 1) * hblock;
      a.tau = tau_ + k * hblock;
      a.h = hs_ + (k + 1) * hblock;
      a.y = spec_.return_sequences ? y : nullptr;
      a.act = static_cast<int>(spec_.activation);
      a.ract = static_cast<int>(spec_.recurrent_activation);
      DS_RETURN_IF_ERROR(Run(a));
    }
    if (!spec_.return_sequences) {
      DS_RETURN_IF_ERROR(CopyFloats(y, hs_ + S * hblock, hblock));
    }
    return absl::OkStatus();
  }

  absl::Status Backward(const float* params, const float* dy, float* dx,
                        float* dparams) override {
    const int S = in_.timesteps, D = in_.dim, U = spec_.units, G = 4 * U;
    const int batch = batch_;
    const int64_t rows = static_cast<int64_t>(S) * batch;
    const int64_t hblock = static_cast<int64_t>(batch) * U;
    const int64_t gblock = static_cast<int64_t>(batch) * G;
    const float* W = params;
    const float* R = W + static_cast<int64_t>(D) * G;
    float* dW = dparams;
    float* dR = dW + static_cast<int64_t>(D) * G;
    float* db = spec_.use_bias ? dR + static_cast<int64_t>(U) * G : nullptr;
    DS_RETURN_IF_ERROR(ZeroFloats(dh_, hblock));
    DS_RETURN_IF_ERROR(ZeroFloats(dc_, hblock));
    for (int k = S - 1; k >= 0; --k) {
      dev::LstmBackwardArgs a;
      a.batch = batch;
      a.units = U;
      a.steps = S;
      a.step = k;
      a.return_sequences = spec_.return_sequences;
      a.dy = dy;
      a.dh = dh_;
      a.dc = dc_;
      a.gates = gates_ + k * gblock;
      a.c_prev = cs_ + k * hblock;
      a.tau = tau_ + k * hblock;
      a.da = da_ + k * gblock;
      a.act = static_cast<int>(spec_.activation);
      a.ract = static_cast<int>(spec_.recurrent_activation);
      DS_RETURN_IF_ERROR(Run(a));
      if (k > 0) {
        DS_RETURN_IF_ERROR(
            Gemm(false, true, batch, U, G, da_ + k * gblock, G, R, G, dh_, U));
      }
    }
    DS_RETURN_IF_ERROR(Gemm(true, false, D, G, rows, xp_, D, da_, G, dW, G,
                            dev::GemmRole::kWeightGrad));
    // Step 0's h_{-1} is zero, so dR sums from step 1.
    DS_RETURN_IF_ERROR(Gemm(true, false, U, G, rows - batch, hs_ + hblock, U,
                            da_ + gblock, G, dR, G,
                            dev::GemmRole::kWeightGrad));
    if (db != nullptr) {
      DS_RETURN_IF_ERROR(BiasGrad(da_, S, gblock, batch, G, G, db));
    }
    if (dx != nullptr) return InputGradient(da_, batch, G, W, dx);
    return absl::OkStatus();
  }

  std::vector<const float*> final_states() const override {
    const int64_t block = static_cast<int64_t>(batch_) * spec_.units;
    return {hs_ + in_.timesteps * block, cs_ + in_.timesteps * block};
  }

 private:
  int batch_ = 0;
  float *xp_ = nullptr, *gates_ = nullptr, *hs_ = nullptr, *cs_ = nullptr,
        *tau_ = nullptr, *hr_ = nullptr, *da_ = nullptr, *dh_ = nullptr,
        *dc_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceLayer> NewDeviceLstm(dev::DeviceOps* ops,
                                           const LayerSpec& spec,
                                           const ActivationShape& in,
                                           bool tf32) {
  return std::make_unique<DeviceLstm>(ops, spec, in, tf32);
}

}  // namespace driftscope
