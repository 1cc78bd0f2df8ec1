// Keras GRU (reset_after true and false, implementation 1 and 2) on the
// device: engine/layers/gru.cc's steps as DeviceOps.
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "engine/cuda/device_layer.h"

namespace driftscope {
namespace {

class DeviceGru final : public DeviceLayer {
 public:
  using DeviceLayer::DeviceLayer;

  absl::Status Allocate(DeviceArena* arena, int max_batch) override {
    const int64_t S = in_.timesteps, D = in_.dim, U = spec_.units, G = 3 * U;
    const int64_t B = max_batch;
    for (auto [buf, n] : {std::pair<float**, int64_t>{&xp_, S * B * D},
                          {&gates_, S * B * G},
                          {&hs_, (S + 1) * B * U},
                          {&aux_, S * B * U},
                          {&mh_, B * G},
                          {&qr_, B * U},
                          {&dxg_, S * B * G},
                          {&dhm_, S * B * G},
                          {&dh_, B * U},
                          {&dht_, B * U},
                          {&tmp_, B * U},
                          {&dq_, B * U},
                          {&dxp_, S * B * D}}) {
      absl::StatusOr<float*> p = arena->Floats(n);
      if (!p.ok()) return p.status();
      *buf = *p;
    }
    return absl::OkStatus();
  }

  // C (batch × n) = A·R[:, col0 : col0 + n], split per gate in mode 1.
  absl::Status RecurrentGemm(const float* a, int batch, const float* R,
                             int col0, int n, float* c, int ldc) {
    const int U = spec_.units, G = 3 * U;
    if (impl() != 1) {
      return Gemm(false, false, batch, n, U, a, U, R + col0, G, c, ldc);
    }
    for (int g = 0; g < n / U; ++g) {
      DS_RETURN_IF_ERROR(Gemm(false, false, batch, U, U, a, U, R + col0 + g * U,
                              G, c + g * U, ldc));
    }
    return absl::OkStatus();
  }

  absl::Status Forward(const float* params, const float* x, int batch,
                       float* y) override {
    const int S = in_.timesteps, D = in_.dim, U = spec_.units, G = 3 * U;
    const int64_t rows = static_cast<int64_t>(S) * batch;
    const int64_t hblock = static_cast<int64_t>(batch) * U;
    const int64_t gblock = static_cast<int64_t>(batch) * G;
    const bool reset_after = spec_.reset_after;
    batch_ = batch;
    const float* W = params;
    const float* R = W + static_cast<int64_t>(D) * G;
    const float* bx =
        spec_.use_bias ? R + static_cast<int64_t>(U) * G : nullptr;
    const float* bh = (bx != nullptr && reset_after) ? bx + G : nullptr;
    DS_RETURN_IF_ERROR(ToTimeMajor(x, batch, xp_));
    if (impl() == 1) {
      for (int g = 0; g < 3; ++g) {
        DS_RETURN_IF_ERROR(Gemm(false, false, rows, U, D, xp_, D, W + g * U, G,
                                gates_ + g * U, G));
      }
    } else {
      DS_RETURN_IF_ERROR(
          Gemm(false, false, rows, G, D, xp_, D, W, G, gates_, G));
    }
    if (bx != nullptr) DS_RETURN_IF_ERROR(AddBias(gates_, rows, G, G, bx));
    DS_RETURN_IF_ERROR(ZeroFloats(hs_, hblock));
    for (int k = 0; k < S; ++k) {
      const float* hp = hs_ + k * hblock;
      if (k > 0) {
        DS_RETURN_IF_ERROR(
            RecurrentGemm(hp, batch, R, 0, reset_after ? G : 2 * U, mh_, G));
      }
      dev::GruForwardArgs a;
      a.batch = batch;
      a.units = U;
      a.steps = S;
      a.step = k;
      a.gates = gates_ + k * gblock;
      a.mh = k > 0 ? mh_ : nullptr;
      a.bh = bh;
      a.h_prev = hp;
      a.aux = aux_ + k * hblock;
      a.h = hs_ + (k + 1) * hblock;
      a.y = spec_.return_sequences ? y : nullptr;
      a.act = static_cast<int>(spec_.activation);
      a.ract = static_cast<int>(spec_.recurrent_activation);
      if (reset_after) {
        a.phase = dev::kGruAll;
        DS_RETURN_IF_ERROR(Run(a));
        continue;
      }
      a.phase = dev::kGruGates;
      DS_RETURN_IF_ERROR(Run(a));
      if (k > 0) {
        DS_RETURN_IF_ERROR(
            RecurrentGemm(aux_ + k * hblock, batch, R, 2 * U, U, qr_, U));
      }
      a.phase = dev::kGruCandidate;
      a.qr = k > 0 ? qr_ : nullptr;
      DS_RETURN_IF_ERROR(Run(a));
    }
    if (!spec_.return_sequences) {
      DS_RETURN_IF_ERROR(CopyFloats(y, hs_ + S * hblock, hblock));
    }
    return absl::OkStatus();
  }

