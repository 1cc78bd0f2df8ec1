// LSTM, GRU and SimpleRNN with per-gate dropout masks: Keras'
// implementation 1 (keras/src/layers/rnn/{lstm,gru,simple_rnn}.py, `call`),
// which Keras forces when a layer has recurrent_dropout. Gate g's input
// projection reads x ⊙ m_g and its recurrent product reads h_{t-1} ⊙ r_g,
// each mask the same for every timestep; the state update itself (GRU's
// z ⊙ h_{t-1}, LSTM's carry) uses the unmasked state, as in Keras.
//
// Addition orders (Keras implementation 1):
//   LSTM:  pre_g = ((x⊙m_g)·W_g + b_g) + (h⊙r_g)·R_g
//   GRU (reset_after):  z = σ((x⊙m_z·W_z + bx_z) + ((h⊙r_z)·R_z + bh_z)),
//          n = a((x⊙m_h·W_h + bx_h) + r ⊙ ((h⊙r_h)·R_h + bh_h))
//   GRU (reset_before): z, r as above without bh;
//          n = a((x⊙m_h·W_h + bx_h) + (r ⊙ (h⊙r_h))·R_h)
//   SimpleRNN: h = a(((x⊙m)·W + b) + (h⊙r)·R)
// Plainer than the unmasked layers (no packed panels, one GEMM per gate and
// step): dropout runs are small experiments, and this path must stay easy
// to check against the reference. One thread at a time.
#include <cstring>

#include "engine/layers/layer_internal.h"
#include "engine/numerics/activation_impls.h"
#include "engine/numerics/activations.h"

namespace driftscope {
namespace {

template <typename T>
class GateMaskedRnnLayer final : public Layer<T> {
 public:
  GateMaskedRnnLayer(const LayerSpec& spec, const ActivationShape& in)
      : spec_(spec),
        in_(in),
        out_(LayerOutputShape(spec, in)),
        weights_(LayerWeightShapes(spec, in)),
        steps_(in.timesteps),
        dim_(in.dim),
        units_(spec.units),
        gates_n_(GateMaskCount(spec)),
        lstm_(spec.kind == LayerKind::kLstm),
        gru_(spec.kind == LayerKind::kGru),
        act_(LibmActivation<T>(spec.activation)),
        ract_(LibmActivation<T>(spec.recurrent_activation)) {}

  const std::vector<WeightShape>& weights() const override { return weights_; }
  ActivationShape input_shape() const override { return in_; }
  ActivationShape output_shape() const override { return out_; }
  void SetGateMasks(const GateMasks<T>* masks) override {
    next_masks_ = masks != nullptr ? *masks : GateMasks<T>{};
  }
  void Forward(const Context& ctx, const T* params, const T* x, int batch,
               T* y) override;
  void Backward(const Context& ctx, const T* params, const T* dy, T* dx,
                T* dparams) override;
  void SetTimestepMask(const uint8_t* keep) override { keep_ = keep; }
  std::vector<const T*> final_states() const override {
    const int64_t block = static_cast<int64_t>(batch_) * units_;
    if (lstm_)
      return {hs_.data() + steps_ * block, cs_.data() + steps_ * block};
    return {hs_.data() + steps_ * block};
  }

