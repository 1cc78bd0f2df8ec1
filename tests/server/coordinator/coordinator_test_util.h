// Helpers of the coordinator tests: a real driftscope-coordinator process
// on 127.0.0.1 port 0 (its port read from the first stdout line, stderr
// kept in a file for failure messages), a Coordinator stub, small job
// specs and polling helpers. One thread at a time.
#ifndef DRIFTSCOPE_TESTS_SERVER_COORDINATOR_COORDINATOR_TEST_UTIL_H_
#define DRIFTSCOPE_TESTS_SERVER_COORDINATOR_COORDINATOR_TEST_UTIL_H_

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "engine/job/job_spec.h"
#include "proto/lib/job_convert.h"
#include "tests/server/daemon_process.h"
#include "tests/server/eventually.h"

namespace driftscope::testing {

inline std::string CoordinatorBinary() {
  return std::string(DRIFTSCOPE_BINARY_DIR) + "/server/driftscope-coordinator";
}

class CoordinatorProcess : public DaemonProcess {
 public:
  // Starts the coordinator with `flags` plus --listen=127.0.0.1:0 and waits
  // up to 30 s for "listening on HOST:PORT".
  static absl::StatusOr<std::unique_ptr<CoordinatorProcess>> Start(
      std::vector<std::string> flags) {
    auto c = std::unique_ptr<CoordinatorProcess>(new CoordinatorProcess());
    const absl::Status s = c->Launch(CoordinatorBinary(), "coordinator", flags,
                                     std::chrono::seconds(30));
    if (!s.ok()) return s;
    return c;
  }

 private:
  CoordinatorProcess() = default;
};

inline std::unique_ptr<v1::Coordinator::Stub> CoordinatorStub(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  if (creds == nullptr) creds = grpc::InsecureChannelCredentials();
  return v1::Coordinator::NewStub(grpc::CreateChannel(address, creds));
}

// A context with a deadline (and a token when given).
inline std::unique_ptr<grpc::ClientContext> Ctx(
    std::chrono::seconds deadline = std::chrono::seconds(30),
    const std::string& token = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

// A job of a few hundred milliseconds: LSTM(8, seq) -> LSTM(4, seq),
// 64 samples, 2 epochs, epoch snapshots.
inline JobSpec TinySpec() {
  JobSpec s = DefaultJobSpec();
  s.model.layers[0].units = 8;
  s.model.layers[1].units = 4;
  s.data.samples = 64;
  s.data.eval_samples = 16;
  s.training.epochs = 2;
  s.training.capture_epoch_outputs = true;
  return s;
}

// A job that trains for minutes unless cancelled or killed.
inline JobSpec LongSpec() {
  JobSpec s = TinySpec();
  s.training.epochs = 100000;
  s.training.capture_epoch_outputs = false;
  return s;
}

// A job of about `seconds` seconds on an idle machine (LSTM(128) ->
// LSTM(64), T=20, 1024 samples: about 0.1 s per epoch), for kills while it
// runs; a few hundred steps, so few fingerprints.
inline JobSpec SecondsSpec(int seconds) {
  JobSpec s = TinySpec();
  s.model.timesteps = 20;
  s.model.layers[0].units = 128;
  s.model.layers[1].units = 64;
  s.data.samples = 1024;
  s.training.epochs = 10 * seconds;
  s.training.capture_epoch_outputs = false;
  return s;
}

// The grpc.health.v1.Health/Check answer of the server at `address` for
// `service` ("" = the server as a whole): 1 SERVING, 2 NOT_SERVING, 0
// UNKNOWN, -1 when the call failed. Hand-encoded: the health protos are not
// installed with gRPC.
inline int HealthStatus(const std::string& address,
                        const std::string& service = "") {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back('\x0a');  // field 1, length-delimited
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  if (!done.get_future().get().ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (bytes.empty()) return 0;
  if (bytes.size() == 2 && bytes[0] == '\x08') return bytes[1];
  return -1;
}

inline bool Terminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED ||
         s == v1::JOB_CANCELLED;
}

// GetJob until the job is terminal (or `timeout`); the last answer.
inline v1::Job WaitForJob(
    v1::Coordinator::Stub& stub, const std::string& id,
    std::chrono::seconds timeout = std::chrono::seconds(120)) {
  v1::Job job;
  Eventually(
      [&] {
        v1::GetJobRequest req;
        req.set_job_id(id);
        auto ctx = Ctx();
        return stub.GetJob(ctx.get(), req, &job).ok() && Terminal(job.state());
      },
      timeout);
  return job;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_COORDINATOR_COORDINATOR_TEST_UTIL_H_
