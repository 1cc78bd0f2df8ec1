// keras.layers.Bidirectional (keras/src/layers/rnn/bidirectional.py): the
// forward copy and the backward copy (go_backwards true) of one RNN read
// the same input; with return_sequences the backward copy's output, which
// is in its processing order, is flipped along time; then the merge: concat
// [forward | backward] on the last axis, sum, mul, or ave = (f + b) / 2;
// merge_mode None (two Keras outputs) is laid out as concat.
// Parameters: the forward copy's block, then the backward copy's. While
// training, each copy applies its own dropout masks (SetDirectionMasks): a
// shared input mask is applied here to the copy's own masked input, per-gate
// masks are handed to the copy. One thread at a time.
#include <cstring>
#include <memory>
#include <utility>

#include "engine/layers/layer_internal.h"

namespace driftscope {
namespace {

template <typename T>
class BidirectionalLayer final : public Layer<T> {
 public:
  BidirectionalLayer(const LayerSpec& spec, const ActivationShape& in,
                     std::unique_ptr<Layer<T>> forward,
                     std::unique_ptr<Layer<T>> backward)
      : spec_(spec),
        in_(in),
        out_(LayerOutputShape(spec, in)),
        weights_(LayerWeightShapes(spec, in)),
        forward_(std::move(forward)),
        backward_(std::move(backward)) {}

  const std::vector<WeightShape>& weights() const override { return weights_; }
  ActivationShape input_shape() const override { return in_; }
  ActivationShape output_shape() const override { return out_; }
  void Forward(const Context& ctx, const T* params, const T* x, int batch,
               T* y) override;
  void Backward(const Context& ctx, const T* params, const T* dy, T* dx,
                T* dparams) override;
  void SetDirectionMasks(const DirectionMasks<T>* masks) override {
    masks_ = masks;
  }
  // Both copies see the mask in time order; the backward copy (go_backwards)
  // reads it reversed, as Keras reverses it with the input.
  void SetTimestepMask(const uint8_t* keep) override {
    forward_->SetTimestepMask(keep);
    backward_->SetTimestepMask(keep);
  }
  std::vector<const T*> final_states() const override {
    std::vector<const T*> s = forward_->final_states();
    for (const T* b : backward_->final_states()) s.push_back(b);
    return s;
  }

 private:
  // Steps of the output (1 without return_sequences) and the copies' width.
  int steps() const { return spec_.return_sequences ? in_.timesteps : 1; }
  // b[n, t] ↔ a[n, steps-1-t] for every sample (a time flip of (batch,
  // steps, U) sequences); without return_sequences a copy.
  void Flip(const T* a, int batch, T* b) const {
    const int S = steps(), U = spec_.units;
    for (int n = 0; n < batch; ++n)
      for (int t = 0; t < S; ++t)
        std::memcpy(b + (static_cast<int64_t>(n) * S + t) * U,
                    a + (static_cast<int64_t>(n) * S + (S - 1 - t)) * U,
                    sizeof(T) * U);
  }

