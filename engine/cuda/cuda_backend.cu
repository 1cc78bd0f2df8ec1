// The CUDA implementation of DeviceOps (device_ops.h), built into
// libdriftscope_cuda_backend.so whenever nvcc is found and loaded by the
// engine with dlopen (cuda_backend_loader.h) only when a device=cuda profile
// runs. Its one exported symbol is driftscope_cuda_backend_open.
//
// Every elementwise op is one launch of ForEach over the *_kernels.h functor,
// one thread per index: the arithmetic is the DS_HD code the cuda-emu
// backend runs on the host, compiled with --fmad=false and no fast math, so
// cuda-det (ordered-fma GEMM, no atomics) gives the emulation's bits.
// GEMMs go to cuBLAS (CUBLAS_PEDANTIC_MATH, or CUBLAS_TF32_TENSOR_OP_MATH for
// matmul=tf32) unless the profile asks for the ordered GEMM. With atomics
// (cuda-nondet) the weight gradients are split-k sums and the bias gradients
// per-step sums, both added with float atomicAdd: the order in which they
// land, hence the bits, changes from run to run.
//
// All work is queued on one stream per table; Download waits for it. A
// table is used by one thread at a time.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/device_ops.h"
#ifdef DRIFTSCOPE_BACKEND_HAS_CUDNN
#include <cudnn.h>

#include "engine/cuda/cudnn_layout.h"
#include "engine/cuda/cudnn_rnn.h"
#include "engine/job/job_spec.h"
#endif

namespace driftscope {
namespace {

using dev::OpStatus;

constexpr int kThreads = 256;

template <typename Args>
__global__ void ForEachKernel(Args args, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) args(i);
}

// cuda-nondet's bias gradient: one thread per (step o, column j) sums its
// batch in order, then adds the step's sum into out[j] with an atomic.
__global__ void BiasGradAtomicKernel(dev::BiasGradArgs a) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= static_cast<int64_t>(a.outer) * a.cols) return;
  const int o = static_cast<int>(e / a.cols), j = static_cast<int>(e % a.cols);
  const float* base = a.d + o * a.so + j;
  float s = base[0];
  for (int i = 1; i < a.inner; ++i) s = __fadd_rn(s, base[i * a.si]);
  atomicAdd(a.out + j, s);
}

constexpr int kSplitK = 64;  // rows of k per partial sum under atomics

// cuda-nondet's weight gradients: C = op(A)·op(B) as partial sums over
// chunks of kSplitK, added into the zeroed C with atomics.
__global__ void GemmSplitKAtomicKernel(dev::GemmArgs g, int chunks) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= static_cast<int64_t>(g.m) * g.n * chunks) return;
  const int64_t idx = e / chunks;
  const int chunk = static_cast<int>(e % chunks);
  const int i = static_cast<int>(idx / g.n), j = static_cast<int>(idx % g.n);
  const int k0 = chunk * kSplitK;
  const int k1 = min(g.k, k0 + kSplitK);
  float acc = 0.0f;
  for (int kk = k0; kk < k1; ++kk) acc = __fmaf_rn(g.A(i, kk), g.B(kk, j), acc);
  atomicAdd(g.c + static_cast<int64_t>(i) * g.ldc + j, acc);
}

// gemm=ordered-fma: gemm_kernels.h's tiled phases, one thread per output.
__global__ void OrderedGemmKernel(dev::GemmArgs g) {
  __shared__ dev::GemmTile tile;
  const int by = blockIdx.y, bx = blockIdx.x;
  const int ty = threadIdx.y, tx = threadIdx.x;
  float acc = 0.0f;
  for (int k0 = 0; k0 < g.k; k0 += dev::kGemmTile) {
    dev::GemmTileLoad(g, by, bx, ty, tx, k0, &tile);
    __syncthreads();
    acc = dev::GemmTileAccumulate(g, ty, tx, k0, tile, acc);
    __syncthreads();
  }
  dev::GemmTileStore(g, by, bx, ty, tx, acc);
}

unsigned Blocks(int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

const char* CublasStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "cuBLAS error";
  }
}

void CopyText(char* dst, size_t size, const std::string& s) {
  std::strncpy(dst, s.c_str(), size - 1);
  dst[size - 1] = '\0';
}

class CudaDeviceOps final : public dev::DeviceOps {
 public:
  explicit CudaDeviceOps(const dev::DeviceConfig& config) : config_(config) {}

