// Keras Dense (docs/numerics.md §5): y = a(x·W + b) on the last axis; a
// sequence input (B,T,D) is one GEMM over its B·T rows.
#include <cstring>

#include "engine/layers/layer_internal.h"
#include "engine/numerics/activation_impls.h"
#include "engine/numerics/activations.h"

namespace driftscope {
namespace {

template <typename T>
class DenseLayer final : public Layer<T> {
 public:
  DenseLayer(const LayerSpec& spec, const ActivationShape& in)
      : spec_(spec),
        in_(in),
        out_(LayerOutputShape(spec, in)),
        weights_(LayerWeightShapes(spec, in)),
        steps_(in.sequence ? in.timesteps : 1),
        dim_(in.dim),
        units_(spec.units),
        act_(LibmActivation<T>(spec.activation)) {}

  const std::vector<WeightShape>& weights() const override { return weights_; }
  ActivationShape input_shape() const override { return in_; }
  ActivationShape output_shape() const override { return out_; }

  void Forward(const Context& ctx, const T* params, const T* x, int batch,
               T* y) override {
    const int64_t rows = static_cast<int64_t>(batch) * steps_;
    const int D = dim_, U = units_;
    batch_ = batch;
    x_ = x;
    act_ = ActivationFor<T>(ctx, spec_.activation);
    Reserve(&y_, rows * U);
    const T* W = params;
    ctx.Gemm<T>(false, false, static_cast<int>(rows), U, D, x, D, W, U, T(0),
                y_.data(), U);
    if (spec_.use_bias)
      AddBiasRows(y_.data(), rows, U, U, W + static_cast<int64_t>(D) * U);
    act_.forward(y_.data(), y_.data(), rows * U);
    ctx.RoundActivations(y_.data(), rows * U);
    std::memcpy(y, y_.data(), sizeof(T) * rows * U);
  }

  void Backward(const Context& ctx, const T* params, const T* dy, T* dx,
                T* dparams) override {
    const int64_t rows = static_cast<int64_t>(batch_) * steps_;
    const int D = dim_, U = units_;
    Reserve(&dz_, rows * U);
    Reserve(&scratch_, U);
    act_.backward(y_.data(), dy, dz_.data(), rows * U);
    T* dW = dparams;
    ctx.Gemm<T>(true, false, D, U, static_cast<int>(rows), x_, D, dz_.data(), U,
                T(0), dW, U);
    if (spec_.use_bias) {
      // Rows are (b, t) batch-major: inner sum over the batch (stride T·U),
      // outer over time, as for the recurrent layers.
      SumRows<T>(dz_.data(), steps_, U, batch_,
                 static_cast<int64_t>(steps_) * U, U, scratch_.data(),
                 dW + static_cast<int64_t>(D) * U);
    }
    if (dx != nullptr)
      ctx.Gemm<T>(false, true, static_cast<int>(rows), D, U, dz_.data(), U,
                  params, U, T(0), dx, D);
  }

 private:
  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  const int steps_, dim_, units_;
  ActivationKernels<T> act_;  // chosen by the last Forward's Context
  int batch_ = 0;
  const T* x_ = nullptr;  // valid until Backward returns (layer.h contract)
  Buffer<T> y_, dz_, scratch_;
};

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewDenseLayer(const LayerSpec& spec,
                                        const ActivationShape& in) {
  return std::make_unique<DenseLayer<T>>(spec, in);
}
template std::unique_ptr<Layer<float>> NewDenseLayer<float>(
    const LayerSpec&, const ActivationShape&);
template std::unique_ptr<Layer<double>> NewDenseLayer<double>(
    const LayerSpec&, const ActivationShape&);

}  // namespace driftscope
