// CoordinatorClient against an in-process fake Coordinator on loopback:
// a retried SubmitJob keeps its client request id, WatchJob resumes after
// the stream breaks, FetchResult returns verified tensors and reports a
// damaged stream as DATA_LOSS naming the tensor, errors keep their code.
#include "client/lib/coordinator_client.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "engine/core/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/tensor_stream.h"

namespace driftscope {
namespace {

using ::testing::HasSubstr;

NdArray Ramp(std::vector<int64_t> shape) {
  NdArray a(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < a.size(); ++i) a.data<float>()[i] = 0.25f * i - 3;
  return a;
}

// A scripted coordinator: each call answers from the fields below.
class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* r,
                         v1::Job* job) override {
    absl::MutexLock lock(&mu);
    request_ids.push_back(r->client_request_id());
    if (submit_failures > 0) {
      --submit_failures;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
    }
    job->set_job_id("job-1");
    job->set_client_request_id(r->client_request_id());
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* r,
                      v1::Job* job) override {
    if (r->job_id() != "job-1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("job ", r->job_id(), " not found"));
    }
    job->set_job_id("job-1");
    return grpc::Status::OK;
  }
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest*,
                        grpc::ServerWriter<v1::JobEvent>* w) override {
    int call;
    {
      absl::MutexLock lock(&mu);
      call = watch_calls++;
    }
    v1::JobEvent snapshot;
    snapshot.mutable_snapshot()->set_job_id("job-1");
    snapshot.mutable_snapshot()->set_state(v1::JOB_RUNNING);
    w->Write(snapshot);
    if (call == 0) {
      // The coordinator goes away in the middle of the job.
      return grpc::Status(watch_break_code, "shutting down");
    }
    v1::JobEvent update;
    update.mutable_run_update()->set_run_id("run-1");
    update.mutable_run_update()->set_state(v1::RUN_SUCCEEDED);
    w->Write(update);
    v1::JobEvent done;
    done.set_job_state(v1::JOB_SUCCEEDED);
    w->Write(done);
    return grpc::Status::OK;
  }
  grpc::Status FetchResult(grpc::ServerContext*,
                           const v1::FetchResultRequest* r,
                           grpc::ServerWriter<v1::TensorChunk>* w) override {
    for (const NamedArray& t : tensors) {
      bool wanted = r->names().empty();
      for (const std::string& n : r->names()) wanted = wanted || n == t.name;
      if (!wanted) continue;
      EmitTensorChunks(
          t.name, t.array,
          [&](v1::TensorChunk* c) {
            if (corrupt_chunk && c->name() == "outputs" && c->offset() > 0) {
              (*c->mutable_data())[3] ^= 1;
            }
            return w->Write(*c);
          },
          nullptr, /*chunk_bytes=*/4096);
    }
    return grpc::Status::OK;
  }

  grpc::Status FetchFingerprints(
      grpc::ServerContext*, const v1::FetchFingerprintsRequest*,
      grpc::ServerWriter<v1::FingerprintBatch>* w) override {
    // Two batches, as a long run arrives.
    const size_t half = fingerprints.size() / 2;
    v1::FingerprintBatch first, second;
    for (size_t k = 0; k < fingerprints.size(); ++k) {
      *(k < half ? first : second).add_fingerprints() = fingerprints[k];
    }
    w->Write(first);
    w->Write(second);
    return grpc::Status::OK;
  }

  absl::Mutex mu;
  int submit_failures = 0;
  std::vector<v1::Fingerprint> fingerprints;
  std::vector<std::string> request_ids;
  int watch_calls = 0;
  grpc::StatusCode watch_break_code = grpc::StatusCode::UNAVAILABLE;
  std::vector<NamedArray> tensors;
  bool corrupt_chunk = false;
};

class CoordinatorClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    CoordinatorClientOptions o;
    o.channel.address = absl::StrCat("127.0.0.1:", port);
    o.channel.insecure = true;
    o.initial_backoff = absl::Milliseconds(10);
    auto c = CoordinatorClient::Create(o);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }
  void TearDown() override { server_->Shutdown(); }

  // A finished run whose summary announces `tensors`.
  v1::RunInfo Run(const std::vector<NamedArray>& tensors) {
    v1::RunInfo run;
    run.set_run_id("run-1");
    run.set_state(v1::RUN_SUCCEEDED);
    for (const NamedArray& t : tensors) {
      v1::TensorInfo* info = run.mutable_summary()->add_tensors();
      info->set_name(t.name);
      info->set_dtype(DTypeToProto(t.array.dtype()));
      for (int64_t d : t.array.shape()) info->add_shape(d);
      info->set_size_bytes(t.array.nbytes());
      info->set_sha256(Sha256Hex(t.array.raw(), t.array.nbytes()));
    }
    return run;
  }

  FakeCoordinator fake_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CoordinatorClient> client_;
};

v1::Fingerprint Fp(int64_t step) {
  v1::Fingerprint f;
  f.set_step(step);
  f.set_sha256(absl::StrCat("sha-", step));
  f.set_sha256_f32(absl::StrCat("f32-", step));
  return f;
}

TEST_F(CoordinatorClientTest, FetchFingerprintsReturnsEveryStepInOrder) {
  for (int k = 0; k <= 6; ++k) fake_.fingerprints.push_back(Fp(k));
  v1::RunInfo run = Run({});
  *run.mutable_summary()->add_fingerprints() = Fp(0);  // as Job messages do
  *run.mutable_summary()->add_fingerprints() = Fp(6);
  absl::StatusOr<std::vector<v1::Fingerprint>> got =
      client_->FetchFingerprints("job-1", run);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 7u);
  for (int k = 0; k <= 6; ++k) {
    EXPECT_EQ((*got)[k].step(), k);
    EXPECT_EQ((*got)[k].sha256(), absl::StrCat("sha-", k));
  }

  // What arrives must end where the summary says the run ended.
  fake_.fingerprints.pop_back();
  absl::StatusOr<std::vector<v1::Fingerprint>> short_stream =
      client_->FetchFingerprints("job-1", run);
  EXPECT_EQ(short_stream.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(short_stream.status().message(),
              HasSubstr("do not agree with the run's summary"));
  EXPECT_EQ(client_->FetchFingerprints("job-1", v1::RunInfo()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorClientTest, RetriedSubmissionKeepsItsRequestId) {
  fake_.submit_failures = 2;
  v1::SubmitJobRequest request;
  absl::StatusOr<v1::Job> job = client_->SubmitJob(request);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(fake_.request_ids.size(), 3u);
  EXPECT_FALSE(fake_.request_ids[0].empty());
  EXPECT_EQ(fake_.request_ids[1], fake_.request_ids[0]);
  EXPECT_EQ(fake_.request_ids[2], fake_.request_ids[0]);
  EXPECT_EQ(job->client_request_id(), fake_.request_ids[0]);
  // A new submission gets a new id; a given one is sent as it is.
  ASSERT_TRUE(client_->SubmitJob(request).ok());
  EXPECT_NE(fake_.request_ids[3], fake_.request_ids[0]);
  request.set_client_request_id("ci-build-1234");
  ASSERT_TRUE(client_->SubmitJob(request).ok());
  EXPECT_EQ(fake_.request_ids[4], "ci-build-1234");
}

TEST_F(CoordinatorClientTest, SubmissionGivesUpAfterMaxAttempts) {
  fake_.submit_failures = 100;
  absl::StatusOr<v1::Job> job = client_->SubmitJob(v1::SubmitJobRequest());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(job.status().message(), HasSubstr("coordinator 127.0.0.1:"));
  EXPECT_EQ(fake_.request_ids.size(), 4u);  // max_attempts
}

TEST_F(CoordinatorClientTest, UnknownJobIsNotFoundWithTheServersMessage) {
  absl::StatusOr<v1::Job> job = client_->GetJob("job-404");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(job.status().message(), HasSubstr("job job-404 not found"));
}

TEST_F(CoordinatorClientTest, WatchResumesAfterTheStreamBreaks) {
  std::vector<v1::JobEvent::EventCase> seen;
  absl::StatusOr<v1::JobState> state =
      client_->WatchJob("job-1", [&](const v1::JobEvent& e) {
        seen.push_back(e.event_case());
        return true;
      });
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::JOB_SUCCEEDED);
  EXPECT_EQ(fake_.watch_calls, 2);
  // A snapshot from each stream, then the rest of the second.
  EXPECT_EQ(seen, (std::vector<v1::JobEvent::EventCase>{
                      v1::JobEvent::kSnapshot, v1::JobEvent::kSnapshot,
                      v1::JobEvent::kRunUpdate, v1::JobEvent::kJobState}));
}

// A coordinator past its shutdown deadline ends open streams with CANCELLED
// (what `watch` and `submit --wait` saw on a restart): the watch resumes.
TEST_F(CoordinatorClientTest, WatchResumesAfterTheServerCancelsTheStream) {
  fake_.watch_break_code = grpc::StatusCode::CANCELLED;
  int snapshots = 0;
  absl::StatusOr<v1::JobState> state =
      client_->WatchJob("job-1", [&](const v1::JobEvent& e) {
        snapshots += e.has_snapshot();
        return true;
      });
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::JOB_SUCCEEDED);
  EXPECT_EQ(fake_.watch_calls, 2);
  EXPECT_EQ(snapshots, 2);
}

