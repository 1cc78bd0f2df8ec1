// CudnnRnnLayer on a real GPU (ctest label "gpu"; every test skips without a
// usable device): the layer against cuDNN's documented equations evaluated
// in float64 on the host (cudnn_host_rnn.h, itself held to the engine's
// float64 reference by cudnn_layout_test.cc), and run-to-run bits.
//
// Its own binary (not part of engine_tests) because it links the CUDA
// runtime and cuDNN, which the engine's binaries never do.
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/cudnn_rnn.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/cuda/cudnn_host_rnn.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using testing_util::HostLayerRun;
using testing_util::Lcg;
using testing_util::RunKerasLayerThroughCudnnEquations;

// A device, a stream and a cuDNN handle, or the reason there are none.
class Gpu {
 public:
  Gpu() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
      why_ = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
      return;
    }
    if (cudaStreamCreate(&stream_) != cudaSuccess) {
      why_ = "cudaStreamCreate failed";
      return;
    }
    const cudnnStatus_t s = cudnnCreate(&handle_);
    if (s != CUDNN_STATUS_SUCCESS) {
      why_ = cudnnGetErrorString(s);
      handle_ = nullptr;
    }
  }
  ~Gpu() {
    if (handle_ != nullptr) cudnnDestroy(handle_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  bool ok() const { return handle_ != nullptr; }
  const std::string& why() const { return why_; }
  cudnnHandle_t handle() const { return handle_; }
  cudaStream_t stream() const { return stream_; }

 private:
  cudnnHandle_t handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::string why_;
};

#define SKIP_WITHOUT_GPU(gpu) \
  if (!(gpu).ok()) GTEST_SKIP() << "no usable GPU: " << (gpu).why()

// A float device array filled from / read back to the host.
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(float)),
              cudaSuccess);
  }
  explicit DeviceArray(const std::vector<float>& v) : DeviceArray(v.size()) {
    EXPECT_EQ(cudaMemcpy(p_, v.data(), v.size() * sizeof(float),
                         cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~DeviceArray() { cudaFree(p_); }
  float* get() const { return static_cast<float*>(p_); }
  std::vector<float> Read() const {
    std::vector<float> v(n_);
    EXPECT_EQ(
        cudaMemcpy(v.data(), p_, n_ * sizeof(float), cudaMemcpyDeviceToHost),
        cudaSuccess);
    return v;
  }

 private:
  void* p_ = nullptr;
  size_t n_;
};

std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}
std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want,
                double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err =
        std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i]));
    if (!(err <= worst)) worst = err, at = i;
  }
  EXPECT_LE(worst, tol) << what << ": element " << at << " is " << got[at]
                        << ", float64 " << want[at];
}

struct Outputs {
  std::vector<float> y, dx, dparams;
  std::vector<std::vector<float>> final_states;
};

// Forward then Backward on `layer` for `batch` samples.
Outputs RunLayer(const Gpu& gpu, CudnnRnnLayer* layer, int batch,
                 const std::vector<float>& params, const std::vector<float>& x,
                 const std::vector<float>& dy) {
  DeviceArray p(params), dx_in(x), ddy(dy), y(dy.size()), dx(x.size()),
      dp(params.size());
  Outputs o;
  absl::Status s = layer->Forward(p.get(), dx_in.get(), batch, y.get());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(cudaStreamSynchronize(gpu.stream()), cudaSuccess);
  for (const float* state : layer->final_states()) {
    std::vector<float> v(static_cast<size_t>(batch) *
                         layer->output_shape().dim);
    EXPECT_EQ(cudaMemcpy(v.data(), state, v.size() * sizeof(float),
                         cudaMemcpyDeviceToHost),
              cudaSuccess);
    o.final_states.push_back(v);
  }
  s = layer->Backward(ddy.get(), dx.get(), dp.get());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(cudaStreamSynchronize(gpu.stream()), cudaSuccess);
  o.y = y.Read();
  o.dx = dx.Read();
  o.dparams = dp.Read();
  return o;
}

LayerSpec Rnn(LayerKind kind, int units, bool seq, bool back) {
  LayerSpec s;
  s.kind = kind;
  s.units = units;
  s.return_sequences = seq;
  s.go_backwards = back;
  return s;
}

