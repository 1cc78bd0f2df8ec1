// Whole runs on the cuda-emu backend (the deterministic GPU path computed on
// this CPU): agreement with ref64 within the project's fp32 tolerance, the
// CPU's step-0 fingerprint, bit-reproducibility, every layer type, option,
// optimizer and clipping mode, weight_decay and seed_mode KERAS, cancel and
// progress; the refusal of dropout, and of a cuda profile on a host without
// a GPU.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/cuda/cuda_backend_loader.h"
#include "engine/drift/array_drift.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

RunResult MustRun(const JobSpec& spec, const std::string& profile,
                  const RunOptions& options = {}) {
  absl::StatusOr<Profile> p = Profile::Parse(profile);
  EXPECT_TRUE(p.ok()) << p.status();
  absl::StatusOr<RunResult> r = RunJob(spec, *p, options);
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

bool Identical(const RunResult& a, const RunResult& b) {
  if (!(a.outputs == b.outputs) || !(a.losses == b.losses)) return false;
  if (a.fingerprints.size() != b.fingerprints.size()) return false;
  for (size_t i = 0; i < a.fingerprints.size(); ++i) {
    if (a.fingerprints[i].sha256 != b.fingerprints[i].sha256) return false;
  }
  return true;
}

JobSpec SmallJob() {
  JobSpec spec = DefaultJobSpec();
  spec.model.layers[0].units = 16;
  spec.model.layers[1].units = 8;
  spec.data.samples = 96;
  spec.data.eval_samples = 20;
  spec.training.epochs = 2;
  return spec;
}

// The default job: the tolerance trainer_test holds fp32 to (rel L2 1e-5).
TEST(DeviceTrainerTest, EmuAgreesWithRef64OnTheDefaultJob) {
  const JobSpec spec = DefaultJobSpec();
  const RunResult ref = MustRun(spec, "ref64");
  const RunResult fp32 = MustRun(spec, "fp32");
  const RunResult emu = MustRun(spec, "cuda-det-emu");
  const double d = RelL2(emu.outputs, ref.outputs);
  std::printf("default job, rel L2 vs ref64: cuda-det-emu %.3g, fp32 %.3g\n", d,
              RelL2(fp32.outputs, ref.outputs));
  EXPECT_LT(d, 1e-5);
  EXPECT_GT(d, 0.0);  // float32 arithmetic, not a copy of ref64
  EXPECT_EQ(emu.profile, "fp32,device=cuda-emu");
  EXPECT_EQ(emu.device.backend, "cuda-emu");
  EXPECT_EQ(emu.device.math_mode, "ordered-fma");
  // Same data and initial weights as the CPU: the same step-0 fingerprint.
  ASSERT_EQ(emu.fingerprints.size(), fp32.fingerprints.size());
  EXPECT_EQ(emu.fingerprints[0].sha256, fp32.fingerprints[0].sha256);
  EXPECT_EQ(emu.fingerprints[0].sha256_f32, ref.fingerprints[0].sha256_f32);
  // ... and other kernels: the bits part after the first update.
  EXPECT_NE(emu.fingerprints[1].sha256, fp32.fingerprints[1].sha256);
  ASSERT_EQ(emu.losses.size(), ref.losses.size());
  for (int64_t s = 0; s < emu.losses.size(); ++s) {
    EXPECT_NEAR(emu.losses.at(s), ref.losses.at(s), 1e-5 * ref.losses.at(s))
        << "step " << s;
  }
  ASSERT_EQ(emu.final_weights.size(), fp32.final_weights.size());
  for (size_t k = 0; k < emu.final_weights.size(); ++k) {
    EXPECT_EQ(emu.final_weights[k].name, fp32.final_weights[k].name);
    EXPECT_EQ(emu.final_weights[k].array.shape(),
              fp32.final_weights[k].array.shape());
  }
}

TEST(DeviceTrainerTest, EmuIsBitReproducible) {
  const JobSpec spec = SmallJob();
  EXPECT_TRUE(
      Identical(MustRun(spec, "cuda-det-emu"), MustRun(spec, "cuda-det-emu")));
}

struct Variant {
  std::string name;
  std::function<void(JobSpec*)> edit;
};

// Every layer type, layer option, optimizer, clipping mode and loss: each
// trains on cuda-det-emu to within the fp32 tolerance of ref64.
TEST(DeviceTrainerTest, EveryLayerOptionAndOptimizerAgreesWithRef64) {
  const std::vector<Variant> variants = {
      {"gru reset_after",
       [](JobSpec* s) {
         for (LayerSpec& l : s->model.layers) l.kind = LayerKind::kGru;
       }},
      {"gru reset_before, impl 1",
       [](JobSpec* s) {
         for (LayerSpec& l : s->model.layers) {
           l.kind = LayerKind::kGru;
           l.reset_after = false;
           l.implementation = 1;
         }
       }},
      {"simple_rnn, go_backwards",
       [](JobSpec* s) {
         for (LayerSpec& l : s->model.layers) {
           l.kind = LayerKind::kSimpleRnn;
           l.go_backwards = true;
         }
       }},
      {"lstm impl 1, no bias, return_state, vector output",
       [](JobSpec* s) {
         s->model.layers[0].implementation = 1;
         s->model.layers[0].use_bias = false;
         s->model.layers[1].return_sequences = false;
         s->model.layers[1].return_state = true;
       }},
      {"dense head on a sequence, relu and hard sigmoid",
       [](JobSpec* s) {
         s->model.layers[0].recurrent_activation =
             Activation::kHardSigmoidKeras3;
         LayerSpec d;
         d.kind = LayerKind::kDense;
         d.units = 1;
         d.activation = Activation::kLinear;
         s->model.layers[1].activation = Activation::kRelu;
         s->model.layers.push_back(d);
       }},
      {"dense after a vector output",
       [](JobSpec* s) {
         s->model.layers[1].return_sequences = false;
         LayerSpec d;
         d.kind = LayerKind::kDense;
         d.units = 3;
         d.activation = Activation::kTanh;
         s->model.layers.push_back(d);
       }},
      {"adam amsgrad, global_clipnorm, mae",
       [](JobSpec* s) {
         s->optimizer.amsgrad = true;
         s->optimizer.clipnorm.reset();
         s->optimizer.global_clipnorm = 0.5;
         s->loss = LossKind::kMae;
       }},
      {"sgd momentum nesterov, clipvalue",
       [](JobSpec* s) {
         s->optimizer.kind = OptimizerKind::kSgd;
         s->optimizer.learning_rate = 0.05;
         s->optimizer.momentum = 0.9;
         s->optimizer.nesterov = true;
         s->optimizer.clipnorm.reset();
         s->optimizer.clipvalue = 0.01;
       }},
      {"sgd plain",
       [](JobSpec* s) {
         s->optimizer.kind = OptimizerKind::kSgd;
         s->optimizer.learning_rate = 0.05;
       }},
      {"rmsprop centered momentum",
       [](JobSpec* s) {
         s->optimizer.kind = OptimizerKind::kRmsprop;
         s->optimizer.centered = true;
         s->optimizer.momentum = 0.5;
       }},
      {"rmsprop plain, no shuffle, epoch outputs",
       [](JobSpec* s) {
         s->optimizer.kind = OptimizerKind::kRmsprop;
         s->training.shuffle = false;
         s->training.capture_epoch_outputs = true;
       }},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    JobSpec spec = SmallJob();
    v.edit(&spec);
    ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
    const RunResult ref = MustRun(spec, "ref64");
    const RunResult emu = MustRun(spec, "cuda-det-emu");
    if (HasFailure()) return;
    const double d = RelL2(emu.outputs, ref.outputs);
    std::printf("%-50s rel L2 vs ref64 %.3g\n", v.name.c_str(), d);
    EXPECT_LT(d, 1e-5);
    ASSERT_EQ(emu.final_states.size(), ref.final_states.size());
    for (size_t s = 0; s < ref.final_states.size(); ++s) {
      EXPECT_EQ(emu.final_states[s].name, ref.final_states[s].name);
      EXPECT_LT(RelL2(emu.final_states[s].array, ref.final_states[s].array),
                1e-5);
    }
    ASSERT_EQ(emu.epoch_outputs.size(), ref.epoch_outputs.size());
    for (size_t e = 0; e < ref.epoch_outputs.size(); ++e) {
      EXPECT_LT(RelL2(emu.epoch_outputs[e], ref.epoch_outputs[e]), 1e-5);
    }
    for (size_t k = 0; k < ref.final_weights.size(); ++k) {
      EXPECT_LT(RelL2(emu.final_weights[k].array, ref.final_weights[k].array),
                1e-4)
          << ref.final_weights[k].name;
    }
  }
}

TEST(DeviceTrainerTest, EmuWithTf32DriftsMoreThanWithout) {
  const JobSpec spec = SmallJob();
  const RunResult ref = MustRun(spec, "ref64");
  const double exact =
      RelL2(MustRun(spec, "cuda-det-emu").outputs, ref.outputs);
  const double tf32 = RelL2(
      MustRun(spec, "fp32,device=cuda-emu,matmul=tf32").outputs, ref.outputs);
  EXPECT_GT(tf32, 10 * exact);
  EXPECT_LT(tf32, 1e-2);
}

TEST(DeviceTrainerTest, ProgressIsReportedAndCancelStopsBeforeTheNextStep) {
  const JobSpec spec = SmallJob();
  absl::StatusOr<Profile> p = Profile::Parse("cuda-det-emu");
  ASSERT_TRUE(p.ok());
  std::atomic<bool> cancel{false};
  std::vector<int64_t> steps;
  RunOptions options;
  options.cancel = &cancel;
  options.on_progress = [&](const ProgressEvent& e) {
    steps.push_back(e.step);
    if (e.step == 2) cancel = true;
  };
  absl::StatusOr<RunResult> r = RunJob(spec, *p, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(r.status().message(), HasSubstr("before step 3"));
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2}));
}

