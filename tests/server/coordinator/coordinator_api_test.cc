// The Coordinator API of a real driftscope-coordinator process: idempotent
// submission, bad requests refused with the field named and nothing stored,
// listing with pages, bearer tokens and TLS on the listener.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/ndarray.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/tensor_stream.h"
#include "tests/server/coordinator/coordinator_test_util.h"
#include "tests/server/coordinator/store_test_util.h"
#include "tests/server/worker_process.h"

namespace driftscope {
namespace {

using ::driftscope::testing::CoordinatorProcess;
using ::driftscope::testing::CoordinatorStub;
using ::driftscope::testing::Ctx;
using ::driftscope::testing::StoreDir;
using ::driftscope::testing::TinySpec;
using ::driftscope::testing::WaitForJob;
using ::driftscope::testing::WorkerProcess;
using ::testing::HasSubstr;

class CoordinatorApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = WorkerProcess::Start({"--insecure"});
    ASSERT_TRUE(w.ok()) << w.status();
    worker_ = *std::move(w);
  }

  std::unique_ptr<CoordinatorProcess> Start(std::vector<std::string> flags) {
    flags.push_back("--worker_insecure");
    flags.push_back("--store_dir=" + dir_.path());
    flags.push_back("--workers=" + worker_->address());
    auto c = CoordinatorProcess::Start(std::move(flags));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  v1::SubmitJobRequest Request(const JobSpec& spec) {
    v1::SubmitJobRequest r;
    *r.mutable_spec() = JobSpecToProto(spec);
    return r;
  }

  int JobCount(v1::Coordinator::Stub& stub) {
    v1::ListJobsResponse list;
    EXPECT_TRUE(stub.ListJobs(Ctx().get(), v1::ListJobsRequest(), &list).ok());
    return list.jobs_size();
  }

  std::unique_ptr<WorkerProcess> worker_;
  StoreDir dir_;
};

TEST_F(CoordinatorApiTest, SameRequestIdSameJobDifferentSpecAlreadyExists) {
  auto c = Start({"--insecure"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::SubmitJobRequest r = Request(TinySpec());
  r.set_client_request_id("retry-me");
  v1::Job first, second;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), r, &first).ok());
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), r, &second).ok());
  EXPECT_EQ(second.job_id(), first.job_id());
  EXPECT_EQ(second.runs_size(), first.runs_size());

  JobSpec other = TinySpec();
  other.seed = 7;
  v1::SubmitJobRequest changed = Request(other);
  changed.set_client_request_id("retry-me");
  v1::Job third;
  const grpc::Status s = stub->SubmitJob(Ctx().get(), changed, &third);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr(first.job_id()));
  EXPECT_EQ(JobCount(*stub), 1);
  EXPECT_EQ(WaitForJob(*stub, first.job_id()).state(), v1::JOB_SUCCEEDED);
}

// The issue: the idempotency check compared only the spec, so the same id
// with other repeats or other init weights silently returned the old job.
// Returned the old job before this fix.
TEST_F(CoordinatorApiTest, SameRequestIdOtherRepeatsOrWeightsAlreadyExists) {
  auto c = Start({"--insecure"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::SubmitJobRequest r = Request(TinySpec());
  r.set_client_request_id("whole-request");
  v1::Job first;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), r, &first).ok());

  v1::SubmitJobRequest repeats = r;
  repeats.mutable_placement()->set_repeats(3);
  v1::Job again;
  grpc::Status s = stub->SubmitJob(Ctx().get(), repeats, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("a different placement"));

  v1::SubmitJobRequest weights = r;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {1, 32}, {8, 32}, {32}, {8, 16}, {4, 16}, {16}}) {
    *weights.add_init_weights() =
        TensorToProto(NdArray(DType::kFloat32, shape));
  }
  s = stub->SubmitJob(Ctx().get(), weights, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("a different init_weights"));

  v1::SubmitJobRequest described = r;
  described.set_description("another job");
  s = stub->SubmitJob(Ctx().get(), described, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // The identical request is still a retry.
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), r, &again).ok());
  EXPECT_EQ(again.job_id(), first.job_id());
  EXPECT_EQ(JobCount(*stub), 1);
}

