// GPU acceptance of the CUDA backend (ctest label `gpu`; every test skips
// cleanly when no CUDA device can be opened): cuda-det gives cuda-det-emu's
// bits on whole jobs, the cuBLAS profiles agree with ref64, cuda-nondet stays
// close, out-of-memory is RESOURCE_EXHAUSTED and the next run works, and 100
// runs leak no device memory.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/cuda/cuda_backend_loader.h"
#include "engine/drift/array_drift.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

#define SKIP_WITHOUT_GPU()                                        \
  do {                                                            \
    absl::Status _gpu = CheckCudaDevice(*Profile::Parse("cuda")); \
    if (!_gpu.ok()) GTEST_SKIP() << _gpu.message();               \
  } while (0)

RunResult MustRun(const JobSpec& spec, const std::string& profile) {
  absl::StatusOr<Profile> p = Profile::Parse(profile);
  EXPECT_TRUE(p.ok()) << p.status();
  absl::StatusOr<RunResult> r = RunJob(spec, *p);
  EXPECT_TRUE(r.ok()) << profile << ": " << r.status();
  return r.ok() ? *std::move(r) : RunResult{};
}

double RelL2(const NdArray& a, const NdArray& ref) {
  DriftOptions o;
  o.per_timestep = false;
  absl::StatusOr<ArrayDrift> d = CompareArrays(a, ref, o);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? d->overall.rel_l2 : NAN;
}

void ExpectIdentical(const RunResult& a, const RunResult& b) {
  EXPECT_TRUE(a.outputs == b.outputs);
  EXPECT_TRUE(a.losses == b.losses);
  ASSERT_EQ(a.fingerprints.size(), b.fingerprints.size());
  for (size_t i = 0; i < a.fingerprints.size(); ++i) {
    ASSERT_EQ(a.fingerprints[i].sha256, b.fingerprints[i].sha256)
        << "first divergent step " << i;
  }
}

TEST(GpuBackendTest, CudaDetEqualsCudaDetEmuBitForBitOnTheDefaultJob) {
  SKIP_WITHOUT_GPU();
  const JobSpec spec = DefaultJobSpec();
  const RunResult gpu = MustRun(spec, "cuda-det");
  const RunResult emu = MustRun(spec, "cuda-det-emu");
  std::printf("cuda-det ran on %s (sm_%d%d)\n", gpu.device.gpu_name.c_str(),
              gpu.device.compute_major, gpu.device.compute_minor);
  ExpectIdentical(gpu, emu);
}

// Keras' options that run on the device: weight_decay (AdamW, and SGD's
// decay) and seed_mode KERAS give the emulation's bits on the GPU too.
TEST(GpuBackendTest, CudaDetEqualsCudaDetEmuWithWeightDecayAndKerasSeeds) {
  SKIP_WITHOUT_GPU();
  for (int variant = 0; variant < 2; ++variant) {
    JobSpec spec = DefaultJobSpec();
    spec.data.samples = 256;
    spec.seed_mode = SeedMode::kKeras;
    spec.optimizer.weight_decay = 0.004;
    if (variant == 1) {
      spec.optimizer.kind = OptimizerKind::kSgd;
      spec.optimizer.learning_rate = 0.05;
      spec.optimizer.momentum = 0.9;
      spec.optimizer.weight_decay = 0.1;
    }
    SCOPED_TRACE(variant);
    const RunResult gpu = MustRun(spec, "cuda-det");
    const RunResult emu = MustRun(spec, "cuda-det-emu");
    ExpectIdentical(gpu, emu);
  }
}

TEST(GpuBackendTest, CudaDetEqualsCudaDetEmuOnGruSimpleRnnAndDenseJobs) {
  SKIP_WITHOUT_GPU();
  for (int variant = 0; variant < 3; ++variant) {
    JobSpec spec = DefaultJobSpec();
    spec.data.samples = 256;
    spec.training.epochs = 2;
    spec.training.capture_epoch_outputs = true;
    for (LayerSpec& l : spec.model.layers) {
      l.kind = variant == 2 ? LayerKind::kSimpleRnn : LayerKind::kGru;
      l.reset_after = variant == 0;
    }
    if (variant == 2) {
      LayerSpec d;
      d.kind = LayerKind::kDense;
      d.units = 2;
      d.activation = Activation::kTanh;
      spec.model.layers.back().return_sequences = false;
      spec.model.layers.push_back(d);
      spec.optimizer.kind = OptimizerKind::kRmsprop;
      spec.optimizer.clipnorm.reset();
      spec.optimizer.global_clipnorm = 1.0;
    }
    SCOPED_TRACE(variant);
    const RunResult gpu = MustRun(spec, "cuda-det");
    const RunResult emu = MustRun(spec, "cuda-det-emu");
    ExpectIdentical(gpu, emu);
    ASSERT_EQ(gpu.epoch_outputs.size(), emu.epoch_outputs.size());
    for (size_t e = 0; e < gpu.epoch_outputs.size(); ++e) {
      EXPECT_TRUE(gpu.epoch_outputs[e] == emu.epoch_outputs[e]) << e;
    }
  }
}