  absl::Status Backward(const float* params, const float* dy, float* dx,
                        float* dparams) override {
    const int S = in_.timesteps, D = in_.dim, U = spec_.units, G = 3 * U;
    const int batch = batch_;
    const int64_t rows = static_cast<int64_t>(S) * batch;
    const int64_t hblock = static_cast<int64_t>(batch) * U;
    const int64_t gblock = static_cast<int64_t>(batch) * G;
    const bool reset_after = spec_.reset_after;
    const float* W = params;
    const float* R = W + static_cast<int64_t>(D) * G;
    float* dW = dparams;
    float* dR = dW + static_cast<int64_t>(D) * G;
    float* dbx = spec_.use_bias ? dR + static_cast<int64_t>(U) * G : nullptr;
    DS_RETURN_IF_ERROR(ZeroFloats(dh_, hblock));
    for (int k = S - 1; k >= 0; --k) {
      float* dxg = dxg_ + k * gblock;
      dev::GruBackwardArgs a;
      a.reset_after = reset_after;
      a.batch = batch;
      a.units = U;
      a.steps = S;
      a.step = k;
      a.return_sequences = spec_.return_sequences;
      a.dy = dy;
      a.dh = dh_;
      a.dht = dht_;
      a.gates = gates_ + k * gblock;
      a.h_prev = hs_ + k * hblock;
      a.aux = aux_ + k * hblock;
      a.dxg = dxg;
      a.dhm = dhm_ + k * gblock;
      a.dq = dq_;
      a.tmp = tmp_;
      a.act = static_cast<int>(spec_.activation);
      a.ract = static_cast<int>(spec_.recurrent_activation);
      a.phase = dev::kGruOut;
      DS_RETURN_IF_ERROR(Run(a));
      if (reset_after) {
        if (k == 0) continue;
        // δh_{t-1} = δh ⊙ z + δHm·Rᵀ
        DS_RETURN_IF_ERROR(
            Gemm(false, true, batch, U, G, a.dhm, G, R, G, tmp_, U));
      } else {
        // δq = δa_n·R_hᵀ, then δa_r from it.
        DS_RETURN_IF_ERROR(Gemm(false, true, batch, U, U, dxg + 2 * U, G,
                                R + 2 * U, G, dq_, U));
        a.phase = dev::kGruResetGrad;
        DS_RETURN_IF_ERROR(Run(a));
        if (k == 0) continue;
        DS_RETURN_IF_ERROR(
            Gemm(false, true, batch, U, 2 * U, dxg, G, R, G, tmp_, U));
      }
      a.phase = dev::kGruCarry;
      DS_RETURN_IF_ERROR(Run(a));
    }
    DS_RETURN_IF_ERROR(Gemm(true, false, D, G, rows, xp_, D, dxg_, G, dW, G,
                            dev::GemmRole::kWeightGrad));
    const float* hprev = hs_ + hblock;
    if (reset_after) {
      DS_RETURN_IF_ERROR(Gemm(true, false, U, G, rows - batch, hprev, U,
                              dhm_ + gblock, G, dR, G,
                              dev::GemmRole::kWeightGrad));
    } else {
      DS_RETURN_IF_ERROR(Gemm(true, false, U, 2 * U, rows - batch, hprev, U,
                              dxg_ + gblock, G, dR, G,
                              dev::GemmRole::kWeightGrad));
      DS_RETURN_IF_ERROR(Gemm(true, false, U, U, rows - batch, aux_ + hblock, U,
                              dxg_ + gblock + 2 * U, G, dR + 2 * U, G,
                              dev::GemmRole::kWeightGrad));
    }
    if (dbx != nullptr) {
      DS_RETURN_IF_ERROR(BiasGrad(dxg_, S, gblock, batch, G, G, dbx));
      if (reset_after) {
        DS_RETURN_IF_ERROR(BiasGrad(dhm_, S, gblock, batch, G, G, dbx + G));
      }
    }
    if (dx != nullptr) return InputGradient(dxg_, batch, G, W, dx);
    return absl::OkStatus();
  }

  std::vector<const float*> final_states() const override {
    return {hs_ + in_.timesteps * static_cast<int64_t>(batch_) * spec_.units};
  }

 private:
  int batch_ = 0;
  float *xp_ = nullptr, *gates_ = nullptr, *hs_ = nullptr, *aux_ = nullptr,
        *mh_ = nullptr, *qr_ = nullptr, *dxg_ = nullptr, *dhm_ = nullptr,
        *dh_ = nullptr, *dht_ = nullptr, *tmp_ = nullptr, *dq_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceLayer> NewDeviceGru(dev::DeviceOps* ops,
                                          const LayerSpec& spec,
                                          const ActivationShape& in,
                                          bool tf32) {
  return std::make_unique<DeviceGru>(ops, spec, in, tf32);
}

}  // namespace driftscope