  ~CudaDeviceOps() override {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
#ifdef DRIFTSCOPE_BACKEND_HAS_CUDNN
    cudnn_layers_.clear();  // before the handle they use
    if (cudnn_ != nullptr) cudnnDestroy(cudnn_);
#endif
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    // A sticky error (a kernel fault) leaves the context unusable: reset it
    // so that the next run on this device starts clean.
    if (sticky_) cudaDeviceReset();
  }

  // Opens the device; kUnsupported/kDeviceError with the reason in `error`.
  OpStatus Open(std::string* error) {
    int count = 0;  // left unwritten by cudaGetDeviceCount without a driver
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      *error = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
      return OpStatus::kUnsupported;
    }
    if (config_.device_index < 0 || config_.device_index >= count) {
      *error = "device index " + std::to_string(config_.device_index) +
               " is out of range: " + std::to_string(count) +
               " CUDA device(s) visible";
      return OpStatus::kUnsupported;
    }
    device_ = config_.device_index;
    if ((e = cudaSetDevice(device_)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)) !=
            cudaSuccess) {
      *error = std::string("opening the device: ") + cudaGetErrorString(e);
      return e == cudaErrorMemoryAllocation ? OpStatus::kOutOfMemory
                                            : OpStatus::kUnsupported;
    }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, device_)) != cudaSuccess) {
      *error = std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(e);
      return OpStatus::kUnsupported;
    }
    CopyText(description_.backend, sizeof(description_.backend), "cuda");
    CopyText(description_.gpu_name, sizeof(description_.gpu_name), prop.name);
    description_.compute_major = prop.major;
    description_.compute_minor = prop.minor;
    cudaDriverGetVersion(&description_.driver_version);
    cudaRuntimeGetVersion(&description_.runtime_version);
    std::string math;
    if (config_.cublas) {
      cublasStatus_t s = cublasCreate(&cublas_);
      if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(cublas_, stream_);
      const cublasMath_t mode =
          config_.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH;
      if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(cublas_, mode);
      int version = 0;
      if (s == CUBLAS_STATUS_SUCCESS) s = cublasGetVersion(cublas_, &version);
      if (s != CUBLAS_STATUS_SUCCESS) {
        *error = std::string("cuBLAS: ") + CublasStatusName(s);
        if (s == CUBLAS_STATUS_ALLOC_FAILED) {
          size_t free_bytes = 0, total = 0;
          cudaMemGetInfo(&free_bytes, &total);
          *error += ": out of device memory for the handle (" +
                    std::to_string(free_bytes) + " of " +
                    std::to_string(total) + " bytes free)";
        }
        return s == CUBLAS_STATUS_ALLOC_FAILED ? OpStatus::kOutOfMemory
                                               : OpStatus::kUnsupported;
      }
      description_.cublas_version = version;
      math = config_.tf32 ? "cublas CUBLAS_TF32_TENSOR_OP_MATH"
                          : "cublas CUBLAS_PEDANTIC_MATH";
    } else {
      math = config_.tf32 ? "ordered-fma, TF32-rounded inputs" : "ordered-fma";
    }
    if (config_.atomics) math += ", atomic gradient sums";
    CopyText(description_.math_mode, sizeof(description_.math_mode), math);
    return OpStatus::kOk;
  }

  const dev::DeviceDescription& description() const override {
    return description_;
  }
  const char* last_error() const override { return error_.c_str(); }

  OpStatus Alloc(size_t bytes, void** out) override {
    cudaError_t e = cudaMalloc(out, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      error_ = "cudaMalloc of " + std::to_string(bytes) +
               " bytes on cuda:" + std::to_string(device_) +
               " failed: out of memory (" + std::to_string(free_bytes) +
               " of " + std::to_string(total) + " bytes free)";
      return OpStatus::kOutOfMemory;
    }
    return Check(e, "cudaMalloc");
  }
  void Free(void* p) override { cudaFree(p); }
  OpStatus Upload(void* dst, const void* src, size_t bytes) override {
    return Check(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync to the device");
  }
  OpStatus Download(void* dst, const void* src, size_t bytes) override {
    OpStatus s =
        Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_),
              "cudaMemcpyAsync to the host");
    if (s != OpStatus::kOk) return s;
    return Check(cudaStreamSynchronize(stream_), "a queued kernel");
  }
  OpStatus Zero(void* dst, size_t bytes) override {
    return Check(cudaMemsetAsync(dst, 0, bytes, stream_), "cudaMemsetAsync");
  }
  OpStatus Copy(void* dst, const void* src, size_t bytes) override {
    return Check(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
        "cudaMemcpyAsync on the device");
  }
  OpStatus Finish() override {
    return Check(cudaStreamSynchronize(stream_), "a queued kernel");
  }
  OpStatus MemoryInfo(size_t* free_bytes, size_t* total_bytes) override {
    return Check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
  }

  OpStatus Gemm(const dev::GemmArgs& in, dev::GemmRole role) override {
    dev::GemmArgs g = in;
    if (g.size() == 0) return OpStatus::kOk;
    if (config_.atomics && role == dev::GemmRole::kWeightGrad && g.k > 0) {
      OpStatus s = OpStatus::kOk;
      if (g.ldc == g.n) {
        s = Zero(g.c, g.size() * sizeof(float));
      } else {  // a column block of a wider C: zero it row by row
        for (int i = 0; i < g.m && s == OpStatus::kOk; ++i) {
          s = Zero(g.c + static_cast<int64_t>(i) * g.ldc, g.n * sizeof(float));
        }
      }
      if (s != OpStatus::kOk) return s;
      const int chunks = (g.k + kSplitK - 1) / kSplitK;
      GemmSplitKAtomicKernel<<<Blocks(g.size() * chunks), kThreads, 0,
                               stream_>>>(g, chunks);
      return Check(cudaGetLastError(), "GemmSplitKAtomicKernel launch");
    }
    if (g.k == 0) return Launch(g);  // C = 0
    if (!config_.cublas) {
      const dim3 threads(dev::kGemmTile, dev::kGemmTile);
      const dim3 blocks((g.n + dev::kGemmTile - 1) / dev::kGemmTile,
                        (g.m + dev::kGemmTile - 1) / dev::kGemmTile);
      OrderedGemmKernel<<<blocks, threads, 0, stream_>>>(g);
      return Check(cudaGetLastError(), "OrderedGemmKernel launch");
    }
    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
    const float one = 1.0f, zero = 0.0f;
    const cublasStatus_t s =
        cublasSgemm(cublas_, g.tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                    g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k, &one, g.b,
                    g.ldb, g.a, g.lda, &zero, g.c, g.ldc);
    if (s != CUBLAS_STATUS_SUCCESS) {
      error_ = std::string("cublasSgemm: ") + CublasStatusName(s);
      return OpStatus::kDeviceError;
    }
    return OpStatus::kOk;
  }

  OpStatus Run(const dev::GatherRowsArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::TimeMajorArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::AddBiasArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::BiasGradArgs& a) override {
    if (!config_.atomics) return Launch(a);
    OpStatus s = Zero(a.out, a.cols * sizeof(float));
    if (s != OpStatus::kOk) return s;
    const int64_t n = static_cast<int64_t>(a.outer) * a.cols;
    if (n == 0) return OpStatus::kOk;
    BiasGradAtomicKernel<<<Blocks(n), kThreads, 0, stream_>>>(a);
    return Check(cudaGetLastError(), "BiasGradAtomicKernel launch");
  }
  OpStatus Run(const dev::LstmForwardArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::LstmBackwardArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::GruForwardArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::GruBackwardArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::SimpleRnnForwardArgs& a) override {
    return Launch(a);
  }
  OpStatus Run(const dev::SimpleRnnBackwardArgs& a) override {
    return Launch(a);
  }
  OpStatus Run(const dev::DenseForwardArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::DenseBackwardArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::LossRowsArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::LossTotalArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::LossGradArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::SquaresArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::ClipFactorArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::ClipApplyArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::AdamArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::SgdArgs& a) override { return Launch(a); }
  OpStatus Run(const dev::RmspropArgs& a) override { return Launch(a); }

