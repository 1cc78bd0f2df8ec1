// keras.layers.Embedding: y[b, t, :] = E[id(b, t), :] (ops.take on axis 0).
//
// The input is (B, T, 1): one token id per timestep, carried as a value of
// the run precision (exact: ids are integers below 2^24, checked before
// training by ValidateJobSpec and the data checks). The backward pass
// scatter-adds dy into the rows of E in a fixed order, (b, t) ascending, so
// a token seen twice sums its gradients in sample order, then time order.
// There is no input gradient (ids are not differentiable).
#include <cstring>

#include "engine/layers/layer_internal.h"

namespace driftscope {
namespace {

template <typename T>
class EmbeddingLayer final : public Layer<T> {
 public:
  EmbeddingLayer(const LayerSpec& spec, const ActivationShape& in)
      : in_(in),
        out_(LayerOutputShape(spec, in)),
        weights_(LayerWeightShapes(spec, in)),
        vocab_(spec.input_dim),
        units_(spec.units) {}

  const std::vector<WeightShape>& weights() const override { return weights_; }
  T* occurrence_squares() override {
    return squares_.empty() ? nullptr : squares_.data();
  }
  ActivationShape input_shape() const override { return in_; }
  ActivationShape output_shape() const override { return out_; }

  void Forward(const Context& ctx, const T* params, const T* x, int batch,
               T* y) override {
    const int64_t rows = static_cast<int64_t>(batch) * in_.timesteps;
    batch_ = batch;
    ids_.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      ids_[r] = Row(x[r]);
      std::memcpy(y + r * units_, params + ids_[r] * units_,
                  sizeof(T) * units_);
    }
    ctx.RoundActivations(y, rows * units_);
  }

  void Backward(const Context& ctx, const T* params, const T* dy, T* dx,
                T* dparams) override {
    (void)ctx;
    (void)params;
    const int64_t rows = static_cast<int64_t>(batch_) * in_.timesteps;
    const size_t table = static_cast<size_t>(vocab_) * units_;
    std::memset(dparams, 0, sizeof(T) * table);
    squares_.assign(table, T(0));
    for (int64_t r = 0; r < rows; ++r) {
      T* row = dparams + ids_[r] * units_;
      T* sq = squares_.data() + ids_[r] * units_;
      const T* g = dy + r * units_;
      for (int u = 0; u < units_; ++u) {
        row[u] += g[u];
        sq[u] += g[u] * g[u];
      }
    }
    if (dx != nullptr) std::memset(dx, 0, sizeof(T) * rows);
  }

 private:
  // The data checks keep ids in [0, input_dim); clamping only keeps a
  // caller that skipped them inside the buffer.
  int64_t Row(T v) const {
    const int64_t id = static_cast<int64_t>(v);
    return id < 0 ? 0 : id >= vocab_ ? vocab_ - 1 : id;
  }

  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  const int64_t vocab_;
  const int units_;
  int batch_ = 0;
  std::vector<int64_t> ids_;  // of the last Forward, (b, t) order
  // Σ over occurrences of dy², per table element (occurrence_squares).
  std::vector<T> squares_;
};

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewEmbeddingLayer(const LayerSpec& spec,
                                            const ActivationShape& in) {
  return std::make_unique<EmbeddingLayer<T>>(spec, in);
}
template std::unique_ptr<Layer<float>> NewEmbeddingLayer<float>(
    const LayerSpec&, const ActivationShape&);
template std::unique_ptr<Layer<double>> NewEmbeddingLayer<double>(
    const LayerSpec&, const ActivationShape&);

}  // namespace driftscope