  // y[n, t, d] = x[n, t, d] · mask[n, d] over the input's timesteps (a
  // copy's input dropout; the same for its input gradient).
  void MaskInput(const T* x, const T* mask, int batch, T* y) const {
    const int S = in_.sequence ? in_.timesteps : 1, D = in_.dim;
    for (int n = 0; n < batch; ++n) {
      const T* m = mask + static_cast<int64_t>(n) * D;
      for (int t = 0; t < S; ++t) {
        const int64_t row = (static_cast<int64_t>(n) * S + t) * D;
        for (int d = 0; d < D; ++d) y[row + d] = x[row + d] * m[d];
      }
    }
  }
  // The copy's input in Forward: x, or x times its shared mask in *buf.
  const T* CopyInput(int copy, const T* x, int batch, Buffer<T>* buf) {
    const T* mask = used_ != nullptr ? used_[copy].input : nullptr;
    if (mask == nullptr) return x;
    Reserve(buf, static_cast<int64_t>(batch) * in_.per_sample());
    MaskInput(x, mask, batch, buf->data());
    return buf->data();
  }

  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  std::unique_ptr<Layer<T>> forward_, backward_;
  int batch_ = 0;
  // yb_: the backward copy's output in time order; scratch_ its raw output
  // and later gradients.
  Buffer<T> yf_, yb_, scratch_, dyf_, dyb_, dxb_;
  // masks_: set for the next Forward; used_: the last Forward's. xf_, xb_:
  // each copy's masked input.
  const DirectionMasks<T>* masks_ = nullptr;
  const DirectionMasks<T>* used_ = nullptr;
  Buffer<T> xf_, xb_;
};

template <typename T>
void BidirectionalLayer<T>::Forward(const Context& ctx, const T* params,
                                    const T* x, int batch, T* y) {
  batch_ = batch;
  const int64_t rows = static_cast<int64_t>(batch) * steps();
  const int U = spec_.units;
  const int64_t n = rows * U;
  Reserve(&yf_, n);
  Reserve(&yb_, n);
  Reserve(&scratch_, n);
  used_ = masks_;
  forward_->SetGateMasks(used_ != nullptr ? used_[0].gates : nullptr);
  backward_->SetGateMasks(used_ != nullptr ? used_[1].gates : nullptr);
  forward_->Forward(ctx, params, CopyInput(0, x, batch, &xf_), batch,
                    yf_.data());
  backward_->Forward(ctx, params + forward_->num_params(),
                     CopyInput(1, x, batch, &xb_), batch, scratch_.data());
  Flip(scratch_.data(), batch, yb_.data());
  const T* f = yf_.data();
  const T* b = yb_.data();
  switch (spec_.merge_mode) {
    case MergeMode::kConcat:
    case MergeMode::kNone:  // two outputs, kept side by side
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(y + r * 2 * U, f + r * U, sizeof(T) * U);
        std::memcpy(y + r * 2 * U + U, b + r * U, sizeof(T) * U);
      }
      break;
    case MergeMode::kSum:
      for (int64_t i = 0; i < n; ++i) y[i] = f[i] + b[i];
      break;
    case MergeMode::kMul:
      for (int64_t i = 0; i < n; ++i) y[i] = f[i] * b[i];
      break;
    case MergeMode::kAve:
      for (int64_t i = 0; i < n; ++i) y[i] = (f[i] + b[i]) / T(2);
      break;
  }
}

template <typename T>
void BidirectionalLayer<T>::Backward(const Context& ctx, const T* params,
                                     const T* dy, T* dx, T* dparams) {
  const int batch = batch_;
  const int64_t rows = static_cast<int64_t>(batch) * steps();
  const int U = spec_.units;
  const int64_t n = rows * U;
  Reserve(&dyf_, n);
  Reserve(&dyb_, n);
  T* df = dyf_.data();
  T* db = scratch_.data();  // the backward copy's, in time order
  switch (spec_.merge_mode) {
    case MergeMode::kConcat:
    case MergeMode::kNone:
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(df + r * U, dy + r * 2 * U, sizeof(T) * U);
        std::memcpy(db + r * U, dy + r * 2 * U + U, sizeof(T) * U);
      }
      break;
    case MergeMode::kSum:
      std::memcpy(df, dy, sizeof(T) * n);
      std::memcpy(db, dy, sizeof(T) * n);
      break;
    case MergeMode::kMul:
      for (int64_t i = 0; i < n; ++i) {
        df[i] = dy[i] * yb_[i];
        db[i] = dy[i] * yf_[i];
      }
      break;
    case MergeMode::kAve:
      for (int64_t i = 0; i < n; ++i) df[i] = db[i] = dy[i] / T(2);
      break;
  }
  Flip(db, batch, dyb_.data());
  T* dxb = nullptr;
  if (dx != nullptr) {
    Reserve(&dxb_, static_cast<int64_t>(batch) * in_.per_sample());
    dxb = dxb_.data();
  }
  forward_->Backward(ctx, params, df, dx, dparams);
  const int64_t nf = forward_->num_params();
  backward_->Backward(ctx, params + nf, dyb_.data(), dxb, dparams + nf);
  if (dx != nullptr) {
    // d(x·m)/dx = m for each copy's own input mask.
    if (used_ != nullptr && used_[0].input != nullptr)
      MaskInput(dx, used_[0].input, batch, dx);
    if (used_ != nullptr && used_[1].input != nullptr)
      MaskInput(dxb, used_[1].input, batch, dxb);
    const int64_t m = static_cast<int64_t>(batch) * in_.per_sample();
    for (int64_t i = 0; i < m; ++i) dx[i] = dx[i] + dxb[i];
  }
}

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> NewBidirectionalLayer(
    const LayerSpec& spec, const ActivationShape& in,
    std::unique_ptr<Layer<T>> forward, std::unique_ptr<Layer<T>> backward) {
  return std::make_unique<BidirectionalLayer<T>>(spec, in, std::move(forward),
                                                 std::move(backward));
}
template std::unique_ptr<Layer<float>> NewBidirectionalLayer<float>(
    const LayerSpec&, const ActivationShape&, std::unique_ptr<Layer<float>>,
    std::unique_ptr<Layer<float>>);
template std::unique_ptr<Layer<double>> NewBidirectionalLayer<double>(
    const LayerSpec&, const ActivationShape&, std::unique_ptr<Layer<double>>,
    std::unique_ptr<Layer<double>>);

}  // namespace driftscope