#ifdef DRIFTSCOPE_BACKEND_HAS_CUDNN
  OpStatus CudnnLayerCreate(const LayerSpec& spec, int timesteps, int dim,
                            int max_batch, int* layer) override {
    if (cudnn_ == nullptr) {
      cudnnStatus_t st = cudnnCreate(&cudnn_);
      if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(cudnn_, stream_);
      if (st != CUDNN_STATUS_SUCCESS) {
        error_ = std::string("cudnnCreate: ") + cudnnGetErrorString(st);
        return OpStatus::kDeviceError;
      }
      description_.cudnn_version = static_cast<long>(cudnnGetVersion());
    }
    CudnnRnnOptions options;
    options.tf32 = config_.tf32;
    absl::StatusOr<std::unique_ptr<CudnnRnnLayer>> made = CudnnRnnLayer::Create(
        cudnn_, stream_, spec, ActivationShape{true, timesteps, dim}, max_batch,
        options);
    if (!made.ok()) return FromStatus(made.status());
    *layer = static_cast<int>(cudnn_layers_.size());
    const std::string what =
        "; layer " + std::to_string(*layer) + ": " + (*made)->Describe();
    const std::string math = description_.math_mode + what;
    CopyText(description_.math_mode, sizeof(description_.math_mode), math);
    cudnn_layers_.push_back(*std::move(made));
    return OpStatus::kOk;
  }
  OpStatus CudnnLayerForward(int layer, const float* params, const float* x,
                             int batch, float* y) override {
    return FromStatus(cudnn_layers_.at(layer)->Forward(params, x, batch, y));
  }
  OpStatus CudnnLayerBackward(int layer, const float* dy, float* dx,
                              float* dparams) override {
    return FromStatus(cudnn_layers_.at(layer)->Backward(dy, dx, dparams));
  }
  OpStatus CudnnLayerStates(int layer, const float** states,
                            int* count) override {
    const std::vector<const float*> s = cudnn_layers_.at(layer)->final_states();
    *count = static_cast<int>(s.size());
    for (size_t i = 0; i < s.size() && i < 2; ++i) states[i] = s[i];
    return OpStatus::kOk;
  }
