// CudnnRnnLayer (cudnn_rnn.h): one Keras LSTM/GRU layer through cuDNN 9's
// RNN API. The call sequence and every argument choice are explained in
// docs/cudnn.md; the weight map comes from cudnn_layout.h.
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cuda/cudnn_layout.h"
#include "engine/cuda/cudnn_rnn.h"
#include "engine/layers/layer_internal.h"

namespace driftscope {
namespace {

absl::Status CudnnFailure(cudnnStatus_t s, const char* call) {
  const std::string text =
      absl::StrCat(call, " failed: ", cudnnGetErrorString(s), " (cuDNN status ",
                   static_cast<int>(s), ")");
  if (s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
      s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED) {
    return absl::ResourceExhaustedError(text);
  }
  return absl::InternalError(text);
}

absl::Status CudaFailure(cudaError_t e, const char* call) {
  const std::string text = absl::StrCat(call, " failed: ", cudaGetErrorName(e),
                                        ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(text);
  return absl::InternalError(text);
}

// Every cuDNN and CUDA call's status is checked; these keep that readable.
#define DS_CUDNN(call)                        \
  do {                                        \
    const cudnnStatus_t ds_status_ = (call);  \
    if (ds_status_ != CUDNN_STATUS_SUCCESS)   \
      return CudnnFailure(ds_status_, #call); \
  } while (0)
#define DS_CUDA(call)                                                   \
  do {                                                                  \
    const cudaError_t ds_error_ = (call);                               \
    if (ds_error_ != cudaSuccess) return CudaFailure(ds_error_, #call); \
  } while (0)
#define DS_RETURN_IF_ERROR(expr)       \
  do {                                 \
    const absl::Status ds_s_ = (expr); \
    if (!ds_s_.ok()) return ds_s_;     \
  } while (0)

constexpr int kThreads = 256;

int Blocks(int64_t n) {
  return static_cast<int>(
      std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
}

// dst[i] = src[index[i]], or 0 where index[i] < 0: the layout maps of
// cudnn_layout.h (Keras -> weight space, and weight-space gradients ->
// Keras), applied as they are on the host.
__global__ void GatherKernel(const float* __restrict__ src,
                             const int32_t* __restrict__ index, int64_t n,
                             float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t j = index[i];
    dst[i] = j < 0 ? 0.0f : src[j];
  }
}

// dst[b][T-1-t][:] = src[b][t][:] over (batch, steps, width): go_backwards.
__global__ void ReverseTimeKernel(const float* __restrict__ src, int batch,
                                  int steps, int width,
                                  float* __restrict__ dst) {
  const int64_t n = int64_t{batch} * steps * width;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t v = i % width;
    const int64_t t = (i / width) % steps;
    const int64_t b = i / (int64_t{width} * steps);
    dst[(b * steps + (steps - 1 - t)) * width + v] = src[i];
  }
}

// One device allocation, freed with the layer.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr != nullptr) cudaFree(ptr);
  }
  float* f() const { return static_cast<float*>(ptr); }
  int32_t* i() const { return static_cast<int32_t*>(ptr); }
};

}  // namespace

struct CudnnRnnLayer::Impl {
  cudnnHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  CudnnRnnOptions options;
  CudnnWeightLayout layout;
  int max_batch = 0;
  int steps = 0;

  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  cudnnRNNDataDescriptor_t x_desc = nullptr, y_desc = nullptr;
  cudnnTensorDescriptor_t h_desc = nullptr;  // h and c: {1, batch, U}
  int desc_batch = 0;                        // what the descriptors describe
  float padding_fill = 0.0f;                 // written at padded outputs
  std::vector<int> seq_lengths;              // host copy, all = T

  DeviceBuffer w, dw, work, reserve;
  DeviceBuffer pack_src, grad_src, dev_seq_lengths;
  DeviceBuffer zeros;    // hx, cx, dhy, dcy: (max_batch, U) zeros
  DeviceBuffer hy, cy;   // final states
  DeviceBuffer dstates;  // dhx, dcx (unused, cuDNN writes them)
  DeviceBuffer x_rev;    // go_backwards: x reversed in time
  DeviceBuffer y_seq;    // every step's output (batch, T, U)
  DeviceBuffer dy_seq;   // dy spread over the steps
  DeviceBuffer dx_seq;   // dx before reversal, or when not wanted

