// Keras weights <-> cuDNN's packed RNN weight space, and which layers may run
// through cuDNN at all. Host code only (no CUDA headers): the device path
// (cudnn_rnn.h) uploads the index maps built here and applies them with a
// gather, so the host tests of these maps cover the mapping the GPU uses.
//
// cuDNN's weight space for one unidirectional layer with DOUBLE_BIAS holds,
// contiguously and in this order (asserted on the device through
// cudnnGetRNNWeightParams):
//   input matrices  W_0 .. W_{G-1}   each (U, D), row-major (rows = hidden)
//   recurrent       R_0 .. R_{G-1}   each (U, U)
//   input biases    bW_0 .. bW_{G-1} each (U)
//   recurrent       bR_0 .. bR_{G-1} each (U)
// with G = 4 gates for LSTM (ids i, f, c, o: Keras' own order) and 3 for GRU
// (ids r, z, h: Keras' GRU blocks are z, r, h, so z and r swap). cuDNN's
// linLayerID k addresses W_k for k < G and R_{k-G} for k >= G; its bias
// (same id) is bW_k or bR_{k-G}.
//
// Biases follow TensorFlow's Keras path: the single Keras LSTM bias goes to
// the recurrent slots bR and the input slots bW hold zeros; GRU's bias row 0
// goes to bW and row 1 to bR. The gradient map reads LSTM's bias gradient
// from dbR only: cuDNN's dbW is the same batch-and-time sum, and adding the
// two would double it.
//
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_CUDA_CUDNN_LAYOUT_H_
#define DRIFTSCOPE_ENGINE_CUDA_CUDNN_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"

namespace driftscope {

// Whether Keras would run `spec` through cuDNN on a GPU: LSTM or GRU with
// activation tanh, recurrent_activation sigmoid, use_bias, and for GRU
// reset_after (the engine has no unroll, mask or recurrent dropout, Keras'
// other conditions). InvalidArgument otherwise, naming `field` (e.g.
// "model.layers[1]") and the reason, so that a cudnn profile never runs a
// layer another way without saying so. SimpleRNN and Dense have no cuDNN RNN
// path in Keras and are refused too; a trainer runs Dense through cuBLAS and
// asks this only for recurrent layers (CudnnCheckModel).
absl::Status CudnnEligible(const LayerSpec& spec,
                           const std::string& field = "layer");

// CudnnEligible for every recurrent layer of a model (Dense layers are
// skipped), each named "model.layers[i]". The first refusal is returned.
absl::Status CudnnCheckModel(const std::vector<LayerSpec>& layers);

// Where everything sits in the weight space of one LSTM or GRU layer, in
// elements (floats), and how many Keras parameters the layer has.
class CudnnWeightLayout {
 public:
  // The layout for a layer that passes CudnnEligible, with input width
  // in.dim. InvalidArgument for any other layer, or when an index would not
  // fit the int32 maps.
  static absl::StatusOr<CudnnWeightLayout> For(const LayerSpec& spec,
                                               const ActivationShape& in);

  bool lstm() const { return lstm_; }
  int gates() const { return lstm_ ? 4 : 3; }  // G
  int input_size() const { return input_; }    // D
  int hidden_size() const { return hidden_; }  // U
  // cuDNN's linear-layer ids: [0, 2G).
  int num_lin_layers() const { return 2 * gates(); }

  // Offset and element count of matrix / bias `lin_id`.
  int64_t MatrixOffset(int lin_id) const;
  int64_t MatrixSize(int lin_id) const;  // U·D for W, U·U for R
  int64_t BiasOffset(int lin_id) const;
  int64_t BiasSize() const { return hidden_; }
  // Elements of the whole weight space (cudnnGetRNNWeightSpaceSize / 4).
  int64_t size() const;
  // Elements of the Keras parameter block (kernel, recurrent_kernel, bias).
  int64_t keras_size() const;

  // The Keras gate block (column block of kernel/recurrent_kernel/bias) that
  // feeds cuDNN gate `g` (< G): LSTM g; GRU r(0)->1, z(1)->0, h(2)->2.
  int KerasBlock(int g) const;

 private:
  CudnnWeightLayout(bool lstm, int input, int hidden)
      : lstm_(lstm), input_(input), hidden_(hidden) {}
  bool lstm_;
  int input_, hidden_;
};

// For each weight-space element, the index into the Keras parameter block it
// is copied from, or -1 for a constant zero (LSTM's input-bias slots).
std::vector<int32_t> CudnnPackSource(const CudnnWeightLayout& layout);
// For each Keras parameter, the weight-space element holding its gradient.
std::vector<int32_t> CudnnGradientSource(const CudnnWeightLayout& layout);

// The two maps applied on the host (the device applies the same maps).
template <typename T>
void PackKerasToCudnn(const CudnnWeightLayout& layout, const T* keras,
                      T* packed);
template <typename T>
void CudnnGradientsToKeras(const CudnnWeightLayout& layout, const T* dpacked,
                           T* dkeras);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_CUDNN_LAYOUT_H_
