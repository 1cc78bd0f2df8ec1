// PlanJob: a submission becomes runs (worker × profile × repeat, the
// reference first) only when every part of it is valid.
#include "server/coordinator/job_plan.h"

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/ndarray.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/tensor_stream.h"
#include "tests/server/coordinator/coordinator_test_util.h"

namespace driftscope::coordinator {
namespace {

using ::testing::HasSubstr;

WorkerView Worker(const std::string& name, v1::WorkerState state,
                  std::vector<std::string> presets,
                  std::map<std::string, std::string> labels = {}) {
  WorkerView w;
  w.info.set_name(name);
  w.info.set_address(name + ":7070");
  w.info.set_default_profile("fp32,canonical");
  for (const std::string& p : presets) w.info.add_presets(p);
  w.info.set_max_concurrent_runs(1);
  for (const auto& [k, v] : labels) (*w.info.mutable_labels())[k] = v;
  w.state = state;
  return w;
}

class JobPlanTest : public ::testing::Test {
 protected:
  JobPlanTest() {
    workers_.push_back(Worker("a", v1::WORKER_AVAILABLE, {"ref64", "fp32"},
                              {{"pool", "blue"}}));
    workers_.push_back(Worker("b", v1::WORKER_AVAILABLE, {"fp32"}));
    workers_.push_back(Worker("c", v1::WORKER_UNAVAILABLE, {"fp32"}));
    *request_.mutable_spec() = JobSpecToProto(testing::TinySpec());
  }

  absl::StatusOr<PlannedJob> Plan() {
    return PlanJob(request_, workers_, SubmitLimits(), "job-1", 1234);
  }

  std::vector<WorkerView> workers_;
  v1::SubmitJobRequest request_;
};

TEST_F(JobPlanTest, AllAvailableWorkersWithTheirDefaultProfiles) {
  auto plan = Plan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->runs.size(), 2u);  // c is unavailable
  EXPECT_EQ(plan->runs[0].worker, "a");
  EXPECT_EQ(plan->runs[0].profile, "fp32,canonical");
  EXPECT_EQ(plan->runs[1].worker, "b");
  EXPECT_EQ(plan->runs[0].run_id, "job-1-r0");
  EXPECT_EQ(plan->job.spec_digest, SpecDigest(testing::TinySpec()));
  EXPECT_EQ(plan->job.created_unix_ms, 1234);
}

TEST_F(JobPlanTest, NamedWorkersProfilesRepeatsAndReferenceFirst) {
  v1::Placement* p = request_.mutable_placement();
  p->add_workers("b");
  p->add_workers("a");
  p->add_profiles()->set_text("fp32");
  p->set_repeats(2);
  p->set_add_reference(true);
  auto plan = PlanJob(request_, workers_, SubmitLimits(), "job-1", 0);
  // b cannot run ref64, and the reference goes to the first named worker.
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(), HasSubstr("placement.add_reference"));

  p->clear_workers();
  p->add_workers("a");
  p->add_workers("b");
  plan = Plan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->runs.size(), 5u);
  EXPECT_EQ(plan->runs[0].worker, "a");
  EXPECT_EQ(plan->runs[0].profile, "ref64");
  EXPECT_EQ(plan->runs[1].profile, "fp32");
  EXPECT_EQ(plan->runs[1].repeat, 0);
  EXPECT_EQ(plan->runs[2].repeat, 1);
  EXPECT_EQ(plan->runs[3].worker, "b");
}

TEST_F(JobPlanTest, LabelsSelectWorkers) {
  (*request_.mutable_placement()->mutable_labels())["pool"] = "blue";
  auto plan = Plan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->runs.size(), 1u);
  EXPECT_EQ(plan->runs[0].worker, "a");
  request_.mutable_placement()->add_workers("b");
  EXPECT_THAT(Plan().status().message(), HasSubstr("placement.workers[0]"));
}