// Other errors are the answer, not a reason to reconnect.
TEST_F(CoordinatorClientTest, WatchStopsOnAnErrorThatIsNotARestart) {
  fake_.watch_break_code = grpc::StatusCode::PERMISSION_DENIED;
  absl::StatusOr<v1::JobState> state =
      client_->WatchJob("job-1", [](const v1::JobEvent&) { return true; });
  EXPECT_EQ(state.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(fake_.watch_calls, 1);
}

// Stopping the watch from the callback is still CANCELLED, not a reconnect.
TEST_F(CoordinatorClientTest, WatchStoppedByTheCallerDoesNotReconnect) {
  absl::StatusOr<v1::JobState> state =
      client_->WatchJob("job-1", [](const v1::JobEvent&) { return false; });
  EXPECT_EQ(state.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(fake_.watch_calls, 1);
}

TEST_F(CoordinatorClientTest, FetchResultReassemblesAndVerifiesTensors) {
  fake_.tensors = {{"outputs", Ramp({16, 10, 32})}, {"losses", Ramp({96})}};
  const v1::RunInfo run = Run(fake_.tensors);
  absl::StatusOr<std::vector<NamedArray>> got =
      client_->FetchResult("job-1", run);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].name, "outputs");
  EXPECT_EQ((*got)[0].array.shape(), (std::vector<int64_t>{16, 10, 32}));
  EXPECT_EQ(Sha256Hex((*got)[0].array.raw(), (*got)[0].array.nbytes()),
            run.summary().tensors(0).sha256());
  // Only the names asked for.
  got = client_->FetchResult("job-1", run, {"losses"});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].name, "losses");
  EXPECT_EQ(client_->FetchResult("job-1", run, {"weights"}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorClientTest, FetchResultRejectsADamagedChunk) {
  fake_.tensors = {{"outputs", Ramp({16, 10, 32})}};
  fake_.corrupt_chunk = true;
  absl::StatusOr<std::vector<NamedArray>> got =
      client_->FetchResult("job-1", Run(fake_.tensors));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("outputs"));
}

TEST_F(CoordinatorClientTest, FetchResultRejectsATensorUnlikeTheSummary) {
  fake_.tensors = {{"outputs", Ramp({16, 10, 32})}};
  v1::RunInfo run = Run(fake_.tensors);
  // The stored summary says other bytes: a mix-up in the store.
  run.mutable_summary()->mutable_tensors(0)->set_sha256(std::string(64, 'a'));
  absl::StatusOr<std::vector<NamedArray>> got =
      client_->FetchResult("job-1", run);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("\"outputs\": sha256"));
  // A tensor announced but never sent.
  run = Run({{"outputs", Ramp({16, 10, 32})}, {"losses", Ramp({96})}});
  got = client_->FetchResult("job-1", run);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("\"losses\""));
}

TEST_F(CoordinatorClientTest, AnUnfinishedRunHasNothingToFetch) {
  v1::RunInfo run;
  run.set_run_id("run-2");
  run.set_state(v1::RUN_RUNNING);
  EXPECT_EQ(client_->FetchResult("job-1", run).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace driftscope