  // The last Forward, for Backward.
  int fwd_batch = 0;
  const float* fwd_x = nullptr;

  explicit Impl(const CudnnWeightLayout& l) : layout(l) {}
  ~Impl() {
    if (h_desc != nullptr) cudnnDestroyTensorDescriptor(h_desc);
    if (y_desc != nullptr) cudnnDestroyRNNDataDescriptor(y_desc);
    if (x_desc != nullptr) cudnnDestroyRNNDataDescriptor(x_desc);
    if (rnn != nullptr) cudnnDestroyRNNDescriptor(rnn);
    if (dropout != nullptr) cudnnDestroyDropoutDescriptor(dropout);
  }

  bool lstm() const { return layout.lstm(); }

  // Sets the data and state descriptors for `batch` sequences of T steps.
  absl::Status DescribeBatch(int batch) {
    if (batch == desc_batch) return absl::OkStatus();
    const int U = layout.hidden_size();
    seq_lengths.assign(static_cast<size_t>(batch), steps);
    DS_CUDNN(cudnnSetRNNDataDescriptor(
        x_desc, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
        steps, batch, layout.input_size(), seq_lengths.data(), &padding_fill));
    DS_CUDNN(cudnnSetRNNDataDescriptor(
        y_desc, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
        steps, batch, U, seq_lengths.data(), &padding_fill));
    const int dims[3] = {1, batch, U};
    const int strides[3] = {batch * U, U, 1};
    DS_CUDNN(
        cudnnSetTensorNdDescriptor(h_desc, CUDNN_DATA_FLOAT, 3, dims, strides));
    desc_batch = batch;
    return absl::OkStatus();
  }

  absl::Status Allocate(DeviceBuffer* b, size_t bytes, const char* what) {
    if (b->ptr != nullptr) {
      DS_CUDA(cudaFree(b->ptr));
      b->ptr = nullptr;
      b->bytes = 0;
    }
    if (bytes == 0) return absl::OkStatus();
    const cudaError_t e = cudaMalloc(&b->ptr, bytes);
    if (e != cudaSuccess) {
      b->ptr = nullptr;
      return CudaFailure(e, what);
    }
    b->bytes = bytes;
    return absl::OkStatus();
  }

  // Asserts that cuDNN's weight space is laid out as cudnn_layout.h assumes.
  absl::Status CheckWeightSpace(size_t weight_bytes) {
    if (weight_bytes != static_cast<size_t>(layout.size()) * sizeof(float)) {
      return absl::InternalError(absl::StrCat(
          "cuDNN's weight space has ", weight_bytes, " bytes, expected ",
          layout.size() * sizeof(float),
          " (the layout in cudnn_layout.h no longer matches this cuDNN)"));
    }
    cudnnTensorDescriptor_t m_desc = nullptr, b_desc = nullptr;
    DS_CUDNN(cudnnCreateTensorDescriptor(&m_desc));
    const cudnnStatus_t bs = cudnnCreateTensorDescriptor(&b_desc);
    if (bs != CUDNN_STATUS_SUCCESS) {
      cudnnDestroyTensorDescriptor(m_desc);
      return CudnnFailure(bs, "cudnnCreateTensorDescriptor");
    }
    absl::Status status = CheckRegions(weight_bytes, m_desc, b_desc);
    cudnnDestroyTensorDescriptor(b_desc);
    cudnnDestroyTensorDescriptor(m_desc);
    return status;
  }

