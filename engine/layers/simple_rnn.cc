// Keras SimpleRNN (docs/numerics.md §3, backward §9.4):
// h_t = a((x_t·W + b) + h_{t-1}·R), the bias added before the recurrent term.
#include <cstring>

#include "engine/layers/layer_internal.h"
#include "engine/numerics/activation_impls.h"
#include "engine/numerics/activations.h"

namespace driftscope {
namespace {

template <typename T>
class SimpleRnnLayer final : public Layer<T> {
 public:
  SimpleRnnLayer(const LayerSpec& spec, const ActivationShape& in)
      : spec_(spec),
        in_(in),
        out_(LayerOutputShape(spec, in)),
        weights_(LayerWeightShapes(spec, in)),
        steps_(in.timesteps),
        dim_(in.dim),
        units_(spec.units),
        act_(LibmActivation<T>(spec.activation)) {}

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
  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  const int steps_, dim_, units_;
  ActivationKernels<T> act_;  // chosen by the last Forward's Context
  int batch_ = 0;
  const uint8_t* keep_ = nullptr;  // timestep mask (layer.h), or null
  // Time-major, processing order; pre_ holds x·W + b, hs_ T+1 blocks.
  Buffer<T> xp_, pre_, hs_, hr_;
  Buffer<T> da_, dh_, dxp_, scratch_;
  // Skipped steps: δh passed on unchanged; dy with zero_output_for_mask's
  // outputs zeroed.
  Buffer<T> pass_, dy_masked_;
  Buffer<T> rt_;  // Rᵀ, (U, U)
  // R and Rᵀ packed once per Forward/Backward for the per-step products.
  PackedB<T> r_packed_, rt_packed_;
};

template <typename T>
void SimpleRnnLayer<T>::Forward(const Context& ctx, const T* params, const T* x,
                                int batch, T* y) {
  const int S = steps_, D = dim_, U = units_;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  batch_ = batch;
  act_ = ActivationFor<T>(ctx, spec_.activation);
  Reserve(&xp_, rows * D);
  Reserve(&pre_, rows * U);
  Reserve(&hs_, hblock * (S + 1));
  Reserve(&hr_, hblock);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * U;
  const T* bias = spec_.use_bias ? R + static_cast<int64_t>(U) * U : nullptr;
  GatherTimeMajor(x, batch, S, D, spec_.go_backwards, xp_.data());
  ctx.Gemm<T>(false, false, static_cast<int>(rows), U, D, xp_.data(), D, W, U,
              T(0), pre_.data(), U);
  if (bias != nullptr) AddBiasRows(pre_.data(), rows, U, U, bias);
  std::memset(hs_.data(), 0, sizeof(T) * hblock);
  if (S > 1) ctx.Pack<T>(batch, U, U, R, U, &r_packed_);
  for (int k = 0; k < S; ++k) {
    T* h = hs_.data() + (k + 1) * hblock;
    const T* pre = pre_.data() + k * hblock;
    if (k == 0) {
      for (int64_t e = 0; e < hblock; ++e) h[e] = pre[e] + T(0);
    } else {
      ctx.GemmPacked<T>(hs_.data() + k * hblock, U, r_packed_, hr_.data(), U);
      for (int64_t e = 0; e < hblock; ++e) h[e] = pre[e] + hr_[e];
    }
    act_.forward(h, h, hblock);
    ctx.RoundActivations(h, hblock);
    // A skipped step keeps the state (Keras' rnn(): where(mask, new, old)).
    CopySkippedRows(keep_, batch, S, k, spec_.go_backwards, U,
                    hs_.data() + k * hblock, h);
  }
  WriteRnnOutput(hs_.data(), batch, S, U, spec_.return_sequences, y);
  if (spec_.zero_output_for_mask) {
    ZeroSkippedOutputs(keep_, batch, S, U, spec_.go_backwards,
                       spec_.return_sequences, y);
  }
}

template <typename T>
void SimpleRnnLayer<T>::Backward(const Context& ctx, const T* params,
                                 const T* dy, T* dx, T* dparams) {
  const int S = steps_, D = dim_, U = units_, batch = batch_;
  const int64_t rows = static_cast<int64_t>(S) * batch;
  const int64_t hblock = static_cast<int64_t>(batch) * U;
  Reserve(&da_, rows * U);
  Reserve(&dh_, hblock);
  Reserve(&scratch_, U);
  Reserve(&rt_, static_cast<int64_t>(U) * U);
  const T* W = params;
  const T* R = W + static_cast<int64_t>(D) * U;
  // δa·Rᵀ from a stored Rᵀ: a plain pack every step instead of a
  // transposing one (same panels, same bits).
  Transpose(R, U, U, rt_.data());
  if (S > 1) ctx.Pack<T>(batch, U, U, rt_.data(), U, &rt_packed_);
  T* dW = dparams;
  T* dR = dW + static_cast<int64_t>(D) * U;
  T* db = spec_.use_bias ? dR + static_cast<int64_t>(U) * U : nullptr;
  if (keep_ != nullptr) Reserve(&pass_, hblock);
  dy = MaskedOutputGrad(keep_, spec_.zero_output_for_mask, batch, S, U,
                        spec_.go_backwards, spec_.return_sequences, dy,
                        &dy_masked_);
  const bool back = spec_.go_backwards;
  std::memset(dh_.data(), 0, sizeof(T) * hblock);
  for (int k = S - 1; k >= 0; --k) {
    T* da = da_.data() + k * hblock;
    AddOutputGrad(dy, batch, S, U, spec_.return_sequences, k, dh_.data(), da);
    // A skipped step: δh goes to the previous step unchanged, δa = 0.
    CopySkippedRows(keep_, batch, S, k, back, U, da, pass_.data());
    act_.backward(hs_.data() + (k + 1) * hblock, da, da, hblock);
    ZeroSkippedRows(keep_, batch, S, k, back, U, U, da);
    if (k > 0) {
      ctx.GemmPacked<T>(da, U, rt_packed_, dh_.data(), U);
      CopySkippedRows(keep_, batch, S, k, back, U, pass_.data(), dh_.data());
    }
  }
  const int nrows = static_cast<int>(rows);
  ctx.Gemm<T>(true, false, D, U, nrows, xp_.data(), D, da_.data(), U, T(0), dW,
              U);
  ctx.Gemm<T>(true, false, U, U, nrows - batch, hs_.data() + hblock, U,
              da_.data() + hblock, U, T(0), dR, U);
  if (db != nullptr)
    SumRows<T>(da_.data(), S, hblock, batch, U, U, scratch_.data(), db);
  if (dx != nullptr) {
    InputGradient(ctx, da_.data(), rows, U, W, D, batch, S, spec_.go_backwards,
                  &dxp_, dx);
  }
}

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewSimpleRnnLayer(const LayerSpec& spec,
                                            const ActivationShape& in) {
  return std::make_unique<SimpleRnnLayer<T>>(spec, in);
}
template std::unique_ptr<Layer<float>> NewSimpleRnnLayer<float>(
    const LayerSpec&, const ActivationShape&);
template std::unique_ptr<Layer<double>> NewSimpleRnnLayer<double>(
    const LayerSpec&, const ActivationShape&);

}  // namespace driftscope