// Regression: a retry was planned against the current workers before the
// store saw its request id, so a retry after a coordinator restart (its
// registered workers not back yet) failed instead of returning the job.
TEST_F(CoordinatorApiTest, RetryFindsItsJobAfterTheNamedWorkerVanished) {
  const std::vector<std::string> flags = {"--insecure", "--worker_insecure",
                                          "--store_dir=" + dir_.path()};
  auto c = CoordinatorProcess::Start(flags);
  ASSERT_TRUE(c.ok()) << c.status();
  auto stub = CoordinatorStub((*c)->address());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_secret("a-secret-of-16-chars-or-more");
  reg.mutable_worker()->set_name("registered-1");
  reg.mutable_worker()->set_address(worker_->address());
  reg.mutable_worker()->set_default_profile("fp32");
  reg.mutable_worker()->set_max_concurrent_runs(1);
  v1::RegisterWorkerResponse lease;
  ASSERT_TRUE(stub->RegisterWorker(Ctx().get(), reg, &lease).ok());
  v1::SubmitJobRequest r = Request(TinySpec());
  r.set_client_request_id("ci-build-77");
  r.mutable_placement()->add_workers("registered-1");
  v1::Job first;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), r, &first).ok());

  // The answer was lost; the coordinator restarts and forgets the lease.
  const std::string address = (*c)->address();
  (*c)->Kill9();
  std::vector<std::string> again = flags;
  again.push_back("--listen=" + address);
  auto restarted = CoordinatorProcess::Start(again);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  stub = CoordinatorStub(address);
  v1::SubmitJobRequest fresh = Request(TinySpec());
  fresh.mutable_placement()->add_workers("registered-2");
  v1::Job plan_check;
  EXPECT_FALSE(stub->SubmitJob(Ctx().get(), fresh, &plan_check).ok())
      << "an unknown worker must still be refused for a new job";
  v1::Job second;
  const grpc::Status s = stub->SubmitJob(Ctx().get(), r, &second);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(second.job_id(), first.job_id());
  EXPECT_EQ(second.spec_digest(), first.spec_digest());
  ASSERT_EQ(second.runs_size(), 1);
  EXPECT_EQ(second.runs(0).worker(), "registered-1");

  JobSpec other = TinySpec();
  other.seed = 8;
  v1::SubmitJobRequest changed = Request(other);
  changed.set_client_request_id("ci-build-77");
  v1::Job third;
  const grpc::Status refused = stub->SubmitJob(Ctx().get(), changed, &third);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(refused.error_message(), HasSubstr(first.job_id()));
  EXPECT_EQ(JobCount(*stub), 1);
}