// Keras' decoupled weight_decay (AdamW) trains on cuda-det-emu as on ref64,
// and its effect is far larger than the emulation's fp32 error.
TEST(DeviceTrainerTest, WeightDecayTrainsAsOnRef64) {
  JobSpec plain = SmallJob();
  JobSpec spec = plain;
  spec.optimizer.weight_decay = 0.3;
  const RunResult ref = MustRun(spec, "ref64");
  const RunResult emu = MustRun(spec, "cuda-det-emu");
  const RunResult emu_plain = MustRun(plain, "cuda-det-emu");
  if (HasFailure()) return;
  const double d = RelL2(emu.outputs, ref.outputs);
  const double effect = RelL2(emu_plain.outputs, ref.outputs);
  std::printf("weight_decay 0.3: rel L2 vs ref64 %.3g, without decay %.3g\n", d,
              effect);
  EXPECT_LT(d, 1e-5);
  EXPECT_GT(effect, 100 * d);
  for (size_t k = 0; k < ref.final_weights.size(); ++k) {
    EXPECT_LT(RelL2(emu.final_weights[k].array, ref.final_weights[k].array),
              1e-4)
        << ref.final_weights[k].name;
  }
}

// Dropout is not on the device path yet: refused naming the field, never
// run without it. The same job runs on the CPU.
TEST(DeviceTrainerTest, DropoutIsRefusedNamingTheField) {
  JobSpec spec = SmallJob();
  spec.model.layers[1].dropout = 0.25;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("cuda-det-emu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[1].dropout"));
  EXPECT_THAT(r.status().message(), HasSubstr("GPU path"));
  EXPECT_THAT(r.status().message(), HasSubstr("does not support"));
  EXPECT_TRUE(RunJob(spec, *Profile::Parse("fp32")).ok());
}

