// CudnnRnnLayer: one Keras LSTM or GRU(reset_after=True) layer run through
// cuDNN's RNN API (cudnnRNNForward, cudnnRNNBackwardData_v8,
// cudnnRNNBackwardWeights_v8): the `rnn=cudnn` path of the CUDA backend, what
// Keras runs on a GPU.
//
// It mirrors engine/layers/layer.h on the device: parameters stay in the
// engine's flat buffer in Keras get_weights() layout (kernel (D,G),
// recurrent_kernel (U,G), bias (G,) for LSTM or (2,G) for GRU, row-major,
// G = 4U or 3U), and every Forward maps them into cuDNN's weight space with
// the index maps of engine/cuda/cudnn_layout.h (the host-tested mapping);
// Backward maps cuDNN's weight gradients back to Keras layout the same way.
//
// Numerics, fixed on purpose (docs/cudnn.md): CUDNN_RNN_ALGO_STANDARD (what
// TensorFlow's CudnnRNNV3 runs), CUDNN_RNN_DOUBLE_BIAS with Keras' LSTM bias
// in the recurrent-bias slot (TensorFlow's placement), CUDNN_FMA_MATH for
// exact fp32 or CUDNN_TENSOR_OP_MATH when TF32 is asked, TRAINING forward mode
// for evaluation too (Keras-TF does the same), batch-major unpacked data with
// padding enabled and every sequence full length. Backward runs backward-data
// before backward-weights (the first writes the reserve space the second
// reads) and zeroes the weight gradients first (cuDNN only accumulates).
// The results are reproducible at best run to run on one GPU model and cuDNN
// version; they are never bit-comparable with a CPU.
//
// Pointers named x, y, dy, dx, params, dparams are device pointers to fp32.
// All work is queued on the stream given to Create; methods return once it
// is queued (errors found later by the stream surface at the next
// synchronising call of the caller, or at the next method here).
//
// Thread-safety: one thread at a time, and the handle and stream are used by
// nothing else while a method runs. The caller owns the cudnnHandle_t and the
// stream and keeps them alive longer than the layer; the layer owns its
// descriptors and device buffers and frees them in its destructor.
#ifndef DRIFTSCOPE_ENGINE_CUDA_CUDNN_RNN_H_
#define DRIFTSCOPE_ENGINE_CUDA_CUDNN_RNN_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"

// The two opaque handle types, declared as cudnn_graph.h and driver_types.h
// declare them, so that this header needs neither include path.
typedef struct cudnnContext* cudnnHandle_t;
typedef struct CUstream_st* cudaStream_t;

namespace driftscope {

struct CudnnRnnOptions {
  // CUDNN_TENSOR_OP_MATH (TF32 tensor cores on Ampere and newer, TensorFlow's
  // default) instead of CUDNN_FMA_MATH (plain fp32).
  bool tf32 = false;
};

// Device memory of one layer, in bytes.
struct CudnnRnnMemory {
  size_t weight_space = 0;  // cuDNN's packed weights; the gradients as much
  size_t workspace = 0;     // cudnnGetRNNTempSpaceSizes, TRAINING mode
  size_t reserve = 0;       // kept from Forward to the backward calls
  size_t buffers = 0;       // index maps, states, sequence scratch
  size_t total() const {
    return 2 * weight_space + workspace + reserve + buffers;
  }
};

class CudnnRnnLayer {
 public:
  // Builds the cuDNN descriptors for `spec` (LSTM or GRU that passes
  // CudnnEligible) taking sequence input `in` (T = in.timesteps,
  // D = in.dim), for batches of at most `max_batch`, and allocates every
  // device buffer once. Checks through cudnnGetRNNWeightParams that cuDNN's
  // weight space has the layout cudnn_layout.h assumes (Internal otherwise).
  // Errors: InvalidArgument for a spec or shape cuDNN cannot take (naming the
  // reason); ResourceExhausted when device memory runs out, with the bytes
  // needed; Internal with cuDNN's or CUDA's error string for anything else.
  static absl::StatusOr<std::unique_ptr<CudnnRnnLayer>> Create(
      cudnnHandle_t handle, cudaStream_t stream, const LayerSpec& spec,
      const ActivationShape& in, int max_batch,
      const CudnnRnnOptions& options = {});

  ~CudnnRnnLayer();
  CudnnRnnLayer(const CudnnRnnLayer&) = delete;
  CudnnRnnLayer& operator=(const CudnnRnnLayer&) = delete;

  // Keras shapes of the layer's weights and of its input and output, the
  // same as the CPU layer's (num_params() floats in `params`).
  const std::vector<WeightShape>& weights() const { return weights_; }
  int64_t num_params() const;
  ActivationShape input_shape() const { return in_; }
  ActivationShape output_shape() const { return out_; }
  const CudnnRnnMemory& memory() const { return memory_; }

  // y = layer(x) for `batch` (1..max_batch) samples, initial states zero.
  // x: (batch, T, D). y has the Keras output shape: (batch, T, U) with
  // return_sequences, else (batch, U), the last step. With go_backwards the
  // time axis of x is consumed from T-1 down to 0 and a returned sequence is
  // in processing order (as the CPU layer). `params` is read during this
  // call only (copied into the weight space); x must stay valid and
  // unchanged until Backward has run.
  absl::Status Forward(const float* params, const float* x, int batch,
                       float* y);

  // Gradients of the last Forward given dy (the shape of y): overwrites
  // dparams (num_params() floats, Keras layout) and, when dx is not null, dx
  // (the shape of x). Final states get no gradient (as in the CPU layers).
  // LSTM's bias gradient is cuDNN's recurrent-bias gradient alone: cuDNN's
  // input-bias gradient is the same sum, and adding both would double it.
  absl::Status Backward(const float* dy, float* dx, float* dparams);

  // After Forward: the final states, each (batch, U), device memory owned by
  // the layer and valid until the next Forward: LSTM {h, c}, GRU {h}.
  std::vector<const float*> final_states() const;

  // What ran, for the run record: e.g. "cudnn LSTM STANDARD FMA_MATH
  // DOUBLE_BIAS".
  std::string Describe() const;

 private:
  struct Impl;
  CudnnRnnLayer(const LayerSpec& spec, const ActivationShape& in);

  const LayerSpec spec_;
  const ActivationShape in_, out_;
  const std::vector<WeightShape> weights_;
  CudnnRnnMemory memory_;
  std::unique_ptr<Impl> impl_;  // descriptors and device buffers
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_CUDNN_RNN_H_