TEST_F(JobPlanTest, UnavailableNamedWorkerIsAcceptedUnknownIsNot) {
  request_.mutable_placement()->add_workers("c");
  EXPECT_TRUE(Plan().ok());
  request_.mutable_placement()->add_workers("zz");
  EXPECT_THAT(Plan().status().message(),
              HasSubstr("placement.workers[1]: no worker named \"zz\""));
  request_.mutable_placement()->set_workers(1, "c");
  EXPECT_THAT(Plan().status().message(), HasSubstr("listed twice"));
}

TEST_F(JobPlanTest, PresetAWorkerDoesNotOfferIsRefused) {
  request_.mutable_placement()->add_profiles()->set_text("ref64");
  EXPECT_THAT(Plan().status().message(),
              HasSubstr("worker \"b\" cannot run preset \"ref64\""));
}

TEST_F(JobPlanTest, TooManyRunsAndNoWorkers) {
  request_.mutable_placement()->set_repeats(100);
  SubmitLimits limits;
  limits.max_runs_per_job = 150;
  auto plan = PlanJob(request_, workers_, limits, "j", 0);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(plan.status().message(), HasSubstr("--max_runs_per_job=150"));
  request_.mutable_placement()->set_repeats(1);
  plan = PlanJob(request_, {}, SubmitLimits(), "j", 0);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
}

v1::Tensor Zeros(std::vector<int64_t> shape) {
  return TensorToProto(NdArray(DType::kFloat32, std::move(shape)));
}

// Regression: a weight of the wrong shape was accepted and failed every run
// at the worker; now the submission is refused naming the weight.
TEST_F(JobPlanTest, InitWeightsMustBeTheModelsKerasWeights) {
  // TinySpec: LSTM(8, seq) -> LSTM(4, seq) on 1 feature.
  const std::vector<std::vector<int64_t>> shapes = {{1, 32}, {8, 32}, {32},
                                                    {8, 16}, {4, 16}, {16}};
  for (const auto& shape : shapes) *request_.add_init_weights() = Zeros(shape);
  absl::StatusOr<PlannedJob> ok = Plan();
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->job.init_weights.size(), shapes.size());

  *request_.mutable_init_weights(1) = Zeros({32, 8});  // transposed
  absl::StatusOr<PlannedJob> transposed = Plan();
  EXPECT_EQ(transposed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(transposed.status().message(),
              HasSubstr("init_weights[1] (layer0_recurrent_kernel): shape "
                        "(32, 8), expected (8, 32)"));

  request_.mutable_init_weights()->RemoveLast();
  *request_.mutable_init_weights(1) = Zeros({8, 32});
  absl::StatusOr<PlannedJob> short_one = Plan();
  EXPECT_EQ(short_one.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(short_one.status().message(),
              HasSubstr("init_weights: the spec's model has 6 weights "
                        "(layer0_kernel, layer0_recurrent_kernel, layer0_bias, "
                        "layer1_kernel, layer1_recurrent_kernel, layer1_bias), "
                        "got 5"));
}

TEST_F(JobPlanTest, GpuProfilesGoOnlyToTheWorkersThatOfferThem) {
  workers_.push_back(Worker("g", v1::WORKER_AVAILABLE,
                            {"fp32", "cuda", "cuda-tf32", "cuda-cudnn"}));
  v1::Placement* p = request_.mutable_placement();
  p->add_profiles()->set_text("fp32");
  p->add_profiles()->set_text("cuda-cudnn");
  p->add_profiles()->set_text("fp32,device=cuda:1");
  auto plan = Plan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> runs;
  for (const RunRow& r : plan->runs) runs.push_back(r.worker + " " + r.profile);
  EXPECT_THAT(
      runs, ::testing::ElementsAre("a fp32", "b fp32", "g fp32", "g cuda-cudnn",
                                   "g fp32,device=cuda:1"));

  // Named, a worker without the GPU preset is refused, as for any preset.
  p->add_workers("b");
  EXPECT_THAT(Plan().status().message(),
              HasSubstr("worker \"b\" cannot run preset \"cuda-cudnn\""));
  p->clear_workers();

  // No GPU worker at all: refused, naming the profile.
  workers_.pop_back();
  plan = Plan();
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(),
              HasSubstr("placement.profiles[1]: \"cuda-cudnn\" runs on a "
                        "GPU and no available worker offers it (workers: a, "
                        "b)"));
}