#else
  OpStatus CudnnLayerCreate(const LayerSpec&, int, int, int, int*) override {
    return NoCudnn();
  }
  OpStatus CudnnLayerForward(int, const float*, const float*, int,
                             float*) override {
    return NoCudnn();
  }
  OpStatus CudnnLayerBackward(int, const float*, float*, float*) override {
    return NoCudnn();
  }
  OpStatus CudnnLayerStates(int, const float**, int*) override {
    return NoCudnn();
  }
#endif

 private:
#ifdef DRIFTSCOPE_BACKEND_HAS_CUDNN
  OpStatus FromStatus(const absl::Status& st) {
    if (st.ok()) return OpStatus::kOk;
    error_ = std::string(st.message());
    if (st.code() == absl::StatusCode::kResourceExhausted) {
      return OpStatus::kOutOfMemory;
    }
    return st.code() == absl::StatusCode::kInternal ? OpStatus::kDeviceError
                                                    : OpStatus::kUnsupported;
  }
  cudnnHandle_t cudnn_ = nullptr;
  std::vector<std::unique_ptr<CudnnRnnLayer>> cudnn_layers_;
#else
  OpStatus NoCudnn() {
    error_ = "this CUDA backend was built without cuDNN (rnn=cudnn)";
    return OpStatus::kUnsupported;
  }
#endif

  template <typename Args>
  OpStatus Launch(const Args& args) {
    const int64_t n = args.size();
    if (n == 0) return OpStatus::kOk;
    ForEachKernel<Args><<<Blocks(n), kThreads, 0, stream_>>>(args, n);
    return Check(cudaGetLastError(), "kernel launch");
  }

  OpStatus Check(cudaError_t e, const char* what) {
    if (e == cudaSuccess) return OpStatus::kOk;
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      error_ = std::string(what) + ": out of device memory";
      return OpStatus::kOutOfMemory;
    }
    // Errors that poison the context (illegal address, launch failure) stay:
    // the destructor resets the device so the next run starts clean.
    sticky_ = cudaPeekAtLastError() != cudaSuccess ||
              e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure;
    error_ = std::string("CUDA error in ") + what +
             " on cuda:" + std::to_string(device_) + ": " +
             cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    return OpStatus::kDeviceError;
  }

  const dev::DeviceConfig config_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  bool sticky_ = false;
  dev::DeviceDescription description_;
  std::string error_;
};

}  // namespace
}  // namespace driftscope

extern "C" __attribute__((visibility("default"))) int
driftscope_cuda_backend_open(int abi_version,
                             const driftscope::dev::DeviceConfig* config,
                             driftscope::dev::DeviceOps** out, char* error,
                             int error_size) {
  using driftscope::dev::OpStatus;
  auto fail = [&](OpStatus s, const std::string& why) {
    if (error != nullptr && error_size > 0) {
      std::snprintf(error, static_cast<size_t>(error_size), "%s", why.c_str());
    }
    return static_cast<int>(s);
  };
  if (abi_version != driftscope::dev::kDeviceOpsAbiVersion) {
    return fail(OpStatus::kUnsupported,
                "the CUDA backend library was built for DeviceOps ABI " +
                    std::to_string(driftscope::dev::kDeviceOpsAbiVersion) +
                    ", the engine asks for " + std::to_string(abi_version) +
                    ": rebuild them together");
  }
  auto* ops = new driftscope::CudaDeviceOps(*config);
  std::string why;
  const OpStatus s = ops->Open(&why);
  if (s != OpStatus::kOk) {
    delete ops;
    return fail(s, why);
  }
  *out = ops;
  return static_cast<int>(OpStatus::kOk);
}