  absl::Status CheckRegions(size_t weight_bytes, cudnnTensorDescriptor_t m_desc,
                            cudnnTensorDescriptor_t b_desc) {
    const char* base = static_cast<const char*>(w.ptr);
    for (int id = 0; id < layout.num_lin_layers(); ++id) {
      void* m_addr = nullptr;
      void* b_addr = nullptr;
      DS_CUDNN(cudnnGetRNNWeightParams(handle, rnn, 0, weight_bytes, w.ptr, id,
                                       m_desc, &m_addr, b_desc, &b_addr));
      int64_t m_count = 0, b_count = 0;
      DS_RETURN_IF_ERROR(Count(m_desc, &m_count));
      DS_RETURN_IF_ERROR(Count(b_desc, &b_count));
      const int64_t m_off = m_addr == nullptr
                                ? -1
                                : (static_cast<const char*>(m_addr) - base) /
                                      static_cast<int64_t>(sizeof(float));
      const int64_t b_off = b_addr == nullptr
                                ? -1
                                : (static_cast<const char*>(b_addr) - base) /
                                      static_cast<int64_t>(sizeof(float));
      if (m_off != layout.MatrixOffset(id) ||
          m_count != layout.MatrixSize(id) || b_off != layout.BiasOffset(id) ||
          b_count != layout.BiasSize()) {
        return absl::InternalError(absl::StrCat(
            "cuDNN's weight space differs from the assumed layout at linear "
            "layer ",
            id, ": matrix at float ", m_off, " with ", m_count,
            " values (expected ", layout.MatrixOffset(id), ", ",
            layout.MatrixSize(id), "), bias at ", b_off, " with ", b_count,
            " values (expected ", layout.BiasOffset(id), ", ",
            layout.BiasSize(), ")"));
      }
    }
    return absl::OkStatus();
  }