TEST(CanRunProfileTest, GpuKnobStringsNeedAWorkerOfferingGpuPresets) {
  v1::WorkerInfo cpu;
  cpu.add_presets("fp32");
  cpu.add_presets("cuda-det-emu");
  v1::WorkerInfo gpu = cpu;
  gpu.add_presets("cuda");
  EXPECT_FALSE(CanRunProfile(cpu, "fp32,device=cuda"));
  EXPECT_FALSE(CanRunProfile(cpu, "cuda"));
  EXPECT_TRUE(CanRunProfile(gpu, "fp32,device=cuda:0,rnn=cudnn"));
  // The emulation runs on any CPU.
  EXPECT_TRUE(CanRunProfile(cpu, "fp32,device=cuda-emu"));
}

TEST(CanRunProfileTest, PresetsMustBeOfferedKnobStringsAreLeftToTheWorker) {
  v1::WorkerInfo w;
  w.add_presets("fp32");
  EXPECT_TRUE(CanRunProfile(w, "fp32"));
  EXPECT_FALSE(CanRunProfile(w, "ref64"));
  EXPECT_TRUE(CanRunProfile(w, "fp32,threads=2"));
  EXPECT_TRUE(CanRunProfile(w, ""));
}

// The spec: Dense(4096) over T=1000 with 100000 eval samples (1.6 TB
// of eval outputs) passed every check and crashed each worker it was sent
// to. Checked before this fix: PlanJob accepted it.
TEST_F(JobPlanTest, JobAboveEveryWorkersMemoryIsRefusedAtSubmission) {
  JobSpec spec = testing::TinySpec();
  spec.model.timesteps = 1000;
  spec.model.layers.resize(1);
  spec.model.layers[0] = LayerSpec{};
  spec.model.layers[0].kind = LayerKind::kDense;
  spec.model.layers[0].units = 4096;
  spec.model.layers[0].activation = Activation::kLinear;
  spec.data.eval_samples = 100000;
  *request_.mutable_spec() = JobSpecToProto(spec);
  for (WorkerView& w : workers_) w.info.set_max_memory_bytes(int64_t{64} << 30);
  auto plan = Plan();
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(plan.status().message(), HasSubstr("TiB of memory"));
  EXPECT_THAT(plan.status().message(),
              HasSubstr("the memory limit of worker \"a\""));
  EXPECT_THAT(plan.status().message(), HasSubstr("64.0 GiB"));

  // The same job within the limit of every worker plans as before.
  spec.data.eval_samples = 10;
  *request_.mutable_spec() = JobSpecToProto(spec);
  EXPECT_TRUE(Plan().ok()) << Plan().status();
  // And a worker that advertises no limit (an older one) is not judged.
  for (WorkerView& w : workers_) w.info.set_max_memory_bytes(0);
  spec.data.eval_samples = 100000;
  *request_.mutable_spec() = JobSpecToProto(spec);
  EXPECT_TRUE(Plan().ok()) << Plan().status();
}

// The issue: NaN initial weights passed SubmitJob and failed (or trained on
// NaN) at every worker. Accepted before this fix.
TEST_F(JobPlanTest, NonFiniteInitWeightsAreRefusedAtSubmission) {
  const std::vector<std::vector<int64_t>> shapes = {{1, 32}, {8, 32}, {32},
                                                    {8, 16}, {4, 16}, {16}};
  for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    request_.clear_init_weights();
    for (const auto& shape : shapes) {
      *request_.add_init_weights() = Zeros(shape);
    }
    std::vector<float> values(4 * 16, 0.f);
    values[5] = static_cast<float>(bad);
    *request_.mutable_init_weights(4) =
        TensorToProto(NdArray::From<float>({4, 16}, values));
    absl::StatusOr<PlannedJob> plan = Plan();
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(plan.status().message(),
                HasSubstr("init_weights[4] (layer1_recurrent_kernel) has a "
                          "non-finite value"));
    EXPECT_THAT(plan.status().message(), HasSubstr("flat index 5"));
  }
}

}  // namespace
}  // namespace driftscope::coordinator