// Recurrent dropout likewise: refused naming the field (checked before
// any device work), while the CPU runs the job.
TEST(DeviceTrainerTest, RecurrentDropoutIsRefusedNamingTheField) {
  JobSpec spec = SmallJob();
  spec.model.layers[0].recurrent_dropout = 0.25;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("cuda-det-emu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("model.layers[0].recurrent_dropout"));
  EXPECT_THAT(r.status().message(), HasSubstr("GPU path"));
  EXPECT_TRUE(RunJob(spec, *Profile::Parse("fp32")).ok());
}

// Bidirectional layers too (the refusal comes before the cuDNN checks, so
// cuda-cudnn gives the same message where a GPU is present).
TEST(DeviceTrainerTest, BidirectionalIsRefusedNamingTheField) {
  JobSpec spec = SmallJob();
  spec.model.layers[0].bidirectional = true;
  ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("cuda-det-emu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[0].bidirectional"));
  EXPECT_THAT(r.status().message(), HasSubstr("GPU path"));
  EXPECT_TRUE(RunJob(spec, *Profile::Parse("fp32")).ok());
}

// seed_mode KERAS: the device run starts from the weights the CPU makes
// with Keras' seeding (the same step-0 fingerprint), which are not the
// STREAMS weights.
TEST(DeviceTrainerTest, KerasSeedModeGivesTheCpuStep0Fingerprint) {
  JobSpec spec = SmallJob();
  spec.seed_mode = SeedMode::kKeras;
  spec.seed = 7;
  JobSpec streams = spec;
  streams.seed_mode = SeedMode::kStreams;
  const RunResult fp32 = MustRun(spec, "fp32");
  const RunResult emu = MustRun(spec, "cuda-det-emu");
  const RunResult emu_streams = MustRun(streams, "cuda-det-emu");
  if (HasFailure()) return;
  ASSERT_FALSE(emu.fingerprints.empty());
  ASSERT_FALSE(fp32.fingerprints.empty());
  EXPECT_EQ(emu.fingerprints[0].sha256, fp32.fingerprints[0].sha256);
  EXPECT_NE(emu.fingerprints[0].sha256, emu_streams.fingerprints[0].sha256);
  EXPECT_LT(RelL2(emu.outputs, MustRun(spec, "ref64").outputs), 1e-5);
}

TEST(DeviceTrainerTest, BadSpecIsRefusedNamingTheField) {
  JobSpec spec = SmallJob();
  spec.model.layers[1].units = 0;
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("cuda-det-emu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("units"));
}

// This test host has no GPU (CI): a cuda profile is refused with the reason,
// never run some other way. On a GPU host the `gpu`-labelled tests cover it.
TEST(DeviceTrainerTest, CudaProfileWithoutAGpuIsRefusedWithTheReason) {
  const Profile p = *Profile::Parse("cuda");
  if (CheckCudaDevice(p).ok()) GTEST_SKIP() << "this host has a CUDA device";
  absl::StatusOr<RunResult> r = RunJob(SmallJob(), p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("no CUDA device"));
  EXPECT_EQ(Context::Check(p).code(), absl::StatusCode::kFailedPrecondition);
  // cuda-det-emu needs no GPU.
  EXPECT_TRUE(Context::Check(*Profile::Parse("cuda-det-emu")).ok());
}

}  // namespace
}  // namespace driftscope