TEST_F(CoordinatorApiTest, BadRequestsNameTheFieldAndStoreNothing) {
  auto c = Start({"--insecure", "--max_epochs=10", "--max_repeats=4"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  struct Case {
    v1::SubmitJobRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  {
    JobSpec s = TinySpec();
    s.model.layers[1].units = 0;
    cases.push_back({Request(s), grpc::StatusCode::INVALID_ARGUMENT,
                     "spec.model.layers[1].lstm.units"});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    r.mutable_spec()->mutable_model()->mutable_layers(0)->clear_kind();
    cases.push_back(
        {r, grpc::StatusCode::INVALID_ARGUMENT, "spec.model.layers[0]"});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    r.mutable_spec()->mutable_data()->mutable_supplied()->set_x("x.npy");
    cases.push_back({r, grpc::StatusCode::INVALID_ARGUMENT, "spec.data"});
  }
  {
    JobSpec s = TinySpec();
    s.training.epochs = 11;
    cases.push_back(
        {Request(s), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max_epochs=10"});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    r.mutable_placement()->set_repeats(5);
    cases.push_back(
        {r, grpc::StatusCode::INVALID_ARGUMENT, "placement.repeats"});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    r.mutable_placement()->add_workers("nowhere:1");
    cases.push_back({r, grpc::StatusCode::INVALID_ARGUMENT,
                     "placement.workers[0]: no worker named \"nowhere:1\""});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    r.mutable_placement()->add_profiles()->set_text("fp33");
    cases.push_back(
        {r, grpc::StatusCode::INVALID_ARGUMENT, "placement.profiles[0].text"});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    (*r.mutable_placement()->mutable_labels())["gpu"] = "h100";
    cases.push_back({r, grpc::StatusCode::FAILED_PRECONDITION,
                     "no available worker matches placement.labels"});
  }
  {
    v1::SubmitJobRequest r = Request(TinySpec());
    v1::Tensor* w = r.add_init_weights();
    w->set_dtype(v1::FLOAT32);
    w->add_shape(3);
    w->set_data("12");  // 2 bytes for 3 floats
    cases.push_back({r, grpc::StatusCode::INVALID_ARGUMENT, "init_weights[0]"});
  }
  for (const Case& k : cases) {
    v1::Job job;
    const grpc::Status s = stub->SubmitJob(Ctx().get(), k.request, &job);
    EXPECT_EQ(s.error_code(), k.code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(k.message));
  }
  EXPECT_EQ(JobCount(*stub), 0);

  v1::GetJobRequest get;
  get.set_job_id("job-unknown");
  v1::Job job;
  EXPECT_EQ(stub->GetJob(Ctx().get(), get, &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ListJobsRequest list;
  list.set_page_token("not a token");
  v1::ListJobsResponse page;
  EXPECT_EQ(stub->ListJobs(Ctx().get(), list, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // The daemon keeps serving.
  v1::Job ok;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), Request(TinySpec()), &ok).ok());
}

// A blob gone bad on the coordinator's disk used to be reported to the
// client as "blob /ABSOLUTE/STORE/blobs/ab/cd... is corrupt": the server's
// file system in a client's error. The operator's log keeps the path.
TEST_F(CoordinatorApiTest, StoreErrorsShowClientsNoServerPaths) {
  auto c = Start({"--insecure"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::Job job;
  ASSERT_TRUE(stub->SubmitJob(Ctx().get(), Request(TinySpec()), &job).ok());
  job = WaitForJob(*stub, job.job_id());
  ASSERT_EQ(job.state(), v1::JOB_SUCCEEDED);
  // Every stored tensor, one byte changed (same size).
  int corrupted = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(dir_.path() + "/blobs")) {
    if (!entry.is_regular_file() ||
        entry.path().parent_path().filename() == "tmp") {
      continue;
    }
    std::fstream f(entry.path(),
                   std::ios::in | std::ios::out | std::ios::binary);
    char b = 0;
    f.read(&b, 1);
    f.seekp(0);
    f.put(static_cast<char>(b ^ 1));
    ++corrupted;
  }
  ASSERT_GT(corrupted, 0);

  v1::FetchResultRequest fetch;
  fetch.set_job_id(job.job_id());
  fetch.set_run_id(job.runs(0).run_id());
  auto ctx = Ctx();
  auto reader = stub->FetchResult(ctx.get(), fetch);
  v1::TensorChunk chunk;
  while (reader->Read(&chunk)) {
  }
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("corrupt"));
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr(dir_.path())));
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("/blobs/")));
}

TEST_F(CoordinatorApiTest, ListJobsNewestFirstInPages) {
  auto c = Start({"--insecure"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::Job job;
    v1::SubmitJobRequest r = Request(TinySpec());
    r.set_description(absl::StrCat("job ", i));
    ASSERT_TRUE(stub->SubmitJob(Ctx().get(), r, &job).ok());
    ids.push_back(job.job_id());
  }
  std::vector<std::string> listed;
  v1::ListJobsRequest req;
  req.set_page_size(2);
  for (int pages = 0; pages < 10; ++pages) {
    v1::ListJobsResponse page;
    ASSERT_TRUE(stub->ListJobs(Ctx().get(), req, &page).ok());
    EXPECT_LE(page.jobs_size(), 2);
    for (const v1::Job& j : page.jobs()) {
      listed.push_back(j.job_id());
      EXPECT_FALSE(j.has_spec());  // GetJob has it
      EXPECT_EQ(j.runs_size(), 1);
    }
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  ASSERT_EQ(listed.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(listed[i], ids[ids.size() - 1 - i]);
  }
  req.set_page_size(1001);
  v1::ListJobsResponse page;
  EXPECT_EQ(stub->ListJobs(Ctx().get(), req, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CoordinatorApiTest, BearerTokenRequiredOnEveryCall) {
  auto c = Start({"--insecure", "--auth_token=s3cret"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::ListWorkersResponse workers;
  EXPECT_EQ(stub->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &workers)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::Job job;
  EXPECT_EQ(stub->SubmitJob(Ctx(std::chrono::seconds(30), "wrong").get(),
                            Request(TinySpec()), &job)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::WatchJobRequest watch;
  watch.set_job_id("job-x");
  auto ctx = Ctx();
  auto reader = stub->WatchJob(ctx.get(), watch);
  v1::JobEvent e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(stub->ListWorkers(Ctx(std::chrono::seconds(30), "s3cret").get(),
                                v1::ListWorkersRequest(), &workers)
                  .ok());
  EXPECT_EQ(workers.workers_size(), 1);
}

// The issue: RegisterWorker took the ordinary client token, so any client
// could become a worker (forged labels, runs captured, the coordinator's
// worker token received). Roles now have their own credentials; before this
// fix the client-token registration below succeeded.
TEST_F(CoordinatorApiTest, ClientAndWorkerTokensOpenOnlyTheirOwnMethods) {
  auto c = Start({"--insecure", "--auth_token=client-tok",
                  "--registration_token=register-tok"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_secret("a-secret-of-16-chars-or-more");
  reg.mutable_worker()->set_name("self-registered");
  reg.mutable_worker()->set_address(worker_->address());
  reg.mutable_worker()->set_default_profile("fp32");
  reg.mutable_worker()->set_max_concurrent_runs(1);
  (*reg.mutable_worker()->mutable_labels())["gpu"] = "a100";
  v1::RegisterWorkerResponse lease;
  grpc::Status s = stub->RegisterWorker(
      Ctx(std::chrono::seconds(30), "client-tok").get(), reg, &lease);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("registration token"));

  ASSERT_TRUE(
      stub->RegisterWorker(Ctx(std::chrono::seconds(30), "register-tok").get(),
                           reg, &lease)
          .ok());
  v1::HeartbeatRequest hb;
  hb.set_lease_id(lease.lease_id());
  v1::HeartbeatResponse beat;
  EXPECT_EQ(stub->Heartbeat(Ctx(std::chrono::seconds(30), "client-tok").get(),
                            hb, &beat)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(
      stub->Heartbeat(Ctx(std::chrono::seconds(30), "register-tok").get(), hb,
                      &beat)
          .ok());

  // The registration token opens nothing a client does.
  v1::ListWorkersResponse workers;
  s = stub->ListWorkers(Ctx(std::chrono::seconds(30), "register-tok").get(),
                        v1::ListWorkersRequest(), &workers);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::Job job;
  s = stub->SubmitJob(Ctx(std::chrono::seconds(30), "register-tok").get(),
                      Request(TinySpec()), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(
      stub->ListWorkers(Ctx(std::chrono::seconds(30), "client-tok").get(),
                        v1::ListWorkersRequest(), &workers)
          .ok());
  EXPECT_EQ(workers.workers_size(), 2);  // the static one and the registered
}

// Without a registration token, a coordinator with client auth refuses
// self-registration outright (naming the flag) rather than let the client
// token register workers; the same token for both roles does not start.
TEST_F(CoordinatorApiTest, NoRegistrationTokenMeansNoSelfRegistration) {
  auto c = Start({"--insecure", "--auth_token=client-tok"});
  ASSERT_NE(c, nullptr);
  auto stub = CoordinatorStub(c->address());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_secret("a-secret-of-16-chars-or-more");
  reg.mutable_worker()->set_name("self-registered");
  reg.mutable_worker()->set_address(worker_->address());
  reg.mutable_worker()->set_max_concurrent_runs(1);
  v1::RegisterWorkerResponse lease;
  const grpc::Status s = stub->RegisterWorker(
      Ctx(std::chrono::seconds(30), "client-tok").get(), reg, &lease);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("--registration_token"));

  auto same = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure", "--store_dir=" + dir_.path() + "/2",
       "--auth_token=one", "--registration_token=one"});
  ASSERT_FALSE(same.ok());
  EXPECT_THAT(same.status().message(), HasSubstr("must differ"));
}

TEST_F(CoordinatorApiTest, TokensFromFilesForClientsAndWorkers) {
  auto w = WorkerProcess::Start({"--insecure", "--auth_token=w0rker"});
  ASSERT_TRUE(w.ok()) << w.status();
  StoreDir files;
  const std::string client_file = files.path() + "/client-token";
  const std::string worker_file = files.path() + "/worker-token";
  std::ofstream(client_file) << "s3cret\n";  // as `kubectl create secret`
  std::ofstream(worker_file) << "w0rker\n";
  auto c = CoordinatorProcess::Start(
      {"--insecure", "--worker_insecure", "--store_dir=" + dir_.path(),
       "--workers=" + (*w)->address(), "--auth_token_file=" + client_file,
       "--worker_auth_token_file=" + worker_file});
  ASSERT_TRUE(c.ok()) << c.status();
  auto stub = CoordinatorStub((*c)->address());
  v1::ListWorkersResponse workers;
  EXPECT_EQ(stub->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &workers)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::Job job;
  ASSERT_TRUE(stub->SubmitJob(Ctx(std::chrono::seconds(30), "s3cret").get(),
                              Request(TinySpec()), &job)
                  .ok());
  // The worker took the run: the coordinator sent it the file's token.
  v1::Job done;
  ASSERT_TRUE(::driftscope::testing::Eventually([&] {
    v1::GetJobRequest get;
    get.set_job_id(job.job_id());
    return stub->GetJob(Ctx(std::chrono::seconds(30), "s3cret").get(), get,
                        &done)
               .ok() &&
           done.state() == v1::JOB_SUCCEEDED;
  })) << done.ShortDebugString();
}

TEST_F(CoordinatorApiTest, TokenFilesThatHoldNoTokenStopTheStart) {
  StoreDir files;
  const std::string empty = files.path() + "/empty";
  std::ofstream(empty) << "\n";
  const std::string base = "--store_dir=" + dir_.path();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--insecure", base, "--auth_token_file=" + files.path() + "/none"},
       "--auth_token_file"},
      {{"--insecure", base, "--auth_token_file=" + empty},
       "--auth_token_file " + empty + " holds no token"},
      {{"--insecure", base, "--worker_auth_token_file=" + empty},
       "--worker_auth_token_file"},
      {{"--insecure", base, "--auth_token=x", "--auth_token_file=" + empty},
       "give --auth_token or --auth_token_file, not both"}};
  for (const auto& [flags, message] : cases) {
    auto c = CoordinatorProcess::Start(flags);
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(c.status().message(), HasSubstr(message));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(CoordinatorApiTest, TlsListenerRefusesPlaintext) {
  const std::string certs = dir_.path() + "/certs";
  const std::string cmd = absl::StrCat(
      "mkdir -p ", certs,
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
      "-keyout ",
      certs, "/key.pem -out ", certs, "/cert.pem 2>/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto c = Start(
      {"--tls_cert=" + certs + "/cert.pem", "--tls_key=" + certs + "/key.pem"});
  ASSERT_NE(c, nullptr);
  v1::ListWorkersResponse workers;
  auto plain = CoordinatorStub(c->address());
  EXPECT_EQ(plain
                ->ListWorkers(Ctx(std::chrono::seconds(5)).get(),
                              v1::ListWorkersRequest(), &workers)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(certs + "/cert.pem");
  auto tls = CoordinatorStub(c->address(), grpc::SslCredentials(ssl));
  ASSERT_TRUE(
      tls->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &workers).ok());
  EXPECT_EQ(workers.workers_size(), 1);
}

TEST_F(CoordinatorApiTest, RefusesToStartWithoutWhatItNeeds) {
  // No plaintext unless asked for, no store directory, no listen address.
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--store_dir=" + dir_.path()}, "--insecure"},
      {{"--insecure"}, "--store_dir is required"},
      {{"--insecure", "--store_dir=" + dir_.path(), "--max_attempts=0"},
       "--max_attempts"}};
  for (const auto& [flags, message] : cases) {
    auto c = CoordinatorProcess::Start(flags);
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(c.status().message(), HasSubstr("exited before listening"));
    EXPECT_THAT(c.status().message(), HasSubstr(message));
  }
}

}  // namespace
}  // namespace driftscope