 private:
  int64_t rows() const { return static_cast<int64_t>(steps_) * batch_; }
  int64_t hblock() const { return static_cast<int64_t>(batch_) * units_; }
  // Gate g's input, time-major (rows × D): x ⊙ m_g, or x without masks.
  const T* XIn(int g) const {
    return masks_.input == nullptr ? xp_.data()
                                   : xm_.data() + g * rows() * dim_;
  }
  // Gate g's view of h_{t-1} at processing step k (batch × U); gate g's
  // rows for all steps are contiguous (k = 0 .. S-1).
  const T* HIn(int k, int g) const {
    if (masks_.recurrent == nullptr) return hs_.data() + k * hblock();
    return hm_.data() + g * rows() * units_ + k * hblock();
  }
  // The gates with a recurrent product before the activations (GRU
  // reset_before computes the candidate's after r).
  int EarlyRecurrentGates() const {
    return gru_ && !spec_.reset_after ? 2 : gates_n_;
  }
  // out (batch × U) ⊙= mask (batch × U), or nothing without a mask.
  static void Mul(const T* mask, int64_t n, T* out) {
    if (mask == nullptr) return;
    for (int64_t e = 0; e < n; ++e) out[e] = out[e] * mask[e];
  }

  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  const int steps_, dim_, units_, gates_n_;
  const bool lstm_, gru_;
  ActivationKernels<T> act_, ract_;  // chosen by the last Forward's Context
  GateMasks<T> next_masks_, masks_;  // masks_: those of the last Forward
  int batch_ = 0;
  const uint8_t* keep_ = nullptr;  // timestep mask (layer.h), or null
  // Time-major, processing order. gates_: activated gate values per step
  // (LSTM [i|f|g|o], GRU [z|r|n]; SimpleRNN unused); aux_: LSTM τ = a(c),
  // GRU mh_h = (h⊙r_h)·R_h + bh_h (reset_after) or q = r ⊙ (h⊙r_h).
  Buffer<T> xp_, xm_, gates_, hs_, cs_, hm_, aux_, rec_;
  Buffer<T> da_, dhm_, dc_, dh_, dht_, tmp_, dq_, dxp_, dxg_, scratch_;
  Buffer<T> dy_masked_;  // dy with zero_output_for_mask's outputs zeroed
};

template <typename T>
void GateMaskedRnnLayer<T>::Forward(const Context& ctx, const T* params,
                                    const T* x, int batch, T* y) {
  masks_ = next_masks_;
  batch_ = batch;
  const int S = steps_, D = dim_, U = units_, NG = gates_n_, G = NG * U;
  const int64_t R_ = rows(), hb = hblock(),
                gb = static_cast<int64_t>(batch) * G;
  act_ = ActivationFor<T>(ctx, spec_.activation);
  ract_ = ActivationFor<T>(ctx, spec_.recurrent_activation);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  const T* bx = spec_.use_bias ? R + static_cast<int64_t>(U) * G : nullptr;
  const T* bh = (bx != nullptr && gru_ && spec_.reset_after) ? bx + G : nullptr;
  Reserve(&xp_, R_ * D);
  Reserve(&gates_, R_ * G);
  Reserve(&hs_, hb * (S + 1));
  if (lstm_) Reserve(&cs_, hb * (S + 1));
  Reserve(&aux_, R_ * U);
  Reserve(&rec_, gb);
  Reserve(&tmp_, hb);
  GatherTimeMajor(x, batch, S, D, spec_.go_backwards, xp_.data());
  if (masks_.input != nullptr) {
    Reserve(&xm_, NG * R_ * D);
    for (int g = 0; g < NG; ++g) {
      const T* m = masks_.input + g * static_cast<int64_t>(batch) * D;
      T* out = xm_.data() + g * R_ * D;
      for (int k = 0; k < S; ++k)
        for (int64_t e = 0; e < static_cast<int64_t>(batch) * D; ++e) {
          const int64_t i = k * static_cast<int64_t>(batch) * D + e;
          out[i] = xp_[i] * m[e];
        }
    }
  }
  if (masks_.recurrent != nullptr) Reserve(&hm_, NG * R_ * U);
  // x·W_g (+ b_g) for every step at once, one GEMM per gate.
  for (int g = 0; g < NG; ++g)
    ctx.Gemm<T>(false, false, static_cast<int>(R_), U, D, XIn(g), D, W + g * U,
                G, T(0), gates_.data() + g * U, G);
  if (bx != nullptr) AddBiasRows(gates_.data(), R_, G, G, bx);
  std::memset(hs_.data(), 0, sizeof(T) * hb);
  if (lstm_) std::memset(cs_.data(), 0, sizeof(T) * hb);
  T* rec = rec_.data();
  const bool back = spec_.go_backwards;
  for (int k = 0; k < S; ++k) {
    const T* hp = hs_.data() + k * hb;
    T* h = hs_.data() + (k + 1) * hb;
    // A skipped step keeps the state (Keras' rnn(): where(mask, new, old)).
    const auto keep_states = [&] {
      CopySkippedRows(keep_, batch, S, k, back, U, hp, h);
      if (lstm_) {
        CopySkippedRows(keep_, batch, S, k, back, U, cs_.data() + k * hb,
                        cs_.data() + (k + 1) * hb);
      }
    };
    if (masks_.recurrent != nullptr) {
      for (int g = 0; g < NG; ++g) {
        T* hm = hm_.data() + g * R_ * U + k * hb;
        const T* m = masks_.recurrent + g * hb;
        for (int64_t e = 0; e < hb; ++e) hm[e] = hp[e] * m[e];
      }
    }
    for (int g = 0; g < EarlyRecurrentGates(); ++g)
      ctx.Gemm<T>(false, false, batch, U, U, HIn(k, g), U, R + g * U, G, T(0),
                  rec + g * U, G);
    if (bh != nullptr) AddBiasRows(rec, batch, G, G, bh);
    T* z = gates_.data() + k * gb;
    T* aux = aux_.data() + k * hb;
    if (!lstm_ && !gru_) {  // SimpleRNN
      for (int64_t e = 0; e < hb; ++e) h[e] = z[e] + rec[e];
      act_.forward(h, h, hb);
      ctx.RoundActivations(h, hb);
      keep_states();
      continue;
    }
    if (lstm_) {
      const T* cp = cs_.data() + k * hb;
      T* c = cs_.data() + (k + 1) * hb;
      for (int b = 0; b < batch; ++b) {
        T* row = z + static_cast<int64_t>(b) * G;
        const T* rrow = rec + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int j = 0; j < G; ++j) row[j] = row[j] + rrow[j];
        ract_.forward(row, row, 2 * U);              // i, f
        act_.forward(row + 2 * U, row + 2 * U, U);   // g
        ract_.forward(row + 3 * U, row + 3 * U, U);  // o
        ctx.RoundActivations(row, G);
        for (int u = 0; u < U; ++u)
          c[o + u] = row[U + u] * cp[o + u] + row[u] * row[2 * U + u];
        ctx.RoundActivations(c + o, U);
        act_.forward(c + o, aux + o, U);
        ctx.RoundActivations(aux + o, U);
        for (int u = 0; u < U; ++u) h[o + u] = row[3 * U + u] * aux[o + u];
        ctx.RoundActivations(h + o, U);
      }
      keep_states();
      continue;
    }
    // GRU.
    for (int b = 0; b < batch; ++b) {
      T* row = z + static_cast<int64_t>(b) * G;
      const T* rrow = rec + static_cast<int64_t>(b) * G;
      for (int j = 0; j < 2 * U; ++j) row[j] = row[j] + rrow[j];
      ract_.forward(row, row, 2 * U);  // z, r
      ctx.RoundActivations(row, 2 * U);
    }
    if (spec_.reset_after) {
      for (int b = 0; b < batch; ++b) {
        T* row = z + static_cast<int64_t>(b) * G;
        const T* mhh = rec + static_cast<int64_t>(b) * G + 2 * U;
        T* arow = aux + static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) {
          arow[u] = mhh[u];
          row[2 * U + u] = row[2 * U + u] + row[U + u] * mhh[u];
        }
      }
    } else {
      const T* hh = HIn(k, 2);
      for (int b = 0; b < batch; ++b) {
        const T* row = z + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) aux[o + u] = row[U + u] * hh[o + u];
      }
      T* qr = tmp_.data();
      ctx.Gemm<T>(false, false, batch, U, U, aux, U, R + 2 * U, G, T(0), qr, U);
      for (int b = 0; b < batch; ++b) {
        T* row = z + static_cast<int64_t>(b) * G + 2 * U;
        const T* q = qr + static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) row[u] = row[u] + q[u];
      }
    }
    for (int b = 0; b < batch; ++b) {
      T* row = z + static_cast<int64_t>(b) * G;
      act_.forward(row + 2 * U, row + 2 * U, U);  // n
      ctx.RoundActivations(row + 2 * U, U);
      const int64_t o = static_cast<int64_t>(b) * U;
      for (int u = 0; u < U; ++u) {
        const T zg = row[u];
        h[o + u] = zg * hp[o + u] + (T(1) - zg) * row[2 * U + u];
      }
    }
    ctx.RoundActivations(h, hb);
    keep_states();
  }
  WriteRnnOutput(hs_.data(), batch, S, U, spec_.return_sequences, y);
  if (spec_.zero_output_for_mask) {
    ZeroSkippedOutputs(keep_, batch, S, U, back, spec_.return_sequences, y);
  }
}