  static absl::Status Count(cudnnTensorDescriptor_t desc, int64_t* count) {
    cudnnDataType_t type;
    int nb = 0;
    int dims[8] = {0}, strides[8] = {0};
    DS_CUDNN(cudnnGetTensorNdDescriptor(desc, 8, &type, &nb, dims, strides));
    int64_t n = nb > 0 ? 1 : 0;
    for (int i = 0; i < nb && i < 8; ++i) n *= dims[i];
    *count = n;
    return absl::OkStatus();
  }
};

CudnnRnnLayer::CudnnRnnLayer(const LayerSpec& spec, const ActivationShape& in)
    : spec_(spec),
      in_(in),
      out_(LayerOutputShape(spec, in)),
      weights_(LayerWeightShapes(spec, in)) {}

CudnnRnnLayer::~CudnnRnnLayer() = default;

int64_t CudnnRnnLayer::num_params() const {
  int64_t n = 0;
  for (const WeightShape& w : weights_) n += w.size();
  return n;
}

absl::StatusOr<std::unique_ptr<CudnnRnnLayer>> CudnnRnnLayer::Create(
    cudnnHandle_t handle, cudaStream_t stream, const LayerSpec& spec,
    const ActivationShape& in, int max_batch, const CudnnRnnOptions& options) {
  absl::StatusOr<CudnnWeightLayout> layout = CudnnWeightLayout::For(spec, in);
  if (!layout.ok()) return layout.status();
  if (!in.sequence || in.timesteps < 1 || max_batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuDNN layer needs a sequence input with timesteps >= 1 and a batch "
        ">= 1, got ",
        in.sequence ? "a sequence" : "a vector", " of ", in.timesteps,
        " steps and batch ", max_batch));
  }
  if (handle == nullptr || stream == nullptr) {
    // A null stream would be the legacy default stream, which synchronises
    // with every other: the caller owns one stream per run.
    return absl::InvalidArgumentError(
        "cuDNN layer needs a cuDNN handle and a stream, got null");
  }
  const int64_t T = in.timesteps, U = spec.units, D = in.dim;
  if (int64_t{max_batch} * T * std::max(U, D) > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuDNN layer: batch ", max_batch, " x ", T, " steps x width ",
        std::max(U, D), " exceeds 2^31 values"));
  }

  std::unique_ptr<CudnnRnnLayer> layer(new CudnnRnnLayer(spec, in));
  layer->impl_ = std::make_unique<Impl>(*layout);
  Impl& m = *layer->impl_;
  m.handle = handle;
  m.stream = stream;
  m.options = options;
  m.max_batch = max_batch;
  m.steps = in.timesteps;

  DS_CUDNN(cudnnSetStream(handle, stream));
  DS_CUDNN(cudnnCreateDropoutDescriptor(&m.dropout));
  // Dropout 0 and no state: cuDNN's dropout acts only between stacked
  // layers, and each Keras layer is its own cuDNN call.
  DS_CUDNN(cudnnSetDropoutDescriptor(m.dropout, handle, 0.0f, nullptr, 0, 0));
  DS_CUDNN(cudnnCreateRNNDescriptor(&m.rnn));
  DS_CUDNN(cudnnSetRNNDescriptor_v8(
      m.rnn, CUDNN_RNN_ALGO_STANDARD, m.lstm() ? CUDNN_LSTM : CUDNN_GRU,
      CUDNN_RNN_DOUBLE_BIAS, CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT,
      CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT,
      options.tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH,
      static_cast<int32_t>(D), static_cast<int32_t>(U),
      static_cast<int32_t>(U),  // projSize == hiddenSize: no projection
      1, m.dropout, CUDNN_RNN_PADDED_IO_ENABLED));
  DS_CUDNN(cudnnCreateRNNDataDescriptor(&m.x_desc));
  DS_CUDNN(cudnnCreateRNNDataDescriptor(&m.y_desc));
  DS_CUDNN(cudnnCreateTensorDescriptor(&m.h_desc));
  DS_RETURN_IF_ERROR(m.DescribeBatch(max_batch));

  size_t weight_bytes = 0, work_bytes = 0, reserve_bytes = 0;
  DS_CUDNN(cudnnGetRNNWeightSpaceSize(handle, m.rnn, &weight_bytes));
  DS_CUDNN(cudnnGetRNNTempSpaceSizes(handle, m.rnn, CUDNN_FWD_MODE_TRAINING,
                                     m.x_desc, &work_bytes, &reserve_bytes));

  // Every buffer sized once, for max_batch.
  const size_t f = sizeof(float);
  const size_t state = static_cast<size_t>(max_batch) * U * f;
  const size_t x_seq = static_cast<size_t>(max_batch) * T * D * f;
  const size_t y_seq = static_cast<size_t>(max_batch) * T * U * f;
  const size_t pack_bytes = static_cast<size_t>(layout->size()) * 4;
  const size_t grad_bytes = static_cast<size_t>(layout->keras_size()) * 4;
  const size_t lengths_bytes = static_cast<size_t>(max_batch) * 4;
  CudnnRnnMemory& mem = layer->memory_;
  mem.weight_space = weight_bytes;
  mem.workspace = work_bytes;
  mem.reserve = reserve_bytes;
  mem.buffers = pack_bytes + grad_bytes + lengths_bytes + state * 5 +
                (spec.go_backwards ? x_seq : 0) + 2 * y_seq + x_seq;
  struct Want {
    DeviceBuffer* buffer;
    size_t bytes;
    const char* what;
  };
  const Want wants[] = {
      {&m.w, weight_bytes, "cudaMalloc(weight space)"},
      {&m.dw, weight_bytes, "cudaMalloc(weight gradients)"},
      {&m.work, work_bytes, "cudaMalloc(workspace)"},
      {&m.reserve, reserve_bytes, "cudaMalloc(reserve space)"},
      {&m.pack_src, pack_bytes, "cudaMalloc(weight map)"},
      {&m.grad_src, grad_bytes, "cudaMalloc(gradient map)"},
      {&m.dev_seq_lengths, lengths_bytes, "cudaMalloc(sequence lengths)"},
      {&m.zeros, state, "cudaMalloc(zero states)"},
      {&m.hy, state, "cudaMalloc(final h)"},
      {&m.cy, state, "cudaMalloc(final c)"},
      {&m.dstates, 2 * state, "cudaMalloc(state gradients)"},
      {&m.x_rev, spec.go_backwards ? x_seq : 0, "cudaMalloc(reversed x)"},
      {&m.y_seq, y_seq, "cudaMalloc(output sequence)"},
      {&m.dy_seq, y_seq, "cudaMalloc(output gradients)"},
      {&m.dx_seq, x_seq, "cudaMalloc(input gradients)"},
  };
  for (const Want& want : wants) {
    absl::Status s = m.Allocate(want.buffer, want.bytes, want.what);
    if (!s.ok()) {
      return absl::Status(
          s.code(),
          absl::StrCat(
              "cuDNN ", m.lstm() ? "LSTM" : "GRU", " layer (units ", U,
              ", input ", D, ", ", T, " steps, batch ", max_batch, ") needs ",
              mem.total(), " bytes of device memory (weight space ",
              weight_bytes, " twice, workspace ", work_bytes, ", reserve ",
              reserve_bytes, ", buffers ", mem.buffers, "): ", s.message()));
    }
  }
  DS_RETURN_IF_ERROR(m.CheckWeightSpace(weight_bytes));

  // Constant inputs, uploaded once: the layout maps, the lengths, zeros.
  const std::vector<int32_t> pack = CudnnPackSource(*layout);
  const std::vector<int32_t> grad = CudnnGradientSource(*layout);
  const std::vector<int32_t> lengths(static_cast<size_t>(max_batch),
                                     static_cast<int32_t>(T));
  DS_CUDA(cudaMemcpyAsync(m.pack_src.ptr, pack.data(), pack_bytes,
                          cudaMemcpyHostToDevice, stream));
  DS_CUDA(cudaMemcpyAsync(m.grad_src.ptr, grad.data(), grad_bytes,
                          cudaMemcpyHostToDevice, stream));
  DS_CUDA(cudaMemcpyAsync(m.dev_seq_lengths.ptr, lengths.data(), lengths_bytes,
                          cudaMemcpyHostToDevice, stream));
  DS_CUDA(cudaMemsetAsync(m.zeros.ptr, 0, state, stream));
  // The host vectors above die with this call: wait for the copies.
  DS_CUDA(cudaStreamSynchronize(stream));
  return layer;
}