TEST(GpuBackendTest, CublasProfilesAgreeWithRef64) {
  SKIP_WITHOUT_GPU();
  const JobSpec spec = DefaultJobSpec();
  const RunResult ref = MustRun(spec, "ref64");
  const RunResult cuda = MustRun(spec, "cuda");
  const RunResult tf32 = MustRun(spec, "cuda-tf32");
  const double d = RelL2(cuda.outputs, ref.outputs);
  const double t = RelL2(tf32.outputs, ref.outputs);
  std::printf("rel L2 vs ref64: cuda %.3g, cuda-tf32 %.3g (%s)\n", d, t,
              tf32.device.math_mode.c_str());
  EXPECT_LT(d, 1e-5);
  EXPECT_LT(t, 1e-2);
  EXPECT_EQ(cuda.fingerprints[0].sha256, ref.fingerprints[0].sha256_f32);
  EXPECT_THAT(cuda.device.math_mode, HasSubstr("PEDANTIC"));
  EXPECT_THAT(tf32.device.math_mode, HasSubstr("TF32"));
  // cuBLAS is reproducible run to run on one GPU and library.
  ExpectIdentical(cuda, MustRun(spec, "cuda"));
}

TEST(GpuBackendTest, CudnnProfilesAgreeWithRef64AndRepeat) {
  SKIP_WITHOUT_GPU();
  const JobSpec spec = DefaultJobSpec();
  const RunResult ref = MustRun(spec, "ref64");
  const RunResult fp32 = MustRun(spec, "fp32,device=cuda,rnn=cudnn");
  const RunResult keras = MustRun(spec, "cuda-cudnn");
  const double d = RelL2(fp32.outputs, ref.outputs);
  const double t = RelL2(keras.outputs, ref.outputs);
  std::printf("rel L2 vs ref64: cudnn fp32 %.3g, cuda-cudnn (TF32) %.3g\n%s\n",
              d, t, keras.device.math_mode.c_str());
  EXPECT_LT(d, 1e-5);
  EXPECT_LT(t, 1e-2);
  EXPECT_GT(keras.device.cudnn_version, 0);
  EXPECT_THAT(keras.device.math_mode, HasSubstr("cudnn"));
  // The claim for cuDNN: run to run on one GPU model and cuDNN version.
  ExpectIdentical(keras, MustRun(spec, "cuda-cudnn"));
}

TEST(GpuBackendTest, CudaNondetStaysCloseAndMayDifferRunToRun) {
  SKIP_WITHOUT_GPU();
  const JobSpec spec = DefaultJobSpec();
  const RunResult a = MustRun(spec, "cuda-nondet");
  const RunResult b = MustRun(spec, "cuda-nondet");
  const double d = RelL2(a.outputs, b.outputs);
  std::printf("cuda-nondet, two runs: %s, rel L2 %.3g\n",
              a.outputs == b.outputs ? "identical" : "different", d);
  EXPECT_LT(d, 1e-4);
  EXPECT_LT(RelL2(a.outputs, MustRun(spec, "ref64").outputs), 1e-5);
}

TEST(GpuBackendTest, OutOfMemoryIsResourceExhaustedAndTheNextRunWorks) {
  SKIP_WITHOUT_GPU();
  // Hold nearly all device memory through a table of our own.
  absl::StatusOr<std::unique_ptr<dev::DeviceOps>> hog =
      OpenCudaBackend(*Profile::Parse("cuda"));
  ASSERT_TRUE(hog.ok()) << hog.status();
  std::vector<void*> held;
  for (size_t block = size_t{1} << 30; block >= (size_t{1} << 20);) {
    void* p = nullptr;
    if ((*hog)->Alloc(block, &p) == dev::OpStatus::kOk) {
      held.push_back(p);
    } else {
      block /= 2;
    }
  }
  absl::StatusOr<RunResult> r =
      RunJob(DefaultJobSpec(), *Profile::Parse("cuda"));
  for (void* p : held) (*hog)->Free(p);
  hog->reset();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("bytes"));
  absl::StatusOr<RunResult> next =
      RunJob(DefaultJobSpec(), *Profile::Parse("cuda"));
  EXPECT_TRUE(next.ok()) << next.status();
}

TEST(GpuBackendTest, HundredRunsLeakNoDeviceMemory) {
  SKIP_WITHOUT_GPU();
  JobSpec spec = DefaultJobSpec();
  spec.data.samples = 64;
  spec.training.epochs = 1;
  absl::StatusOr<std::unique_ptr<dev::DeviceOps>> probe =
      OpenCudaBackend(*Profile::Parse("cuda"));
  ASSERT_TRUE(probe.ok()) << probe.status();
  MustRun(spec, "cuda");  // warm-up: cuBLAS workspaces, module loading
  size_t before = 0, after = 0, total = 0;
  ASSERT_EQ((*probe)->MemoryInfo(&before, &total), dev::OpStatus::kOk);
  for (int i = 0; i < 100; ++i) {
    MustRun(spec, i % 2 == 0 ? "cuda" : "cuda-det");
    if (HasFailure()) return;
  }
  ASSERT_EQ((*probe)->MemoryInfo(&after, &total), dev::OpStatus::kOk);
  std::printf("free device memory before %zu, after 100 runs %zu\n", before,
              after);
  EXPECT_GE(after + (size_t{4} << 20), before);
}

}  // namespace
}  // namespace driftscope
