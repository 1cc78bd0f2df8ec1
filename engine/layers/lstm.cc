// Keras LSTM (docs/numerics.md §1, backward §9.1).
#include <cstring>

#include "engine/layers/layer_internal.h"
#include "engine/numerics/activation_impls.h"
#include "engine/numerics/activations.h"

namespace driftscope {
namespace {

// δi, δf, δg, δo of one sample (before the activation derivatives) and the
// carried δc ← δc ⊙ f. __restrict lets the compiler vectorize it.
template <typename T>
void GateGrads(int U, const T* __restrict row, const T* __restrict cp,
               const T* __restrict tau, const T* __restrict dht,
               T* __restrict dc, T* __restrict drow) {
  for (int u = 0; u < U; ++u) {
    const T dct = dc[u];
    drow[u] = dct * row[2 * U + u];     // δi
    drow[U + u] = dct * cp[u];          // δf
    drow[2 * U + u] = dct * row[u];     // δg
    drow[3 * U + u] = dht[u] * tau[u];  // δo
    dc[u] = dct * row[U + u];           // carried δc
  }
}

// z ← (z + hr) + bias, Keras mode 2's order. hr is null at step 0
// (h_{-1} = 0), where a zero is added in its place so the bits are those of
// adding a zero product; bias is null without a bias or in mode 1 (already
// in z).
template <typename T>
void AddRecurrent(int G, const T* __restrict hr, const T* __restrict bias,
                  T* __restrict z) {
  if (hr != nullptr && bias != nullptr) {
    for (int j = 0; j < G; ++j) z[j] = (z[j] + hr[j]) + bias[j];
  } else if (hr != nullptr) {
    for (int j = 0; j < G; ++j) z[j] = z[j] + hr[j];
  } else if (bias != nullptr) {
    for (int j = 0; j < G; ++j) z[j] = (z[j] + T(0)) + bias[j];
  } else {
    for (int j = 0; j < G; ++j) z[j] = z[j] + T(0);
  }
}

// c = f ⊙ c_{t-1} + i ⊙ g over one sample's activated gate row [i|f|g|o].
template <typename T>
void CellState(int U, const T* __restrict row, const T* __restrict cp,
               T* __restrict c) {
  for (int u = 0; u < U; ++u)
    c[u] = row[U + u] * cp[u] + row[u] * row[2 * U + u];
}

// h = o ⊙ τ.
template <typename T>
void HiddenState(int U, const T* __restrict og, const T* __restrict tau,
                 T* __restrict h) {
  for (int u = 0; u < U; ++u) h[u] = og[u] * tau[u];
}

// δh = g + carried (g: the output gradient at this step, or null), and
// t = δh ⊙ o.
template <typename T>
void OutputGrad(int U, const T* __restrict g, const T* __restrict carried,
                const T* __restrict og, T* __restrict dht, T* __restrict t) {
  if (g != nullptr) {
    for (int u = 0; u < U; ++u) dht[u] = g[u] + carried[u];
  } else {
    for (int u = 0; u < U; ++u) dht[u] = carried[u];
  }
  for (int u = 0; u < U; ++u) t[u] = dht[u] * og[u];
}

template <typename T>
class LstmLayer final : public Layer<T> {
 public:
  LstmLayer(const LayerSpec& spec, const ActivationShape& in)
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
    const int64_t block = static_cast<int64_t>(batch_) * units_;
    return {hs_.data() + steps_ * block, cs_.data() + steps_ * block};
  }