template <typename T>
void GateMaskedRnnLayer<T>::Backward(const Context& ctx, const T* params,
                                     const T* dy, T* dx, T* dparams) {
  const int S = steps_, D = dim_, U = units_, NG = gates_n_, G = NG * U;
  const int batch = batch_;
  const int64_t R_ = rows(), hb = hblock(),
                gb = static_cast<int64_t>(batch) * G;
  const bool ra = gru_ && spec_.reset_after;
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  T* dW = dparams;
  T* dR = dW + static_cast<int64_t>(D) * G;
  T* dbx = spec_.use_bias ? dR + static_cast<int64_t>(U) * G : nullptr;
  Reserve(&da_, R_ * G);
  if (ra) Reserve(&dhm_, R_ * G);
  Reserve(&dh_, hb);
  Reserve(&dht_, hb);
  Reserve(&tmp_, hb);
  Reserve(&dq_, hb);
  Reserve(&scratch_, G);
  // The recurrent-side gradients of step k: δA itself, except GRU
  // reset_after's [δa_z | δa_r | δa_n ⊙ r].
  T* dhm_all = ra ? dhm_.data() : da_.data();
  std::memset(dh_.data(), 0, sizeof(T) * hb);
  const bool back = spec_.go_backwards;
  dy = MaskedOutputGrad(keep_, spec_.zero_output_for_mask, batch, S, U, back,
                        spec_.return_sequences, dy, &dy_masked_);
  T* dc = nullptr;  // LSTM carried δc
  if (lstm_) {
    Reserve(&dc_, hb);
    dc = dc_.data();
    std::memset(dc, 0, sizeof(T) * hb);
  }
  for (int k = S - 1; k >= 0; --k) {
    T* dht = dht_.data();
    AddOutputGrad(dy, batch, S, U, spec_.return_sequences, k, dh_.data(), dht);
    const T* gate = gates_.data() + k * gb;
    const T* aux = aux_.data() + k * hb;
    const T* hp = hs_.data() + k * hb;
    T* da = da_.data() + k * gb;
    if (lstm_) {
      const T* cp = cs_.data() + k * hb;
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        T* drow = da + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        if (!StepKept(keep_, b, S, k, back)) {
          // Skipped: δA = 0 and δc carries on unchanged.
          std::memset(drow, 0, sizeof(T) * G);
          continue;
        }
        T* t = tmp_.data() + o;
        for (int u = 0; u < U; ++u) t[u] = dht[o + u] * row[3 * U + u];
        act_.backward(aux + o, t, t, U);  // (δh ⊙ o) ⊙ a'(c)
        for (int u = 0; u < U; ++u) {
          const T dct = dc[o + u] + t[u];
          drow[u] = dct * row[2 * U + u];             // δi
          drow[U + u] = dct * cp[o + u];              // δf
          drow[2 * U + u] = dct * row[u];             // δg
          drow[3 * U + u] = dht[o + u] * aux[o + u];  // δo
          dc[o + u] = dct * row[U + u];               // carried δc
        }
        ract_.backward(row, drow, drow, 2 * U);
        act_.backward(row + 2 * U, drow + 2 * U, drow + 2 * U, U);
        ract_.backward(row + 3 * U, drow + 3 * U, drow + 3 * U, U);
      }
    } else if (gru_) {
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        T* drow = da + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) {
          drow[u] = dht[o + u] * (hp[o + u] - row[2 * U + u]);  // δz
          drow[2 * U + u] = dht[o + u] * (T(1) - row[u]);       // δn
        }
        ract_.backward(row, drow, drow, U);
        act_.backward(row + 2 * U, drow + 2 * U, drow + 2 * U, U);
      }
      // Skipped steps: δA = 0 (δr and the recurrent rows follow from it).
      ZeroSkippedRows(keep_, batch, S, k, back, G, G, da);
      if (ra) {
        T* dhm = dhm_.data() + k * gb;
        for (int b = 0; b < batch; ++b) {
          const T* row = gate + static_cast<int64_t>(b) * G;
          T* drow = da + static_cast<int64_t>(b) * G;
          T* hrow = dhm + static_cast<int64_t>(b) * G;
          const T* mhh = aux + static_cast<int64_t>(b) * U;
          for (int u = 0; u < U; ++u) drow[U + u] = drow[2 * U + u] * mhh[u];
          ract_.backward(row + U, drow + U, drow + U, U);  // δa_r
          for (int u = 0; u < 2 * U; ++u) hrow[u] = drow[u];
          for (int u = 0; u < U; ++u)
            hrow[2 * U + u] = drow[2 * U + u] * row[U + u];
        }
      } else {
        // δq = δa_n·R_hᵀ ; δr = δq ⊙ (h⊙r_h)
        ctx.Gemm<T>(false, true, batch, U, U, da + 2 * U, G, R + 2 * U, G, T(0),
                    dq_.data(), U);
        const T* hh = HIn(k, 2);
        for (int b = 0; b < batch; ++b) {
          const T* row = gate + static_cast<int64_t>(b) * G;
          T* drow = da + static_cast<int64_t>(b) * G;
          const int64_t o = static_cast<int64_t>(b) * U;
          for (int u = 0; u < U; ++u) drow[U + u] = dq_[o + u] * hh[o + u];
          ract_.backward(row + U, drow + U, drow + U, U);
        }
      }
    } else {  // SimpleRNN
      for (int64_t e = 0; e < hb; ++e) da[e] = dht[e];
      act_.backward(hs_.data() + (k + 1) * hb, da, da, hb);
      ZeroSkippedRows(keep_, batch, S, k, back, U, U, da);
    }
    if (k == 0) continue;
    // δh_{t-1} = Σ_g (δHm_g·R_gᵀ) ⊙ r_g (+ δh ⊙ z and GRU reset_before's
    // (δq ⊙ r) ⊙ r_h).
    T* dh = dh_.data();
    if (gru_) {
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) dh[o + u] = dht[o + u] * row[u];
      }
    } else {
      std::memset(dh, 0, sizeof(T) * hb);
    }
    const T* dhm = dhm_all + k * gb;
    for (int g = 0; g < EarlyRecurrentGates(); ++g) {
      ctx.Gemm<T>(false, true, batch, U, U, dhm + g * U, G, R + g * U, G, T(0),
                  tmp_.data(), U);
      Mul(masks_.recurrent == nullptr ? nullptr : masks_.recurrent + g * hb, hb,
          tmp_.data());
      for (int64_t e = 0; e < hb; ++e) dh[e] = dh[e] + tmp_[e];
    }
    if (gru_ && !ra) {
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) tmp_[o + u] = dq_[o + u] * row[U + u];
      }
      Mul(masks_.recurrent == nullptr ? nullptr : masks_.recurrent + 2 * hb, hb,
          tmp_.data());
      for (int64_t e = 0; e < hb; ++e) dh[e] = dh[e] + tmp_[e];
    }
    // A skipped step passes δh to the previous step unchanged.
    CopySkippedRows(keep_, batch, S, k, back, U, dht, dh);
  }
  // Weight gradients, one GEMM per gate over all steps (h_{-1} = 0 adds
  // nothing).
  const int nrows = static_cast<int>(R_);
  for (int g = 0; g < NG; ++g)
    ctx.Gemm<T>(true, false, D, U, nrows, XIn(g), D, da_.data() + g * U, G,
                T(0), dW + g * U, G);
  for (int g = 0; g < EarlyRecurrentGates(); ++g)
    ctx.Gemm<T>(true, false, U, U, nrows, HIn(0, g), U, dhm_all + g * U, G,
                T(0), dR + g * U, G);
  if (gru_ && !ra)
    ctx.Gemm<T>(true, false, U, U, nrows, aux_.data(), U, da_.data() + 2 * U, G,
                T(0), dR + 2 * U, G);
  if (dbx != nullptr) {
    SumRows<T>(da_.data(), S, gb, batch, G, G, scratch_.data(), dbx);
    if (ra)
      SumRows<T>(dhm_.data(), S, gb, batch, G, G, scratch_.data(), dbx + G);
  }
  if (dx == nullptr) return;
  // δx = Σ_g (δA_g·W_gᵀ) ⊙ m_g, time-major, then back to batch-major.
  Reserve(&dxp_, R_ * D);
  Reserve(&dxg_, R_ * D);
  const int64_t mblock = static_cast<int64_t>(batch) * D;
  for (int g = 0; g < NG; ++g) {
    T* out = g == 0 ? dxp_.data() : dxg_.data();
    ctx.Gemm<T>(false, true, nrows, D, U, da_.data() + g * U, G, W + g * U, G,
                T(0), out, D);
    if (masks_.input != nullptr) {
      const T* m = masks_.input + g * mblock;
      for (int k = 0; k < S; ++k)
        for (int64_t e = 0; e < mblock; ++e) out[k * mblock + e] *= m[e];
    }
    if (g > 0)
      for (int64_t e = 0; e < R_ * D; ++e) dxp_[e] = dxp_[e] + dxg_[e];
  }
  ScatterBatchMajor(dxp_.data(), batch, S, D, spec_.go_backwards, dx);
}

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewGateMaskedRnnLayer(const LayerSpec& spec,
                                                const ActivationShape& in) {
  return std::make_unique<GateMaskedRnnLayer<T>>(spec, in);
}
template std::unique_ptr<Layer<float>> NewGateMaskedRnnLayer<float>(
    const LayerSpec&, const ActivationShape&);
template std::unique_ptr<Layer<double>> NewGateMaskedRnnLayer<double>(
    const LayerSpec&, const ActivationShape&);

}  // namespace driftscope
