// Keras GRU, reset_after true and false (docs/numerics.md §2, backward
// §9.2-§9.3). Both implementations add in the same order (Keras does too);
// implementation 1 only splits every GEMM into one of width U per gate.
#include <cstring>

#include "engine/layers/layer_internal.h"
#include "engine/numerics/activation_impls.h"
#include "engine/numerics/activations.h"

namespace driftscope {
namespace {

template <typename T>
class GruLayer final : public Layer<T> {
 public:
  GruLayer(const LayerSpec& spec, const ActivationShape& in)
      : spec_(spec),
        in_(in),
        out_(LayerOutputShape(spec, in)),
        weights_(LayerWeightShapes(spec, in)),
        steps_(in.timesteps),
        dim_(in.dim),
        units_(spec.units),
        act_(LibmActivation<T>(spec.activation)),
        ract_(LibmActivation<T>(spec.recurrent_activation)) {}

  const std::vector<WeightShape>& weights() const override { return weights_; }
  ActivationShape input_shape() const override { return in_; }
  ActivationShape output_shape() const override { return out_; }

  void Forward(const Context& ctx, const T* params, const T* x, int batch,
               T* y) override;
  void Backward(const Context& ctx, const T* params, const T* dy, T* dx,
                T* dparams) override;
  void SetTimestepMask(const uint8_t* keep) override { keep_ = keep; }

  std::vector<const T*> final_states() const override {
    return {hs_.data() + steps_ * static_cast<int64_t>(batch_) * units_};
  }