 private:
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
  // Time-major, processing order (layer_internal.h). gates_ holds the
  // activated [i|f|g|o] per step; hs_/cs_ have T+1 blocks (block 0 = zeros).
  Buffer<T> xp_, gates_, hs_, cs_, tau_, hr_;
  // Backward scratch.
  Buffer<T> da_, dh_, dc_, dht_, tmp_, dxp_;
  // Skipped steps: δh passed on unchanged (batch, U); the output gradient
  // with zero_output_for_mask's constant outputs zeroed.
  Buffer<T> pass_, dy_masked_;
  Buffer<T> rt_;  // Rᵀ, (4U, U)
  // R (per gate in mode 1) and Rᵀ packed once per Forward/Backward for the
  // per-step products (Context::Pack: same bits as unpacked).
  PackedB<T> r_packed_[4], rt_packed_;
  Buffer<T> dbs_;  // per-step batch sums of δA, (T, 4U)
};

template <typename T>
void LstmLayer<T>::Forward(const Context& ctx, const T* params, const T* x,
                           int batch, T* y) {
  const int S = steps_, D = dim_, U = units_, G = 4 * U;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  const int64_t gblock = static_cast<int64_t>(batch) * G;
  batch_ = batch;
  Reserve(&xp_, rows * D);
  Reserve(&gates_, rows * G);
  Reserve(&hs_, hblock * (S + 1));
  Reserve(&cs_, hblock * (S + 1));
  Reserve(&tau_, rows * U);
  Reserve(&hr_, gblock);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  const T* bias = spec_.use_bias ? R + static_cast<int64_t>(U) * G : nullptr;
  act_ = ActivationFor<T>(ctx, spec_.activation);
  ract_ = ActivationFor<T>(ctx, spec_.recurrent_activation);
  const int impl = ctx.profile().implementation != 0
                       ? ctx.profile().implementation
                       : spec_.implementation;
  mode1_ = impl == 1;
  const bool mode1 = mode1_;

  GatherTimeMajor(x, batch, S, D, spec_.go_backwards, xp_.data());
  // x·W for every step at once: gates_ first holds the input projections.
  if (mode1) {
    // Keras mode 1: one GEMM of width U per gate, bias added right after.
    for (int g = 0; g < 4; ++g)
      ctx.Gemm<T>(false, false, static_cast<int>(rows), U, D, xp_.data(), D,
                  W + g * U, G, T(0), gates_.data() + g * U, G);
    if (bias != nullptr) AddBiasRows(gates_.data(), rows, G, G, bias);
  } else {
    ctx.Gemm<T>(false, false, static_cast<int>(rows), G, D, xp_.data(), D, W, G,
                T(0), gates_.data(), G);
  }
  std::memset(hs_.data(), 0, sizeof(T) * hblock);
  std::memset(cs_.data(), 0, sizeof(T) * hblock);
  if (S > 1) {
    if (mode1) {
      for (int g = 0; g < 4; ++g)
        ctx.Pack<T>(batch, U, U, R + g * U, G, &r_packed_[g]);
    } else {
      ctx.Pack<T>(batch, G, U, R, G, &r_packed_[0]);
    }
  }
  // Mode 2 adds the bias after the recurrent term; mode 1 already has it.
  const T* step_bias = mode1 ? nullptr : bias;
  for (int k = 0; k < S; ++k) {
    const T* hp = hs_.data() + k * hblock;
    T* hr = hr_.data();
    // h_{-1} = 0: step 0 adds a zero recurrent term instead of a product.
    if (k > 0) {
      if (mode1) {
        for (int g = 0; g < 4; ++g)
          ctx.GemmPacked<T>(hp, U, r_packed_[g], hr + g * U, G);
      } else {
        ctx.GemmPacked<T>(hp, U, r_packed_[0], hr, G);
      }
    }
    T* z = gates_.data() + k * gblock;
    const T* cp = cs_.data() + k * hblock;
    T* c = cs_.data() + (k + 1) * hblock;
    T* tau = tau_.data() + k * hblock;
    T* h = hs_.data() + (k + 1) * hblock;
    // One pass per sample over its gate row, so the row stays in L1 from
    // the pre-activation sum to h.
    for (int b = 0; b < batch; ++b) {
      T* row = z + static_cast<int64_t>(b) * G;
      const int64_t o = static_cast<int64_t>(b) * U;
      if (b + 1 < batch) PrefetchRow(row + G, G);
      AddRecurrent(G, k > 0 ? hr + static_cast<int64_t>(b) * G : nullptr,
                   step_bias, row);
      ract_.forward(row, row, 2 * U);              // i, f
      act_.forward(row + 2 * U, row + 2 * U, U);   // g
      ract_.forward(row + 3 * U, row + 3 * U, U);  // o
      ctx.RoundActivations(row, G);  // mixed precision: no-op otherwise
      CellState(U, row, cp + o, c + o);
      ctx.RoundActivations(c + o, U);
      act_.forward(c + o, tau + o, U);
      ctx.RoundActivations(tau + o, U);
      HiddenState(U, row + 3 * U, tau + o, h + o);
      ctx.RoundActivations(h + o, U);
      // A step the mask skips keeps the state (Keras' rnn(): where(mask,
      // new, old)); the output there is the previous output, which is h.
      const bool kept = StepKept(keep_, b, S, k, spec_.go_backwards);
      if (!kept) {
        std::memcpy(c + o, cp + o, sizeof(T) * U);
        std::memcpy(h + o, hp + o, sizeof(T) * U);
      }
      // The output sequence is written while h is in L1, not in a later
      // pass over all of hs_.
      if (spec_.return_sequences) {
        T* out = y + (static_cast<int64_t>(b) * S + k) * U;
        if (!kept && spec_.zero_output_for_mask) {
          std::memset(out, 0, sizeof(T) * U);
        } else {
          std::memcpy(out, h + o, sizeof(T) * U);
        }
      }
    }
  }
  if (!spec_.return_sequences) {
    std::memcpy(y, hs_.data() + S * hblock, sizeof(T) * hblock);
    if (spec_.zero_output_for_mask)
      ZeroSkippedOutputs(keep_, batch, S, U, spec_.go_backwards, false, y);
  }
}

template <typename T>
void LstmLayer<T>::Backward(const Context& ctx, const T* params, const T* dy,
                            T* dx, T* dparams) {
  const int S = steps_, D = dim_, U = units_, G = 4 * U, batch = batch_;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  const int64_t gblock = static_cast<int64_t>(batch) * G;
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  T* dW = dparams;
  T* dR = dW + static_cast<int64_t>(D) * G;
  T* db = spec_.use_bias ? dR + static_cast<int64_t>(U) * G : nullptr;
  Reserve(&da_, rows * G);
  Reserve(&dh_, hblock);
  Reserve(&dc_, hblock);
  Reserve(&dht_, U);
  Reserve(&tmp_, U);
  Reserve(&rt_, static_cast<int64_t>(G) * U);
  if (db != nullptr) Reserve(&dbs_, static_cast<int64_t>(S) * G);
  if (keep_ != nullptr) Reserve(&pass_, hblock);
  dy = MaskedOutputGrad(keep_, spec_.zero_output_for_mask, batch, S, U,
                        spec_.go_backwards, spec_.return_sequences, dy,
                        &dy_masked_);
  // δh·Rᵀ runs every step: with Rᵀ stored once, the GEMM packs a plain
  // matrix instead of transposing R while packing, T times. The packed
  // panels, hence the bits, are the same.
  Transpose(R, U, G, rt_.data());
  if (S > 1) ctx.Pack<T>(batch, U, G, rt_.data(), U, &rt_packed_);

  std::memset(dh_.data(), 0, sizeof(T) * hblock);
  std::memset(dc_.data(), 0, sizeof(T) * hblock);
  for (int k = S - 1; k >= 0; --k) {
    const T* gate = gates_.data() + k * gblock;
    const T* taus = tau_.data() + k * hblock;
    const T* cps = cs_.data() + k * hblock;
    T* da = da_.data() + k * gblock;
    T* dht = dht_.data();
    T* t = tmp_.data();
    for (int b = 0; b < batch; ++b) {
      const T* row = gate + static_cast<int64_t>(b) * G;
      T* drow = da + static_cast<int64_t>(b) * G;
      const int64_t o = static_cast<int64_t>(b) * U;
      const T* tau = taus + o;
      T* dc = dc_.data() + o;
      // δh = output gradient at this step (if any) + carried gradient.
      const T* g = nullptr;
      if (spec_.return_sequences) {
        g = dy + (static_cast<int64_t>(b) * S + k) * U;
      } else if (k == S - 1) {
        g = dy + static_cast<int64_t>(b) * U;
      }
      if (b + 1 < batch) {
        PrefetchRow(row + G, G);
        PrefetchRow(cps + o + U, U);
        PrefetchRow(tau + U, U);
        if (g != nullptr)
          PrefetchRow(g + (spec_.return_sequences ? S * U : U), U);
      }
      OutputGrad(U, g, dh_.data() + o, row + 3 * U, dht, t);
      if (!StepKept(keep_, b, S, k, spec_.go_backwards)) {
        // The step computed nothing the loss sees: δA = 0, δc carries on
        // unchanged and δh goes to the previous step as it is.
        std::memcpy(pass_.data() + o, dht, sizeof(T) * U);
        std::memset(drow, 0, sizeof(T) * G);
        if (db != nullptr) AccumulateRow(G, b == 0, drow, dbs_.data() + k * G);
        continue;
      }
      // δc = δc + (δh ⊙ o) ⊙ a'(c), a' taken from τ = a(c).
      act_.backward(tau, t, t, U);
      for (int u = 0; u < U; ++u) dc[u] = dc[u] + t[u];
      GateGrads(U, row, cps + o, tau, dht, dc, drow);
      ract_.backward(row, drow, drow, 2 * U);
      act_.backward(row + 2 * U, drow + 2 * U, drow + 2 * U, U);
      ract_.backward(row + 3 * U, drow + 3 * U, drow + 3 * U, U);
      // db's per-step sum over the batch, while δA is in L1.
      if (db != nullptr) AccumulateRow(G, b == 0, drow, dbs_.data() + k * G);
    }
    if (k > 0) {
      ctx.GemmPacked<T>(da, G, rt_packed_, dh_.data(), U);
      CopySkippedRows(keep_, batch, S, k, spec_.go_backwards, U, pass_.data(),
                      dh_.data());
    }
  }
  // Weight gradients as single GEMMs over all T·B rows. Step 0's h_{-1} is
  // zero, so dR starts at step 1.
  ctx.Gemm<T>(true, false, D, G, static_cast<int>(rows), xp_.data(), D,
              da_.data(), G, T(0), dW, G);
  ctx.Gemm<T>(true, false, U, G, static_cast<int>(rows - batch),
              hs_.data() + hblock, U, da_.data() + gblock, G, T(0), dR, G);
  // "Batch, then time" (SumRows' order): the per-step sums, in step order.
  if (db != nullptr) SumSteps(dbs_.data(), S, G, db);
  if (dx != nullptr) {
    InputGradient(ctx, da_.data(), rows, G, W, D, batch, S, spec_.go_backwards,
                  &dxp_, dx);
  }
}

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewLstmLayer(const LayerSpec& spec,
                                       const ActivationShape& in) {
  return std::make_unique<LstmLayer<T>>(spec, in);
}
template std::unique_ptr<Layer<float>> NewLstmLayer<float>(
    const LayerSpec&, const ActivationShape&);
template std::unique_ptr<Layer<double>> NewLstmLayer<double>(
    const LayerSpec&, const ActivationShape&);

}  // namespace driftscope
