#include "engine/cuda/device_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/layers/layer_internal.h"

namespace driftscope {

// The functor headers cannot include job_spec.h (nvcc never parses absl), so
// their codes mirror its enums; keep them equal.
static_assert(dev::kActTanh == static_cast<int>(Activation::kTanh));
static_assert(dev::kActSigmoid == static_cast<int>(Activation::kSigmoid));
static_assert(dev::kActHardSigmoidKeras2 ==
              static_cast<int>(Activation::kHardSigmoidKeras2));
static_assert(dev::kActHardSigmoidKeras3 ==
              static_cast<int>(Activation::kHardSigmoidKeras3));
static_assert(dev::kActRelu == static_cast<int>(Activation::kRelu));
static_assert(dev::kActLinear == static_cast<int>(Activation::kLinear));

absl::Status DeviceStatus(dev::DeviceOps& ops, dev::OpStatus s) {
  switch (s) {
    case dev::OpStatus::kOk:
      return absl::OkStatus();
    case dev::OpStatus::kOutOfMemory:
      return absl::ResourceExhaustedError(ops.last_error());
    case dev::OpStatus::kUnsupported:
      return absl::FailedPreconditionError(ops.last_error());
    case dev::OpStatus::kDeviceError:
      break;
  }
  return absl::InternalError(ops.last_error());
}

namespace {

// Propagates a failed op as its absl::Status.
#define DS_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    if (absl::Status _st = (expr); !_st.ok()) return _st; \
  } while (0)

}  // namespace

DeviceArena::~DeviceArena() {
  for (void* p : blocks_) ops_->Free(p);
}

absl::StatusOr<void*> DeviceArena::Bytes(size_t bytes) {
  void* p = nullptr;
  const dev::OpStatus s = ops_->Alloc(bytes, &p);
  if (s == dev::OpStatus::kOutOfMemory) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "device memory exhausted: ", ops_->last_error(), " (", bytes_,
        " bytes already held by this run, ", bytes, " more needed)"));
  }
  if (s != dev::OpStatus::kOk) return DeviceStatus(*ops_, s);
  blocks_.push_back(p);
  bytes_ += static_cast<int64_t>(bytes);
  return p;
}

absl::StatusOr<float*> DeviceArena::Floats(int64_t count) {
  absl::StatusOr<void*> p =
      Bytes(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float));
  if (!p.ok()) return p.status();
  return static_cast<float*>(*p);
}

absl::StatusOr<int32_t*> DeviceArena::Ints(int64_t count) {
  absl::StatusOr<void*> p =
      Bytes(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(int32_t));
  if (!p.ok()) return p.status();
  return static_cast<int32_t*>(*p);
}

// One layer's forward/backward on the device (the device mirror of
// engine/layers/layer.h). Buffers come from the model's arena.
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

std::unique_ptr<DeviceLayer> NewDeviceLayer(dev::DeviceOps* ops,
                                            const LayerSpec& spec,
                                            const ActivationShape& in,
                                            bool tf32) {
  switch (spec.kind) {
    case LayerKind::kLstm:
      return std::make_unique<DeviceLstm>(ops, spec, in, tf32);
    case LayerKind::kGru:
      return std::make_unique<DeviceGru>(ops, spec, in, tf32);
    case LayerKind::kSimpleRnn:
      return std::make_unique<DeviceSimpleRnn>(ops, spec, in, tf32);
    case LayerKind::kDense:
      break;
  }
  return std::make_unique<DeviceDense>(ops, spec, in, tf32);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceModel>> DeviceModel::Create(
    dev::DeviceOps* ops, const ModelSpec& spec, int max_batch, bool tf32) {
  if (max_batch < 1 || spec.layers.empty()) {
    return absl::InvalidArgumentError(
        "device model: needs max_batch >= 1 and at least one layer");
  }
  std::unique_ptr<DeviceModel> m(new DeviceModel(ops));
  ActivationShape in{true, spec.timesteps, spec.features};
  int64_t offset = 0, max_grad = 0;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    // The CPU layer's checks (and its weight shapes) are the one home of
    // what a layer accepts.
    absl::StatusOr<std::unique_ptr<Layer<float>>> cpu = MakeLayer<float>(
        spec.layers[i], in, absl::StrCat("model.layers[", i, "]"));
    if (!cpu.ok()) return cpu.status();
    m->offsets_.push_back(offset);
    offset += (*cpu)->num_params();
    if (i > 0) max_grad = std::max(max_grad, in.per_sample());
    std::unique_ptr<DeviceLayer> layer =
        NewDeviceLayer(ops, spec.layers[i], in, tf32);
    if (absl::Status s = layer->Allocate(&m->arena_, max_batch); !s.ok()) {
      return s;
    }
    in = layer->output_shape();
    absl::StatusOr<float*> act = m->arena_.Floats(max_batch * in.per_sample());
    if (!act.ok()) return act.status();
    m->acts_.push_back(*act);
    m->layers_.push_back(std::move(layer));
  }
  m->num_params_ = offset;
  for (float** buf : {&m->params_, &m->grads_}) {
    absl::StatusOr<float*> p = m->arena_.Floats(offset);
    if (!p.ok()) return p.status();
    *buf = *p;
  }
  for (float*& d : m->dbuf_) {
    absl::StatusOr<float*> p = m->arena_.Floats(max_batch * max_grad);
    if (!p.ok()) return p.status();
    d = *p;
  }
  return m;
}

DeviceModel::DeviceModel(dev::DeviceOps* ops) : ops_(ops), arena_(ops) {}
DeviceModel::~DeviceModel() = default;

ActivationShape DeviceModel::input_shape() const {
  return layers_.front()->input_shape();
}
ActivationShape DeviceModel::output_shape() const {
  return layers_.back()->output_shape();
}

absl::Status DeviceModel::Forward(const float* x, int batch, const float** y) {
  const float* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    DS_RETURN_IF_ERROR(
        layers_[i]->Forward(params_ + offsets_[i], in, batch, acts_[i]));
    in = acts_[i];
  }
  *y = in;
  return absl::OkStatus();
}

absl::Status DeviceModel::Backward(const float* dy) {
  const float* grad_out = dy;
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    float* dx = i > 0 ? dbuf_[i % 2] : nullptr;
    DS_RETURN_IF_ERROR(layers_[i]->Backward(params_ + offsets_[i], grad_out, dx,
                                            grads_ + offsets_[i]));
    grad_out = dx;
  }
  return absl::OkStatus();
}

std::vector<const float*> DeviceModel::final_states() const {
  return layers_.back()->final_states();
}

}  // namespace driftscope