absl::Status CudnnRnnLayer::Forward(const float* params, const float* x,
                                    int batch, float* y) {
  Impl& m = *impl_;
  if (batch < 1 || batch > m.max_batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuDNN layer: batch must be in [1, ", m.max_batch,
                     "] (the layer's max_batch), got ", batch));
  }
  m.fwd_batch = 0;  // a failed Forward leaves nothing for Backward
  const int T = m.steps, U = m.layout.hidden_size(), D = m.layout.input_size();
  DS_CUDNN(cudnnSetStream(m.handle, m.stream));
  DS_RETURN_IF_ERROR(m.DescribeBatch(batch));
  size_t work_bytes = 0, reserve_bytes = 0;
  DS_CUDNN(cudnnGetRNNTempSpaceSizes(m.handle, m.rnn, CUDNN_FWD_MODE_TRAINING,
                                     m.x_desc, &work_bytes, &reserve_bytes));
  if (work_bytes > m.work.bytes || reserve_bytes > m.reserve.bytes) {
    return absl::InternalError(
        absl::StrCat("cuDNN asks for more temporary memory at batch ", batch,
                     " (workspace ", work_bytes, ", reserve ", reserve_bytes,
                     ") than at the layer's max_batch ", m.max_batch, " (",
                     m.work.bytes, ", ", m.reserve.bytes, ")"));
  }

  // Keras weights -> cuDNN's weight space (the host-tested map).
  const int64_t wn = m.layout.size();
  GatherKernel<<<Blocks(wn), kThreads, 0, m.stream>>>(params, m.pack_src.i(),
                                                      wn, m.w.f());
  DS_CUDA(cudaGetLastError());
  const float* xin = x;
  if (spec_.go_backwards) {
    const int64_t n = int64_t{batch} * T * D;
    ReverseTimeKernel<<<Blocks(n), kThreads, 0, m.stream>>>(x, batch, T, D,
                                                            m.x_rev.f());
    DS_CUDA(cudaGetLastError());
    xin = m.x_rev.f();
  }
  // TRAINING mode for evaluation too: Keras-TF calls CudnnRNNV3 with
  // is_training=True in both.
  DS_CUDNN(cudnnRNNForward(
      m.handle, m.rnn, CUDNN_FWD_MODE_TRAINING, m.dev_seq_lengths.i(), m.x_desc,
      xin, m.y_desc, m.y_seq.ptr, m.h_desc, m.zeros.ptr, m.hy.ptr, m.h_desc,
      m.lstm() ? m.zeros.ptr : nullptr, m.lstm() ? m.cy.ptr : nullptr,
      m.w.bytes, m.w.ptr, m.work.bytes, m.work.ptr, m.reserve.bytes,
      m.reserve.ptr));
  const size_t row = static_cast<size_t>(U) * sizeof(float);
  if (spec_.return_sequences) {
    DS_CUDA(cudaMemcpyAsync(y, m.y_seq.ptr, row * T * batch,
                            cudaMemcpyDeviceToDevice, m.stream));
  } else {
    // The last step of each sample's sequence: Keras' outputs[-1].
    DS_CUDA(cudaMemcpy2DAsync(y, row, m.y_seq.f() + int64_t{T - 1} * U, row * T,
                              row, batch, cudaMemcpyDeviceToDevice, m.stream));
  }
  m.fwd_batch = batch;
  m.fwd_x = xin;
  return absl::OkStatus();
}

