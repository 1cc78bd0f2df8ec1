// Keras LSTM (spec/rnn-math.md §1, backward §9.1).
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
  // Time-major, processing order (layer_internal.h). gates_ holds the
  // activated [i|f|g|o] per step; hs_/cs_ have T+1 blocks (block 0 = zeros).
  Buffer<T> xp_, gates_, hs_, cs_, tau_, hr_;
  // Backward scratch.
  Buffer<T> da_, dh_, dc_, dht_, tmp_, dxp_, scratch_;
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
  for (int k = 0; k < S; ++k) {
    const T* hp = hs_.data() + k * hblock;
    T* hr = hr_.data();
    if (k == 0) {
      std::memset(hr, 0, sizeof(T) * gblock);  // h_{-1} = 0
    } else if (mode1) {
      for (int g = 0; g < 4; ++g)
        ctx.Gemm<T>(false, false, batch, U, U, hp, U, R + g * U, G, T(0),
                    hr + g * U, G);
    } else {
      ctx.Gemm<T>(false, false, batch, G, U, hp, U, R, G, T(0), hr, G);
    }
    T* z = gates_.data() + k * gblock;
    // Mode 2: (xW + hR) + b. Mode 1: (xW + b) + hR, xW + b already in z.
    if (bias != nullptr && !mode1) {
      for (int b = 0; b < batch; ++b) {
        T* zr = z + static_cast<int64_t>(b) * G;
        const T* hrr = hr + static_cast<int64_t>(b) * G;
        for (int j = 0; j < G; ++j) zr[j] = (zr[j] + hrr[j]) + bias[j];
      }
    } else {
      for (int64_t e = 0; e < gblock; ++e) z[e] = z[e] + hr[e];
    }
    for (int b = 0; b < batch; ++b) {
      T* row = z + static_cast<int64_t>(b) * G;
      ract_.forward(row, row, 2 * U);              // i, f
      act_.forward(row + 2 * U, row + 2 * U, U);   // g
      ract_.forward(row + 3 * U, row + 3 * U, U);  // o
    }
    ctx.RoundActivations(z, gblock);  // mixed precision: no-op otherwise
    const T* cp = cs_.data() + k * hblock;
    T* c = cs_.data() + (k + 1) * hblock;
    for (int b = 0; b < batch; ++b) {
      const T* row = z + static_cast<int64_t>(b) * G;
      const int64_t o = static_cast<int64_t>(b) * U;
      for (int u = 0; u < U; ++u)
        c[o + u] = row[U + u] * cp[o + u] + row[u] * row[2 * U + u];
    }
    ctx.RoundActivations(c, hblock);
    T* tau = tau_.data() + k * hblock;
    act_.forward(c, tau, hblock);
    ctx.RoundActivations(tau, hblock);
    T* h = hs_.data() + (k + 1) * hblock;
    for (int b = 0; b < batch; ++b) {
      const T* og = z + static_cast<int64_t>(b) * G + 3 * U;
      const int64_t o = static_cast<int64_t>(b) * U;
      for (int u = 0; u < U; ++u) h[o + u] = og[u] * tau[o + u];
    }
    ctx.RoundActivations(h, hblock);
  }
  WriteRnnOutput(hs_.data(), batch, S, U, spec_.return_sequences, y);
}

template <typename T>
void LstmLayer<T>::Backward(const Context& ctx, const T* params, const T* dy,
                            T* dx, T* dparams) {
  const int S = steps_, D = dim_, U = units_, G = 4 * U, batch = batch_;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  const int64_t gblock = static_cast<int64_t>(batch) * G;
  Reserve(&da_, rows * G);
  Reserve(&dh_, hblock);
  Reserve(&dc_, hblock);
  Reserve(&dht_, hblock);
  Reserve(&tmp_, hblock);
  Reserve(&scratch_, G);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * G;
  T* dW = dparams;
  T* dR = dW + static_cast<int64_t>(D) * G;
  T* db = spec_.use_bias ? dR + static_cast<int64_t>(U) * G : nullptr;

  std::memset(dh_.data(), 0, sizeof(T) * hblock);
  std::memset(dc_.data(), 0, sizeof(T) * hblock);
  for (int k = S - 1; k >= 0; --k) {
    T* dht = dht_.data();
    AddOutputGrad(dy, batch, S, U, spec_.return_sequences, k, dh_.data(), dht);
    const T* gate = gates_.data() + k * gblock;
    const T* tau = tau_.data() + k * hblock;
    const T* cp = cs_.data() + k * hblock;
    T* da = da_.data() + k * gblock;
    T* t = tmp_.data();
    // δc = δc + (δh ⊙ o) ⊙ a'(c), a' taken from τ = a(c).
    for (int b = 0; b < batch; ++b) {
      const T* og = gate + static_cast<int64_t>(b) * G + 3 * U;
      const int64_t o = static_cast<int64_t>(b) * U;
      for (int u = 0; u < U; ++u) t[o + u] = dht[o + u] * og[u];
    }
    act_.backward(tau, t, t, hblock);
    T* dc = dc_.data();
    for (int64_t e = 0; e < hblock; ++e) dc[e] = dc[e] + t[e];
    for (int b = 0; b < batch; ++b) {
      const T* row = gate + static_cast<int64_t>(b) * G;
      T* drow = da + static_cast<int64_t>(b) * G;
      const int64_t o = static_cast<int64_t>(b) * U;
      GateGrads(U, row, cp + o, tau + o, dht + o, dc + o, drow);
      ract_.backward(row, drow, drow, 2 * U);
      act_.backward(row + 2 * U, drow + 2 * U, drow + 2 * U, U);
      ract_.backward(row + 3 * U, drow + 3 * U, drow + 3 * U, U);
    }
    if (k > 0)
      ctx.Gemm<T>(false, true, batch, U, G, da, G, R, G, T(0), dh_.data(), U);
  }
  // Weight gradients as single GEMMs over all T·B rows. Step 0's h_{-1} is
  // zero, so dR starts at step 1.
  ctx.Gemm<T>(true, false, D, G, static_cast<int>(rows), xp_.data(), D,
              da_.data(), G, T(0), dW, G);
  ctx.Gemm<T>(true, false, U, G, static_cast<int>(rows - batch),
              hs_.data() + hblock, U, da_.data() + gblock, G, T(0), dR, G);
  if (db != nullptr)
    SumRows<T>(da_.data(), S, gblock, batch, G, G, scratch_.data(), db);
  if (dx != nullptr) {
    Reserve(&dxp_, rows * D);
    ctx.Gemm<T>(false, true, static_cast<int>(rows), D, G, da_.data(), G, W, G,
                T(0), dxp_.data(), D);
    ScatterBatchMajor(dxp_.data(), batch, S, D, spec_.go_backwards, dx);
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
