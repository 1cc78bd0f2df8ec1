// How the device trainer reports a backend's faults, on the host emulation
// wrapped in a table that fails on purpose: running out of device memory is
// ResourceExhausted naming the bytes, a device error mid-run is Internal with
// the backend's text, and the next run on a fresh table works.
#include <memory>
#include <string>

#include "engine/cuda/device_trainer.h"
#include "engine/cuda/emu_ops.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

// Delegates to the emulation; Alloc number `fail_alloc` runs out of memory,
// and the optimizer step number `fail_step` hits a device error.
class FaultyOps final : public dev::DeviceOps {
 public:
  FaultyOps(int fail_alloc, int fail_step)
      : inner_(NewEmulatedDeviceOps(false)),
        fail_alloc_(fail_alloc),
        fail_step_(fail_step) {}

  const dev::DeviceDescription& description() const override {
    return inner_->description();
  }
  const char* last_error() const override {
    return error_.empty() ? inner_->last_error() : error_.c_str();
  }
  dev::OpStatus Alloc(size_t bytes, void** out) override {
    if (++allocs_ == fail_alloc_) {
      error_ = "cudaMalloc of " + std::to_string(bytes) +
               " bytes failed: out of memory";
      return dev::OpStatus::kOutOfMemory;
    }
    return inner_->Alloc(bytes, out);
  }
  void Free(void* p) override {
    ++frees_;
    inner_->Free(p);
  }
  dev::OpStatus Upload(void* d, const void* s, size_t n) override {
    return inner_->Upload(d, s, n);
  }
  dev::OpStatus Download(void* d, const void* s, size_t n) override {
    return inner_->Download(d, s, n);
  }
  dev::OpStatus Zero(void* d, size_t n) override { return inner_->Zero(d, n); }
  dev::OpStatus Copy(void* d, const void* s, size_t n) override {
    return inner_->Copy(d, s, n);
  }
  dev::OpStatus Finish() override { return inner_->Finish(); }
  dev::OpStatus MemoryInfo(size_t* f, size_t* t) override {
    return inner_->MemoryInfo(f, t);
  }
  dev::OpStatus Gemm(const dev::GemmArgs& a, dev::GemmRole r) override {
    return inner_->Gemm(a, r);
  }
  dev::OpStatus Run(const dev::GatherRowsArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::TimeMajorArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::AddBiasArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::BiasGradArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::LstmForwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::LstmBackwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::GruForwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::GruBackwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::SimpleRnnForwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::SimpleRnnBackwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::DenseForwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::DenseBackwardArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::LossRowsArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::LossTotalArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::LossGradArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::SquaresArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::ClipFactorArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::ClipApplyArgs& a) override {
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::AdamArgs& a) override {
    if (++steps_ == fail_step_) {
      error_ = "CUDA error in kernel launch on cuda:0: cudaErrorLaunchFailure";
      return dev::OpStatus::kDeviceError;
    }
    return inner_->Run(a);
  }
  dev::OpStatus Run(const dev::SgdArgs& a) override { return inner_->Run(a); }
  dev::OpStatus Run(const dev::RmspropArgs& a) override {
    return inner_->Run(a);
  }

  dev::OpStatus CudnnLayerCreate(const LayerSpec& s, int t, int d, int b,
                                 int* l) override {
    return inner_->CudnnLayerCreate(s, t, d, b, l);
  }
  dev::OpStatus CudnnLayerForward(int l, const float* p, const float* x, int b,
                                  float* y) override {
    return inner_->CudnnLayerForward(l, p, x, b, y);
  }
  dev::OpStatus CudnnLayerBackward(int l, const float* dy, float* dx,
                                   float* dp) override {
    return inner_->CudnnLayerBackward(l, dy, dx, dp);
  }
  dev::OpStatus CudnnLayerStates(int l, const float** s, int* n) override {
    return inner_->CudnnLayerStates(l, s, n);
  }

  int allocs() const { return allocs_; }
  int frees() const { return frees_; }

 private:
  std::unique_ptr<dev::DeviceOps> inner_;
  const int fail_alloc_, fail_step_;
  int allocs_ = 0, frees_ = 0, steps_ = 0;
  std::string error_;
};

JobSpec SmallJob() {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].units = 8;
  spec.model.layers[1].units = 4;
  spec.data.samples = 64;
  spec.data.eval_samples = 8;
  spec.training.epochs = 1;
  return spec;
}

TEST(DeviceFaultsTest, OutOfMemoryIsResourceExhaustedNamingTheBytes) {
  const Profile p = *Profile::Parse("cuda-det-emu");
  FaultyOps ops(/*fail_alloc=*/5, /*fail_step=*/0);
  absl::StatusOr<RunResult> r = RunJobOnDeviceOps(SmallJob(), p, {}, &ops);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("bytes"));
  EXPECT_THAT(r.status().message(), HasSubstr("more needed"));
  // Everything allocated before the failure was given back.
  EXPECT_EQ(ops.frees(), ops.allocs() - 1);
}

TEST(DeviceFaultsTest, DeviceErrorMidRunIsInternalAndTheNextRunWorks) {
  const Profile p = *Profile::Parse("cuda-det-emu");
  FaultyOps ops(/*fail_alloc=*/0, /*fail_step=*/2);
  absl::StatusOr<RunResult> r = RunJobOnDeviceOps(SmallJob(), p, {}, &ops);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("cudaErrorLaunchFailure"));
  EXPECT_EQ(ops.frees(), ops.allocs());
  absl::StatusOr<RunResult> next = RunDeviceJob(SmallJob(), p, {});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->steps, 2);
}

// rnn=cudnn follows Keras' conditions for its cuDNN path: a layer outside
// them is refused naming the layer and the reason, before any device work.
TEST(DeviceFaultsTest, CudnnProfileRefusesLayersKerasWouldNotSendToCudnn) {
  Profile p = *Profile::Parse("fp32,device=cuda,rnn=cudnn");
  JobSpec spec = SmallJob();
  spec.model.layers[1].kind = LayerKind::kSimpleRnn;
  FaultyOps ops(0, 0);
  absl::StatusOr<RunResult> r = RunJobOnDeviceOps(spec, p, {}, &ops);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[1]"));
  EXPECT_EQ(ops.allocs(), 0);
  spec = SmallJob();
  spec.model.layers[0].recurrent_activation = Activation::kHardSigmoidKeras3;
  r = RunJobOnDeviceOps(spec, p, {}, &ops);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[0]"));
  // An eligible model on a table without cuDNN: refused, never run another
  // way.
  r = RunJobOnDeviceOps(SmallJob(), p, {}, &ops);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("cannot run cuDNN"));
  EXPECT_EQ(ops.frees(), ops.allocs());
}

}  // namespace
}  // namespace driftscope
