#include "engine/cuda/cudnn_layout.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace driftscope {
namespace {

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kHardSigmoidKeras2:
      return "hard_sigmoid (Keras 2)";
    case Activation::kHardSigmoidKeras3:
      return "hard_sigmoid";
    case Activation::kRelu:
      return "relu";
    case Activation::kLinear:
      break;
  }
  return "linear";
}

absl::Status Refuse(const std::string& field, const LayerSpec& spec,
                    const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      field, " (", LayerJsonKey(spec.kind), ") cannot run through cuDNN: ", why,
      "; use a profile without rnn=cudnn for this model"));
}

}  // namespace

absl::Status CudnnEligible(const LayerSpec& spec, const std::string& field) {
  if (spec.kind == LayerKind::kSimpleRnn) {
    return Refuse(field, spec,
                  "Keras runs SimpleRNN with its generic loop, never cuDNN");
  }
  if (spec.kind == LayerKind::kDense) {
    return Refuse(field, spec, "only LSTM and GRU layers have a cuDNN RNN");
  }
  if (spec.activation != Activation::kTanh) {
    return Refuse(field, spec,
                  absl::StrCat("activation must be tanh, got ",
                               ActivationName(spec.activation)));
  }
  if (spec.recurrent_activation != Activation::kSigmoid) {
    return Refuse(field, spec,
                  absl::StrCat("recurrent_activation must be sigmoid, got ",
                               ActivationName(spec.recurrent_activation)));
  }
  if (!spec.use_bias) {
    return Refuse(field, spec, "use_bias must be true");
  }
  if (spec.kind == LayerKind::kGru && !spec.reset_after) {
    return Refuse(field, spec,
                  "reset_after must be true (cuDNN's GRU applies the reset "
                  "gate after the recurrent product)");
  }
  return absl::OkStatus();
}

absl::Status CudnnCheckModel(const std::vector<LayerSpec>& layers) {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].kind == LayerKind::kDense) continue;
    absl::Status s =
        CudnnEligible(layers[i], absl::StrCat("model.layers[", i, "]"));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<CudnnWeightLayout> CudnnWeightLayout::For(
    const LayerSpec& spec, const ActivationShape& in) {
  absl::Status s = CudnnEligible(spec);
  if (!s.ok()) return s;
  if (spec.units < 1 || in.dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuDNN layer needs units >= 1 and input dim >= 1, got ",
                     spec.units, " and ", in.dim));
  }
  CudnnWeightLayout layout(spec.kind == LayerKind::kLstm, in.dim, spec.units);
  if (layout.size() > std::numeric_limits<int32_t>::max() ||
      layout.keras_size() > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuDNN layer with units ", spec.units, " and input dim ",
                     in.dim, " has more than 2^31 weights"));
  }
  return layout;
}

int64_t CudnnWeightLayout::MatrixOffset(int lin_id) const {
  const int64_t G = gates(), U = hidden_, D = input_;
  if (lin_id < G) return lin_id * U * D;
  return G * U * D + (lin_id - G) * U * U;
}

int64_t CudnnWeightLayout::MatrixSize(int lin_id) const {
  return int64_t{hidden_} * (lin_id < gates() ? input_ : hidden_);
}

int64_t CudnnWeightLayout::BiasOffset(int lin_id) const {
  const int64_t G = gates(), U = hidden_, D = input_;
  return G * U * (D + U) + lin_id * U;
}

int64_t CudnnWeightLayout::size() const {
  const int64_t G = gates(), U = hidden_, D = input_;
  return G * U * (D + U + 2);
}

int64_t CudnnWeightLayout::keras_size() const {
  const int64_t G = gates(), U = hidden_, D = input_;
  return G * U * (D + U) + (lstm_ ? 1 : 2) * G * U;
}

int CudnnWeightLayout::KerasBlock(int g) const {
  if (lstm_) return g;
  static constexpr int kGruBlock[3] = {1, 0, 2};  // r, z, h -> Keras z|r|h
  return kGruBlock[g];
}

std::vector<int32_t> CudnnPackSource(const CudnnWeightLayout& layout) {
  const int G = layout.gates(), U = layout.hidden_size(),
            D = layout.input_size();
  const int64_t GU = int64_t{G} * U;
  // Keras block offsets: kernel (D,G·U), recurrent_kernel (U,G·U), bias.
  const int64_t kernel = 0, recurrent = kernel + D * GU,
                bias = recurrent + U * GU;
  std::vector<int32_t> src(static_cast<size_t>(layout.size()), -1);
  for (int g = 0; g < G; ++g) {
    const int64_t col = int64_t{layout.KerasBlock(g)} * U;
    // W_g[u][d] = kernel[d][col + u]; R_g[u][v] = recurrent[v][col + u].
    int32_t* w = src.data() + layout.MatrixOffset(g);
    int32_t* r = src.data() + layout.MatrixOffset(G + g);
    for (int u = 0; u < U; ++u) {
      for (int d = 0; d < D; ++d)
        w[int64_t{u} * D + d] = static_cast<int32_t>(kernel + d * GU + col + u);
      for (int v = 0; v < U; ++v)
        r[int64_t{u} * U + v] =
            static_cast<int32_t>(recurrent + v * GU + col + u);
    }
    int32_t* bw = src.data() + layout.BiasOffset(g);
    int32_t* br = src.data() + layout.BiasOffset(G + g);
    for (int u = 0; u < U; ++u) {
      if (layout.lstm()) {
        br[u] = static_cast<int32_t>(bias + col + u);  // bW stays zero
      } else {
        bw[u] = static_cast<int32_t>(bias + col + u);
        br[u] = static_cast<int32_t>(bias + GU + col + u);
      }
    }
  }
  return src;
}

std::vector<int32_t> CudnnGradientSource(const CudnnWeightLayout& layout) {
  const std::vector<int32_t> pack = CudnnPackSource(layout);
  std::vector<int32_t> grad(static_cast<size_t>(layout.keras_size()), -1);
  // Every Keras parameter is packed exactly once (LSTM's bW slots are
  // constants, not copies), so inverting the pack map gives, for LSTM's
  // bias, the bR slot and never bW.
  for (size_t i = 0; i < pack.size(); ++i) {
    if (pack[i] >= 0)
      grad[static_cast<size_t>(pack[i])] = static_cast<int32_t>(i);
  }
  return grad;
}

template <typename T>
void PackKerasToCudnn(const CudnnWeightLayout& layout, const T* keras,
                      T* packed) {
  const std::vector<int32_t> src = CudnnPackSource(layout);
  for (size_t i = 0; i < src.size(); ++i)
    packed[i] = src[i] < 0 ? T(0) : keras[src[i]];
}

template <typename T>
void CudnnGradientsToKeras(const CudnnWeightLayout& layout, const T* dpacked,
                           T* dkeras) {
  const std::vector<int32_t> src = CudnnGradientSource(layout);
  for (size_t j = 0; j < src.size(); ++j) dkeras[j] = dpacked[src[j]];
}

template void PackKerasToCudnn<float>(const CudnnWeightLayout&, const float*,
                                      float*);
template void PackKerasToCudnn<double>(const CudnnWeightLayout&, const double*,
                                       double*);
template void CudnnGradientsToKeras<float>(const CudnnWeightLayout&,
                                           const float*, float*);
template void CudnnGradientsToKeras<double>(const CudnnWeightLayout&,
                                            const double*, double*);

}  // namespace driftscope