absl::Status CudnnRnnLayer::Backward(const float* dy, float* dx,
                                     float* dparams) {
  Impl& m = *impl_;
  if (m.fwd_batch == 0) {
    return absl::FailedPreconditionError(
        "cuDNN layer: Backward needs a successful Forward first");
  }
  const int batch = m.fwd_batch, T = m.steps, U = m.layout.hidden_size(),
            D = m.layout.input_size();
  DS_CUDNN(cudnnSetStream(m.handle, m.stream));
  DS_RETURN_IF_ERROR(m.DescribeBatch(batch));
  const size_t row = static_cast<size_t>(U) * sizeof(float);
  const float* dyin = dy;
  if (!spec_.return_sequences) {
    // Keras-TF differentiates outputs[-1]: the gradient enters the last step
    // of an otherwise zero sequence gradient, and none enters h_T.
    DS_CUDA(cudaMemsetAsync(m.dy_seq.ptr, 0, row * T * batch, m.stream));
    DS_CUDA(cudaMemcpy2DAsync(m.dy_seq.f() + int64_t{T - 1} * U, row * T, dy,
                              row, row, batch, cudaMemcpyDeviceToDevice,
                              m.stream));
    dyin = m.dy_seq.f();
  }
  float* dxout = (dx != nullptr && !spec_.go_backwards) ? dx : m.dx_seq.f();
  float* dhx = m.dstates.f();
  float* dcx = dhx + static_cast<size_t>(m.max_batch) * U;
  // Backward data first: it writes the reserve space backward weights reads.
  DS_CUDNN(cudnnRNNBackwardData_v8(
      m.handle, m.rnn, m.dev_seq_lengths.i(), m.y_desc, m.y_seq.ptr, dyin,
      m.x_desc, dxout, m.h_desc, m.zeros.ptr, m.zeros.ptr, dhx, m.h_desc,
      m.lstm() ? m.zeros.ptr : nullptr, m.lstm() ? m.zeros.ptr : nullptr,
      m.lstm() ? dcx : nullptr, m.w.bytes, m.w.ptr, m.work.bytes, m.work.ptr,
      m.reserve.bytes, m.reserve.ptr));
  if (dx != nullptr && spec_.go_backwards) {
    const int64_t n = int64_t{batch} * T * D;
    ReverseTimeKernel<<<Blocks(n), kThreads, 0, m.stream>>>(m.dx_seq.f(), batch,
                                                            T, D, dx);
    DS_CUDA(cudaGetLastError());
  }
  // cuDNN only accumulates weight gradients (WGRAD_MODE_ADD): start at 0.
  DS_CUDA(cudaMemsetAsync(m.dw.ptr, 0, m.dw.bytes, m.stream));
  DS_CUDNN(cudnnRNNBackwardWeights_v8(
      m.handle, m.rnn, CUDNN_WGRAD_MODE_ADD, m.dev_seq_lengths.i(), m.x_desc,
      m.fwd_x, m.h_desc, m.zeros.ptr, m.y_desc, m.y_seq.ptr, m.dw.bytes,
      m.dw.ptr, m.work.bytes, m.work.ptr, m.reserve.bytes, m.reserve.ptr));
  // Weight-space gradients -> Keras layout (LSTM's bias from dbR alone).
  const int64_t kn = m.layout.keras_size();
  GatherKernel<<<Blocks(kn), kThreads, 0, m.stream>>>(m.dw.f(), m.grad_src.i(),
                                                      kn, dparams);
  DS_CUDA(cudaGetLastError());
  return absl::OkStatus();
}

std::vector<const float*> CudnnRnnLayer::final_states() const {
  if (impl_->lstm()) return {impl_->hy.f(), impl_->cy.f()};
  return {impl_->hy.f()};
}

std::string CudnnRnnLayer::Describe() const {
  return absl::StrCat("cudnn ", impl_->lstm() ? "LSTM" : "GRU",
                      " algo=STANDARD math=",
                      impl_->options.tf32 ? "TENSOR_OP_MATH" : "FMA_MATH",
                      " bias=DOUBLE_BIAS cudnn_version=", cudnnGetVersion());
}

#undef DS_RETURN_IF_ERROR
#undef DS_CUDA
#undef DS_CUDNN

}  // namespace driftscope