TEST(CudnnRnnGpuTest, MatchesCudnnEquationsInFloat64AndRepeatsItsBits) {
  Gpu gpu;
  SKIP_WITHOUT_GPU(gpu);
  Lcg rng(3);
  const int T = 6, D = 5, U = 7, max_batch = 4;
  ActivationShape in;
  in.timesteps = T;
  in.dim = D;
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru}) {
    for (bool seq : {true, false}) {
      for (bool back : {false, true}) {
        const LayerSpec spec = Rnn(kind, U, seq, back);
        SCOPED_TRACE(testing_util::Describe(spec));
        auto layer = CudnnRnnLayer::Create(gpu.handle(), gpu.stream(), spec, in,
                                           max_batch);
        ASSERT_TRUE(layer.ok()) << layer.status();
        EXPECT_GT((*layer)->memory().total(), 0u);
        // A full batch, then a smaller one (new descriptors).
        for (int batch : {max_batch, 3}) {
          const std::vector<float> params =
              ToFloat(rng.Vec((*layer)->num_params(), 0.5));
          const std::vector<float> x =
              ToFloat(rng.Vec(int64_t{batch} * T * D, 1.0));
          const std::vector<float> dy =
              ToFloat(rng.Vec(int64_t{batch} * (seq ? T : 1) * U, 1.0));
          const Outputs got = RunLayer(gpu, layer->get(), batch, params, x, dy);
          const HostLayerRun want = RunKerasLayerThroughCudnnEquations(
              spec, in, batch, ToDouble(params), ToDouble(x), ToDouble(dy));
          // FMA_MATH: plain fp32 arithmetic, so fp32 rounding over a few
          // steps and sums of a few dozen terms.
          ExpectNear(got.y, want.y, 1e-5, "y");
          ASSERT_EQ(got.final_states.size(), want.final_states.size());
          for (size_t i = 0; i < got.final_states.size(); ++i)
            ExpectNear(got.final_states[i], want.final_states[i], 1e-5,
                       "final state");
          ExpectNear(got.dparams, want.dkeras, 1e-4, "dparams");
          ExpectNear(got.dx, want.dx, 1e-4, "dx");

          const Outputs again =
              RunLayer(gpu, layer->get(), batch, params, x, dy);
          EXPECT_EQ(again.y, got.y) << "run-to-run bits";
          EXPECT_EQ(again.dparams, got.dparams) << "run-to-run bits";
          EXPECT_EQ(again.dx, got.dx) << "run-to-run bits";
        }
      }
    }
  }
}

TEST(CudnnRnnGpuTest, Tf32MathStaysNearFloat64) {
  Gpu gpu;
  SKIP_WITHOUT_GPU(gpu);
  Lcg rng(8);
  ActivationShape in;
  in.timesteps = 5;
  in.dim = 8;
  const LayerSpec spec = Rnn(LayerKind::kLstm, 16, true, false);
  CudnnRnnOptions options;
  options.tf32 = true;
  auto layer =
      CudnnRnnLayer::Create(gpu.handle(), gpu.stream(), spec, in, 2, options);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_THAT((*layer)->Describe(), ::testing::HasSubstr("TENSOR_OP_MATH"));
  const std::vector<float> params =
      ToFloat(rng.Vec((*layer)->num_params(), 0.5));
  const std::vector<float> x = ToFloat(rng.Vec(2 * 5 * 8, 1.0));
  const std::vector<float> dy = ToFloat(rng.Vec(2 * 5 * 16, 1.0));
  const Outputs got = RunLayer(gpu, layer->get(), 2, params, x, dy);
  const HostLayerRun want = RunKerasLayerThroughCudnnEquations(
      spec, in, 2, ToDouble(params), ToDouble(x), ToDouble(dy));
  // TF32 keeps 10 mantissa bits of the GEMM inputs: about 1e-3 relative.
  ExpectNear(got.y, want.y, 2e-2, "y");
}

TEST(CudnnRnnGpuTest, BadUseIsAnErrorNotACrash) {
  Gpu gpu;
  SKIP_WITHOUT_GPU(gpu);
  ActivationShape in;
  in.timesteps = 3;
  in.dim = 2;
  LayerSpec gru = Rnn(LayerKind::kGru, 4, true, false);
  gru.reset_after = false;
  EXPECT_EQ(CudnnRnnLayer::Create(gpu.handle(), gpu.stream(), gru, in, 2)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  auto layer = CudnnRnnLayer::Create(
      gpu.handle(), gpu.stream(), Rnn(LayerKind::kLstm, 4, true, false), in, 2);
  ASSERT_TRUE(layer.ok()) << layer.status();
  DeviceArray dy(2 * 3 * 4), dp((*layer)->num_params());
  EXPECT_EQ((*layer)->Backward(dy.get(), nullptr, dp.get()).code(),
            absl::StatusCode::kFailedPrecondition);
  DeviceArray p((*layer)->num_params()), x(3 * 3 * 2), y(3 * 3 * 4);
  EXPECT_EQ((*layer)->Forward(p.get(), x.get(), 3, y.get()).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace driftscope