 private:
  // Packs R[:, 0 : n] (split per gate in mode 1) for the per-step products
  // h·R of `rows`-row h's.
  void PackRecurrent(const Context& ctx, int rows, const T* R, int n) {
    const int U = units_, G = 3 * units_;
    packed_gates_ = mode1_ ? n / U : 1;
    for (int g = 0; g < packed_gates_; ++g) {
      ctx.Pack<T>(rows, mode1_ ? U : n, U, R + g * U, G, &r_packed_[g]);
    }
  }
  // C = A·R[:, 0 : n] with the R PackRecurrent packed.
  void RecurrentGemm(const Context& ctx, const T* a, T* c, int ldc) const {
    for (int g = 0; g < packed_gates_; ++g) {
      ctx.GemmPacked<T>(a, units_, r_packed_[g], c + g * units_, ldc);
    }
  }

  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  const int steps_, dim_, units_;
  // Chosen by the Context of the last Forward (the profile's activation
  // implementation and implementation override); Backward uses the same.
  ActivationKernels<T> act_, ract_;
  bool mode1_ = false;
  int batch_ = 0;
  const uint8_t* keep_ = nullptr;  // timestep mask (layer.h), or null
  // Time-major, processing order. gates_: activated [z|r|n] per step;
  // aux_: mh_h = h·R_h + b_h (reset_after) or q = r ⊙ h_{t-1} (otherwise).
  Buffer<T> xp_, gates_, hs_, aux_, mh_, qr_;
  Buffer<T> dxg_, dhm_, dh_, dht_, tmp_, dq_, dxp_, scratch_;
  Buffer<T> rt_;         // Rᵀ, (3U, U)
  Buffer<T> dy_masked_;  // dy with zero_output_for_mask's outputs zeroed
  // Packed once per Forward/Backward for the per-step products (same bits
  // as unpacked): R's z,r(,h) columns (per gate in mode 1), R_h for
  // reset_before's q·R_h, and the Rᵀ row blocks of the backward products.
  PackedB<T> r_packed_[3], rh_packed_, rt_packed_, rht_packed_;
  int packed_gates_ = 0;
};

template <typename T>
void GruLayer<T>::Forward(const Context& ctx, const T* params, const T* x,
                          int batch, T* y) {
  const int S = steps_, D = dim_, U = units_, G = 3 * U;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  const int64_t gblock = static_cast<int64_t>(batch) * G;
  const bool reset_after = spec_.reset_after;
  batch_ = batch;
  act_ = ActivationFor<T>(ctx, spec_.activation);
  ract_ = ActivationFor<T>(ctx, spec_.recurrent_activation);
  mode1_ = (ctx.profile().implementation != 0 ? ctx.profile().implementation
                                              : spec_.implementation) == 1;
  Reserve(&xp_, rows * D);
  Reserve(&gates_, rows * G);
  Reserve(&hs_, hblock * (S + 1));
  Reserve(&aux_, rows * U);
  Reserve(&mh_, gblock);
  Reserve(&qr_, hblock);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  const T* bx = spec_.use_bias ? R + static_cast<int64_t>(U) * G : nullptr;
  const T* bh = (bx != nullptr && reset_after) ? bx + G : nullptr;

  GatherTimeMajor(x, batch, S, D, spec_.go_backwards, xp_.data());
  // mx = x·W + b_x for every step (mode 1: one GEMM per gate).
  if (mode1_) {
    for (int g = 0; g < 3; ++g)
      ctx.Gemm<T>(false, false, static_cast<int>(rows), U, D, xp_.data(), D,
                  W + g * U, G, T(0), gates_.data() + g * U, G);
  } else {
    ctx.Gemm<T>(false, false, static_cast<int>(rows), G, D, xp_.data(), D, W, G,
                T(0), gates_.data(), G);
  }
  if (bx != nullptr) AddBiasRows(gates_.data(), rows, G, G, bx);
  std::memset(hs_.data(), 0, sizeof(T) * hblock);
  // mh_ holds h·R (+ b_h): width 3U with reset_after, else the z,r part.
  const int mh_cols = reset_after ? G : 2 * U;
  if (S > 1) {
    PackRecurrent(ctx, batch, R, mh_cols);
    if (!reset_after) ctx.Pack<T>(batch, U, U, R + 2 * U, G, &rh_packed_);
  }
  for (int k = 0; k < S; ++k) {
    const T* hp = hs_.data() + k * hblock;
    T* mh = mh_.data();
    if (k == 0) {
      std::memset(mh, 0, sizeof(T) * gblock);  // h_{-1} = 0
    } else {
      RecurrentGemm(ctx, hp, mh, G);
    }
    if (bh != nullptr) AddBiasRows(mh, batch, G, G, bh);
    T* gate = gates_.data() + k * gblock;
    for (int b = 0; b < batch; ++b) {
      T* row = gate + static_cast<int64_t>(b) * G;
      const T* mrow = mh + static_cast<int64_t>(b) * G;
      for (int j = 0; j < 2 * U; ++j) row[j] = row[j] + mrow[j];
      ract_.forward(row, row, 2 * U);  // z, r
      ctx.RoundActivations(row, 2 * U);
    }
    T* aux = aux_.data() + k * hblock;
    if (reset_after) {
      for (int b = 0; b < batch; ++b) {
        T* row = gate + static_cast<int64_t>(b) * G;
        const T* mrow = mh + static_cast<int64_t>(b) * G + 2 * U;
        T* arow = aux + static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) {
          arow[u] = mrow[u];
          row[2 * U + u] = row[2 * U + u] + row[U + u] * mrow[u];
        }
      }
    } else {
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) aux[o + u] = row[U + u] * hp[o + u];
      }
      if (k == 0) {
        std::memset(qr_.data(), 0, sizeof(T) * hblock);
      } else {
        ctx.GemmPacked<T>(aux, U, rh_packed_, qr_.data(), U);
      }
      for (int b = 0; b < batch; ++b) {
        T* row = gate + static_cast<int64_t>(b) * G + 2 * U;
        const T* q = qr_.data() + static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) row[u] = row[u] + q[u];
      }
    }
    T* h = hs_.data() + (k + 1) * hblock;
    for (int b = 0; b < batch; ++b) {
      T* row = gate + static_cast<int64_t>(b) * G;
      act_.forward(row + 2 * U, row + 2 * U, U);  // n
      ctx.RoundActivations(row + 2 * U, U);
      const int64_t o = static_cast<int64_t>(b) * U;
      for (int u = 0; u < U; ++u) {
        const T z = row[u];
        h[o + u] = z * hp[o + u] + (T(1) - z) * row[2 * U + u];
      }
    }
    ctx.RoundActivations(h, hblock);
    // A skipped step keeps the state (Keras' rnn(): where(mask, new, old)).
    CopySkippedRows(keep_, batch, S, k, spec_.go_backwards, U, hp, h);
  }
  WriteRnnOutput(hs_.data(), batch, S, U, spec_.return_sequences, y);
  if (spec_.zero_output_for_mask) {
    ZeroSkippedOutputs(keep_, batch, S, U, spec_.go_backwards,
                       spec_.return_sequences, y);
  }
}

