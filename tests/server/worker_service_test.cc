// WorkerService without gRPC: the FLOP estimate by hand, requests refused
// before any work (limits, bad specs naming the field), and the event
// sequence of a run.
#include "server/worker/worker_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "engine/env/environment.h"
#include "engine/job/job_memory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/status.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

JobSpec TinySpec() {
  JobSpec s = DefaultJobSpec();
  s.model.layers.resize(2);
  s.model.layers[0].units = 4;
  s.model.layers[0].return_sequences = true;
  s.model.layers[1] = LayerSpec{};
  s.model.layers[1].kind = LayerKind::kDense;
  s.model.layers[1].units = 2;
  s.model.layers[1].activation = Activation::kLinear;
  s.data.samples = 100;
  s.data.eval_samples = 10;
  s.training.epochs = 2;
  s.training.batch_size = 32;
  return s;
}

v1::RunRequest Request(const JobSpec& spec) {
  v1::RunRequest r;
  *r.mutable_spec() = JobSpecToProto(spec);
  r.mutable_capture()->set_outputs(true);
  r.mutable_capture()->set_losses(true);
  return r;
}

std::unique_ptr<WorkerService> Service(JobLimits limits = {}) {
  WorkerServiceOptions o;
  o.limits = limits;
  auto s = WorkerService::Create(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

TEST(WorkerServiceTest, FlopEstimateByHand) {
  // Per sample: LSTM 10 steps × 2·4·4·(1+4) = 1600, Dense 10 × 2·4·2 = 160.
  // Training 3 × 1760 × 100 samples × 2 epochs, eval 1760 × 10.
  EXPECT_DOUBLE_EQ(EstimateJobFlops(TinySpec(), 100, 10), 1073600.0);
  JobSpec s = TinySpec();
  s.model.layers[0].return_sequences = false;  // Dense then runs once
  s.training.capture_epoch_outputs = true;     // and 2 more evaluations
  EXPECT_DOUBLE_EQ(EstimateJobFlops(s, 100, 10),
                   3 * 1616.0 * 200 + 1616.0 * 10 * 3);
}

TEST(WorkerServiceTest, OversizeJobRefusedBeforeAnyWork) {
  JobLimits limits;
  limits.max_units = 3;
  auto service = Service(limits);
  int events = 0;
  absl::Status s = service->Run(
      Request(TinySpec()), [] { return false; },
      [&](const v1::RunEvent&) { return ++events, true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("--max_units=3"));
  EXPECT_THAT(s.message(), HasSubstr("layers[0]"));
  EXPECT_EQ(events, 0);

  // A job of ~1e20 FLOPs is refused at once, not after hours of training.
  JobSpec huge = TinySpec();
  huge.model.layers[0].units = 4096;
  huge.training.epochs = 100000;
  const auto t0 = std::chrono::steady_clock::now();
  s = Service()->Run(
      Request(huge), [] { return false; },
      [&](const v1::RunEvent&) { return ++events, true; });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("--max_flops"));
  EXPECT_EQ(events, 0);
}

TEST(WorkerServiceTest, InvalidSpecNamesTheFieldAndNothingRuns) {
  JobSpec spec = TinySpec();
  spec.model.layers[0].units = 0;
  int events = 0;
  absl::Status s = Service()->Run(
      Request(spec), [] { return false; },
      [&](const v1::RunEvent&) { return ++events, true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("spec.model.layers[0].lstm.units"));
  EXPECT_EQ(events, 0);

  v1::RunRequest bad_profile = Request(TinySpec());
  bad_profile.mutable_profile()->set_text("fp33");
  s = Service()->Run(
      bad_profile, [] { return false; },
      [&](const v1::RunEvent&) { return ++events, true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("profile.text"));
  EXPECT_EQ(events, 0);
}

// A request whose supplied tensors the engine would refuse used to be
// answered `accepted` and then `failed` (against worker.proto), with the
// CLI's flag names ("--x has timesteps ..."). Now it gets only the error,
// naming the request's field.
TEST(WorkerServiceTest, BadSuppliedTensorsRefusedBeforeAcceptedNamingTheField) {
  const JobSpec spec = TinySpec();  // T=10, F=1, output (N, 10, 2)
  auto filled = [](std::vector<int64_t> shape, float v) {
    NdArray a(DType::kFloat32, shape);
    for (int64_t i = 0; i < a.size(); ++i) a.data<float>()[i] = v;
    return TensorToProto(a);
  };
  struct Case {
    std::function<void(v1::RunRequest*)> edit;
    std::string message;
  } cases[] = {
      {[&](v1::RunRequest* r) {
         *r->mutable_x() = filled({5, 12, 1}, 0.5f);
         *r->mutable_y() = filled({5, 12, 2}, 0.5f);
       },
       "x has timesteps 12 but model.input.timesteps is 10"},
      {[&](v1::RunRequest* r) {
         *r->mutable_y() = filled({5, 10, 2}, 0.5f);
       },
       "x is required when y is given"},
      {[&](v1::RunRequest* r) {
         *r->mutable_x() = filled({5, 10, 1}, 0.5f);
         *r->mutable_y() = filled({5, 10, 3}, 0.5f);
       },
       "y has shape (5, 10, 3) but the model output for 5 samples is "
       "(5, 10, 2)"},
      {[&](v1::RunRequest* r) {
         *r->mutable_eval_x() = filled({3, 10, 2}, 0.5f);
       },
       "eval_x has features 2 but model.input.features is 1"},
      {[&](v1::RunRequest* r) {
         *r->add_init_weights() = filled({1, 16}, 0.1f);
       },
       "init_weights: expected 5 arrays"},
      {[&](v1::RunRequest* r) {
         *r->add_init_weights() = filled({1, 16}, 0.1f);
         *r->add_init_weights() = filled({4, 16}, 0.1f);
         *r->add_init_weights() = filled({16}, 0.1f);
         *r->add_init_weights() = filled({4, 2}, 0.1f);
         *r->add_init_weights() = filled({2}, std::nanf(""));
       },
       "init_weights: layer1_bias has a non-finite value (nan)"},
  };
  auto service = Service();
  for (const Case& c : cases) {
    v1::RunRequest request = Request(spec);
    c.edit(&request);
    int events = 0;
    const absl::Status s = service->Run(
        request, [] { return false; },
        [&](const v1::RunEvent&) { return ++events, true; });
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
    EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("--")));
    EXPECT_EQ(events, 0) << c.message;  // no `accepted`
  }
  EXPECT_EQ(service->active_runs(), 0);
}

TEST(WorkerServiceTest, EventsComeInTheDocumentedOrder) {
  auto service = Service();
  std::vector<v1::RunEvent> events;
  v1::RunRequest request = Request(TinySpec());
  request.set_run_id("r1");
  absl::Status s = service->Run(
      request, [] { return false; },
      [&](const v1::RunEvent& e) { return events.push_back(e), true; });
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_GE(events.size(), 3u);
  EXPECT_TRUE(events.front().has_accepted());
  EXPECT_EQ(events.front().accepted().total_steps(), 8);  // 2 × ceil(100/32)
  EXPECT_TRUE(events.back().has_done());
  int progress = 0;
  std::vector<int64_t> fingerprint_steps;
  for (const auto& e : events) {
    EXPECT_EQ(e.run_id(), "r1");
    progress += e.has_progress();
    for (const v1::Fingerprint& f : e.fingerprints().fingerprints()) {
      fingerprint_steps.push_back(f.step());
    }
  }
  EXPECT_EQ(progress, 2);  // once per epoch
  // Initial + one per step, in step order, in one batch.
  EXPECT_THAT(fingerprint_steps,
              ::testing::ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_EQ(
      std::count_if(events.begin(), events.end(),
                    [](const v1::RunEvent& e) { return e.has_fingerprints(); }),
      1);
  const v1::RunSummary& summary = events.back().done().summary();
  EXPECT_EQ(summary.steps(), 8);
  ASSERT_EQ(summary.tensors_size(), 2);  // outputs and losses were asked for
  EXPECT_EQ(summary.tensors(0).name(), "outputs");
  EXPECT_EQ(summary.spec_digest(), SpecDigest(TinySpec()));
  EXPECT_FALSE(summary.has_device());  // the CPU engine ran it

  // The same run_id again is refused.
  s = service->Run(
      request, [] { return false; }, [](const v1::RunEvent&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
}

// A device profile's summary says which backend ran it and its math
// (cuda-det-emu: the deterministic GPU path emulated on this CPU, no GPU).
TEST(WorkerServiceTest, DeviceRunSummarySaysWhatRan) {
  v1::RunRequest request = Request(TinySpec());
  request.set_run_id("emu");
  request.mutable_profile()->set_text("cuda-det-emu");
  std::optional<v1::RunSummary> summary;
  absl::Status s = Service()->Run(
      request, [] { return false; },
      [&](const v1::RunEvent& e) {
        if (e.has_done()) summary = e.done().summary();
        return true;
      });
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->profile(), "fp32,device=cuda-emu");
  ASSERT_TRUE(summary->has_device());
  EXPECT_EQ(summary->device().backend(), "cuda-emu");
  EXPECT_EQ(summary->device().math_mode(), "ordered-fma");
  EXPECT_EQ(summary->device().gpu_name(), "none (host emulation)");
  EXPECT_EQ(summary->device().cudnn_version(), 0);
}

TEST(WorkerServiceTest, ManyFingerprintsTravelInOrderedBatches) {
  JobSpec spec = TinySpec();
  spec.training.epochs = 300;  // 1200 steps: 1201 fingerprints
  std::vector<int> batch_sizes;
  int64_t expected_step = 0;
  absl::Status s = Service()->Run(
      Request(spec), [] { return false; },
      [&](const v1::RunEvent& e) {
        if (!e.has_fingerprints()) return true;
        batch_sizes.push_back(e.fingerprints().fingerprints_size());
        for (const v1::Fingerprint& f : e.fingerprints().fingerprints()) {
          EXPECT_EQ(f.step(), expected_step++);
          EXPECT_EQ(f.sha256().size(), 64u);
        }
        return true;
      });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(batch_sizes, ::testing::ElementsAre(1024, 177));
}

TEST(WorkerServiceTest, CancelStopsTheRunBeforeTheNextStep) {
  // The client's cancel becomes visible while step 3 reports progress: no
  // fourth step runs, and the stream ends with `failed` CANCELLED.
  JobSpec spec = TinySpec();
  spec.training.epochs = 50;  // 200 steps if nothing stopped it
  v1::RunRequest request = Request(spec);
  request.mutable_capture()->set_progress_every_steps(1);
  int64_t last_step = 0;
  std::vector<v1::RunEvent> events;
  absl::Status s = Service()->Run(
      request, [&] { return last_step >= 3; },
      [&](const v1::RunEvent& e) {
        if (e.has_progress()) last_step = e.progress().step();
        events.push_back(e);
        return true;
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(last_step, 3);
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_failed());
  EXPECT_EQ(events.back().failed().code(),
            static_cast<int>(absl::StatusCode::kCancelled));
}

TEST(WorkerServiceTest, DrainingRefusesNewRunsAndWaitsForRunning) {
  WorkerServiceOptions o;
  o.max_concurrent_runs = 2;
  auto service = *WorkerService::Create(o);
  EXPECT_TRUE(service->WaitUntilIdle(absl::Now()));
  JobSpec long_spec = TinySpec();
  long_spec.training.epochs = 100000;
  v1::RunRequest long_request = Request(long_spec);
  long_request.mutable_capture()->set_progress_every_steps(1);
  std::atomic<bool> stop{false}, started{false};
  absl::Status long_status;
  std::thread running([&] {
    long_status = service->Run(
        long_request, [&] { return stop.load(); },
        [&](const v1::RunEvent& e) {
          if (e.has_progress()) started = true;
          return true;
        });
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  service->StopAccepting();
  int events = 0;
  absl::Status s = service->Run(
      Request(TinySpec()), [] { return false; },
      [&](const v1::RunEvent&) { return ++events, true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("another worker"));
  EXPECT_EQ(events, 0);
  // The run in progress (minutes of training) keeps the service busy...
  EXPECT_FALSE(service->WaitUntilIdle(absl::Now() + absl::Milliseconds(20)));
  // ... until it stops.
  stop = true;
  EXPECT_TRUE(service->WaitUntilIdle(absl::Now() + absl::Seconds(30)));
  running.join();
  EXPECT_EQ(long_status.code(), absl::StatusCode::kCancelled);
}

TEST(WorkerServiceTest, DescribeListsOnlyRunnablePresets) {
  v1::DescribeResponse d = Service()->Describe();
  EXPECT_THAT(d.presets(), ::testing::Contains("ref64"));
  EXPECT_THAT(d.presets(), ::testing::Contains("fp32"));
  EXPECT_FALSE(d.environment().cpu_model().empty());
  EXPECT_EQ(d.max_concurrent_runs(), 1);
}

TEST(WorkerServiceTest, DeviceFlagMustNameAGpuOfThisHost) {
  CudaInfo none;
  none.error = "no CUDA-capable device is detected";
  EXPECT_TRUE(CheckCudaDeviceFlag(none, -1).ok());  // no --device: fine
  absl::Status s = CheckCudaDeviceFlag(none, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--device=0: this host has no usable "
                                     "GPU (no CUDA-capable device"));
  CudaInfo two;
  two.devices.resize(2);
  two.devices[0].name = "NVIDIA A100-SXM4-80GB";
  two.devices[1].name = "NVIDIA L4";
  EXPECT_TRUE(CheckCudaDeviceFlag(two, 1).ok());
  s = CheckCudaDeviceFlag(two, 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              HasSubstr("--device=2: this host has 2 GPU(s) (0: NVIDIA "
                        "A100-SXM4-80GB, 1: NVIDIA L4)"));
}

// Without a GPU (CI): the cuda presets are not offered, a cuda profile is
// refused with the reason before any work, and --device cannot be set.
TEST(WorkerServiceTest, CudaProfilesAreRefusedWithTheReasonWithoutAGpu) {
  if (!ProbeEnvironment().cuda.devices.empty())
    GTEST_SKIP() << "this host has a GPU";
  std::unique_ptr<WorkerService> service = Service();
  const v1::DescribeResponse d = service->Describe();
  for (const std::string& gpu : Profile::GpuPresetNames()) {
    EXPECT_THAT(d.presets(), ::testing::Not(::testing::Contains(gpu)));
  }
  EXPECT_THAT(d.presets(), ::testing::Contains("cuda-det-emu"));
  for (const char* profile : {"cuda-cudnn", "fp32,device=cuda:1"}) {
    SCOPED_TRACE(profile);
    v1::RunRequest r = Request(TinySpec());
    r.mutable_profile()->set_text(profile);
    int events = 0;
    const absl::Status s = service->Run(
        r, [] { return false; },
        [&](const v1::RunEvent&) { return ++events, true; });
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr("no CUDA device"));
    EXPECT_THAT(s.message(), HasSubstr(profile));
    EXPECT_EQ(events, 0);  // refused before "accepted"
  }
  WorkerServiceOptions o;
  o.cuda_device = 0;
  const auto refused = WorkerService::Create(o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("--device=0"));
}

JobSpec IssueSpecWithTerabytesOfEvalOutputs() {
  JobSpec s = TinySpec();
  s.model.timesteps = 1000;
  s.model.layers.resize(1);
  s.model.layers[0] = LayerSpec{};
  s.model.layers[0].kind = LayerKind::kDense;
  s.model.layers[0].units = 4096;
  s.model.layers[0].activation = Activation::kLinear;
  s.data.eval_samples = 100000;
  return s;
}

// Before the fix the worker started this run and died of bad_alloc (checked:
// the run was accepted). Now it is refused before any event, naming the
// estimate and the limit.
TEST(WorkerServiceTest, JobAboveTheMemoryLimitRefusedBeforeAnyEvent) {
  WorkerServiceOptions o;
  o.max_memory_bytes = int64_t{8} << 30;
  auto service = WorkerService::Create(o);
  ASSERT_TRUE(service.ok()) << service.status();
  int events = 0;
  absl::Status s = (*service)->Run(
      Request(IssueSpecWithTerabytesOfEvalOutputs()), [] { return false; },
      [&](const v1::RunEvent&) { return ++events, true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("TiB of memory"));
  EXPECT_THAT(s.message(), HasSubstr("memory limit of 8.0 GiB"));
  EXPECT_EQ(events, 0);
  EXPECT_EQ((*service)->Describe().max_memory_bytes(), int64_t{8} << 30);
}

// Two runs that each fit but not together: the second is told the worker
// is busy (to be retried) instead of both running out of memory.
TEST(WorkerServiceTest, RunThatDoesNotFitBesideTheRunningOneIsBusy) {
  const JobMemory one =
      EstimateJobMemory(TinySpec(), *Profile::Parse("fp32"),
                        TinySpec().data.samples, TinySpec().data.eval_samples);
  WorkerServiceOptions o;
  o.max_concurrent_runs = 2;
  o.max_memory_bytes = one.total() * 3 / 2;
  auto created = WorkerService::Create(o);
  ASSERT_TRUE(created.ok()) << created.status();
  WorkerService& service = **created;
  std::atomic<bool> accepted{false}, release{false};
  std::thread first([&] {
    v1::RunRequest r = Request(TinySpec());
    r.set_run_id("first");
    absl::Status s = service.Run(
        r, [] { return false; },
        [&](const v1::RunEvent& e) {
          if (e.has_accepted()) {
            accepted = true;
            while (!release) std::this_thread::yield();
          }
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
  });
  while (!accepted) std::this_thread::yield();
  v1::RunRequest second = Request(TinySpec());
  second.set_run_id("second");
  absl::Status s = service.Run(
      second, [] { return false; }, [](const v1::RunEvent&) { return true; });
  release = true;
  first.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("worker busy"));
  EXPECT_EQ(ErrorReason(s), kReasonWorkerBusy);
  // Once the first is done the same run goes through.
  second.set_run_id("third");
  EXPECT_TRUE(service
                  .Run(
                      second, [] { return false; },
                      [](const v1::RunEvent&) { return true; })
                  .ok());
}

}  // namespace
}  // namespace driftscope