template <typename T>
void GruLayer<T>::Backward(const Context& ctx, const T* params, const T* dy,
                           T* dx, T* dparams) {
  const int S = steps_, D = dim_, U = units_, G = 3 * U, batch = batch_;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  const int64_t gblock = static_cast<int64_t>(batch) * G;
  const bool reset_after = spec_.reset_after;
  Reserve(&dxg_, rows * G);
  if (reset_after) Reserve(&dhm_, rows * G);
  Reserve(&dh_, hblock);
  Reserve(&dht_, hblock);
  Reserve(&tmp_, hblock);
  Reserve(&dq_, hblock);
  Reserve(&scratch_, G);
  Reserve(&rt_, static_cast<int64_t>(G) * U);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  // The per-step products with Rᵀ read a stored Rᵀ (G, U): the GEMM then
  // packs a plain matrix instead of transposing R while packing, every
  // step. Same packed panels, same bits. Rows [gU, (g+1)U) are gate g's.
  Transpose(R, U, G, rt_.data());
  const T* RT = rt_.data();
  if (S > 1) ctx.Pack<T>(batch, U, reset_after ? G : 2 * U, RT, U, &rt_packed_);
  if (!reset_after) {
    ctx.Pack<T>(batch, U, U, RT + static_cast<int64_t>(2 * U) * U, U,
                &rht_packed_);
  }
  T* dW = dparams;
  T* dR = dW + static_cast<int64_t>(D) * G;
  T* dbx = spec_.use_bias ? dR + static_cast<int64_t>(U) * G : nullptr;

  dy = MaskedOutputGrad(keep_, spec_.zero_output_for_mask, batch, S, U,
                        spec_.go_backwards, spec_.return_sequences, dy,
                        &dy_masked_);
  const bool back = spec_.go_backwards;
  std::memset(dh_.data(), 0, sizeof(T) * hblock);
  for (int k = S - 1; k >= 0; --k) {
    T* dht = dht_.data();
    AddOutputGrad(dy, batch, S, U, spec_.return_sequences, k, dh_.data(), dht);
    const T* gate = gates_.data() + k * gblock;
    const T* hp = hs_.data() + k * hblock;
    const T* aux = aux_.data() + k * hblock;
    T* dxg = dxg_.data() + k * gblock;
    for (int b = 0; b < batch; ++b) {
      const T* row = gate + static_cast<int64_t>(b) * G;
      T* drow = dxg + static_cast<int64_t>(b) * G;
      const int64_t o = static_cast<int64_t>(b) * U;
      for (int u = 0; u < U; ++u) {
        drow[u] = dht[o + u] * (hp[o + u] - row[2 * U + u]);  // δz
        drow[2 * U + u] = dht[o + u] * (T(1) - row[u]);       // δn
      }
      ract_.backward(row, drow, drow, U);
      act_.backward(row + 2 * U, drow + 2 * U, drow + 2 * U, U);
    }
    // A skipped step computed nothing the loss sees: its δ rows are zero
    // (so are δr and the recurrent rows derived from them below), and δh
    // goes to the previous step unchanged (after the products).
    ZeroSkippedRows(keep_, batch, S, k, back, G, G, dxg);
    if (reset_after) {
      T* dhm = dhm_.data() + k * gblock;
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        T* drow = dxg + static_cast<int64_t>(b) * G;
        T* hrow = dhm + static_cast<int64_t>(b) * G;
        const T* mhh = aux + static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) drow[U + u] = drow[2 * U + u] * mhh[u];
        ract_.backward(row + U, drow + U, drow + U, U);  // δa_r
        for (int u = 0; u < 2 * U; ++u) hrow[u] = drow[u];
        for (int u = 0; u < U; ++u)
          hrow[2 * U + u] = drow[2 * U + u] * row[U + u];
      }
      if (k > 0) {
        // δh_{t-1} = δh ⊙ z + δHm·Rᵀ
        ctx.GemmPacked<T>(dhm, G, rt_packed_, tmp_.data(), U);
        for (int b = 0; b < batch; ++b) {
          const T* row = gate + static_cast<int64_t>(b) * G;
          const int64_t o = static_cast<int64_t>(b) * U;
          for (int u = 0; u < U; ++u)
            dh_[o + u] = dht[o + u] * row[u] + tmp_[o + u];
        }
        CopySkippedRows(keep_, batch, S, k, back, U, dht, dh_.data());
      }
    } else {
      // δq = δa_n·R_hᵀ ; δr = δq ⊙ h_{t-1}
      T* dq = dq_.data();
      ctx.GemmPacked<T>(dxg + 2 * U, G, rht_packed_, dq, U);
      for (int b = 0; b < batch; ++b) {
        const T* row = gate + static_cast<int64_t>(b) * G;
        T* drow = dxg + static_cast<int64_t>(b) * G;
        const int64_t o = static_cast<int64_t>(b) * U;
        for (int u = 0; u < U; ++u) drow[U + u] = dq[o + u] * hp[o + u];
        ract_.backward(row + U, drow + U, drow + U, U);
      }
      if (k > 0) {
        // δh_{t-1} = (δh ⊙ z + [δa_z|δa_r]·R_{z,r}ᵀ) + δq ⊙ r
        ctx.GemmPacked<T>(dxg, G, rt_packed_, tmp_.data(), U);
        for (int b = 0; b < batch; ++b) {
          const T* row = gate + static_cast<int64_t>(b) * G;
          const int64_t o = static_cast<int64_t>(b) * U;
          for (int u = 0; u < U; ++u)
            dh_[o + u] =
                (dht[o + u] * row[u] + tmp_[o + u]) + dq[o + u] * row[U + u];
        }
        CopySkippedRows(keep_, batch, S, k, back, U, dht, dh_.data());
      }
    }
  }
  const int nrows = static_cast<int>(rows);
  ctx.Gemm<T>(true, false, D, G, nrows, xp_.data(), D, dxg_.data(), G, T(0), dW,
              G);
  // Step 0's h_{-1} (and q) are zero, so the recurrent sums start at step 1.
  const T* hprev = hs_.data() + hblock;
  if (reset_after) {
    ctx.Gemm<T>(true, false, U, G, nrows - batch, hprev, U,
                dhm_.data() + gblock, G, T(0), dR, G);
  } else {
    ctx.Gemm<T>(true, false, U, 2 * U, nrows - batch, hprev, U,
                dxg_.data() + gblock, G, T(0), dR, G);
    ctx.Gemm<T>(true, false, U, U, nrows - batch, aux_.data() + hblock, U,
                dxg_.data() + gblock + 2 * U, G, T(0), dR + 2 * U, G);
  }
  if (dbx != nullptr) {
    SumRows<T>(dxg_.data(), S, gblock, batch, G, G, scratch_.data(), dbx);
    if (reset_after)
      SumRows<T>(dhm_.data(), S, gblock, batch, G, G, scratch_.data(), dbx + G);
  }
  if (dx != nullptr) {
    InputGradient(ctx, dxg_.data(), rows, G, W, D, batch, S, spec_.go_backwards,
                  &dxp_, dx);
  }
}

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewGruLayer(const LayerSpec& spec,
                                      const ActivationShape& in) {
  return std::make_unique<GruLayer<T>>(spec, in);
}
template std::unique_ptr<Layer<float>> NewGruLayer<float>(
    const LayerSpec&, const ActivationShape&);
template std::unique_ptr<Layer<double>> NewGruLayer<double>(
    const LayerSpec&, const ActivationShape&);

}  // namespace driftscope
