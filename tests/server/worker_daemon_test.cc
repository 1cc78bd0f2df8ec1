// Real driftscope-worker processes on 127.0.0.1 driven by WorkerClient:
// results bit-identical to an in-process run, large results, errors that
// leave the daemon serving, limits, TLS, tokens, cancellation and SIGTERM.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/worker_client.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "engine/core/sha256.h"
#include "engine/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/status.h"
#include "proto/lib/tensor_stream.h"
#include "tests/server/eventually.h"
#include "tests/server/test_certs.h"
#include "tests/server/worker_process.h"
#include "tests/server/worker_test_specs.h"

namespace driftscope {
namespace {

using ::driftscope::testing::Eventually;

using ::driftscope::testing::WorkerProcess;
using ::testing::HasSubstr;

using ::driftscope::testing::LargeOutputSpec;
using ::driftscope::testing::MakeSelfSignedCert;
using ::driftscope::testing::ReadFile;
using ::driftscope::testing::SmallSpec;

using ::driftscope::testing::LongWorkerSpec;

std::unique_ptr<WorkerProcess> StartWorker(std::vector<std::string> flags) {
  auto w = WorkerProcess::Start(std::move(flags));
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *std::move(w) : nullptr;
}

std::unique_ptr<WorkerClient> Client(const std::string& address,
                                     WorkerClientOptions o = {}) {
  o.address = address;
  if (o.tls_root_cert_pem.empty()) o.insecure = true;
  o.max_attempts = 1;
  auto c = WorkerClient::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

std::shared_ptr<grpc::Channel> PlaintextChannel(const std::string& address) {
  WorkerClientOptions o;
  o.address = address;
  o.insecure = true;
  return *MakeWorkerChannel(o);
}

void ExpectBitIdentical(const RunResult& remote, const RunResult& local) {
  EXPECT_EQ(remote.spec_digest, local.spec_digest);
  EXPECT_EQ(remote.profile, local.profile);
  EXPECT_EQ(remote.steps, local.steps);
  EXPECT_TRUE(remote.outputs == local.outputs);
  EXPECT_TRUE(remote.losses == local.losses);
  ASSERT_EQ(remote.fingerprints.size(), local.fingerprints.size());
  for (size_t i = 0; i < local.fingerprints.size(); ++i) {
    EXPECT_EQ(remote.fingerprints[i].step, local.fingerprints[i].step);
    EXPECT_EQ(remote.fingerprints[i].sha256, local.fingerprints[i].sha256);
  }
  ASSERT_EQ(remote.final_weights.size(), local.final_weights.size());
  for (size_t i = 0; i < local.final_weights.size(); ++i) {
    EXPECT_EQ(remote.final_weights[i].name, local.final_weights[i].name);
    EXPECT_TRUE(remote.final_weights[i].array == local.final_weights[i].array);
  }
  ASSERT_EQ(remote.epoch_outputs.size(), local.epoch_outputs.size());
  for (size_t i = 0; i < local.epoch_outputs.size(); ++i) {
    EXPECT_TRUE(remote.epoch_outputs[i] == local.epoch_outputs[i]);
  }
}

TEST(WorkerDaemonTest, RemoteRunIsBitIdenticalToLocal) {
  auto worker = StartWorker({"--insecure"});
  ASSERT_NE(worker, nullptr);
  JobSpec spec = SmallSpec();
  spec.training.epochs = 2;
  spec.training.capture_epoch_outputs = true;
  // cuda-det-emu: the deterministic GPU path emulated on the worker's CPU.
  for (const char* profile : {"fp32", "ref64", "cuda-det-emu"}) {
    SCOPED_TRACE(profile);
    int progress = 0;
    RunOptions options;
    options.on_progress = [&](const ProgressEvent&) { ++progress; };
    auto remote = Client(worker->address())->Run(spec, profile, options);
    ASSERT_TRUE(remote.ok()) << remote.status();
    auto local = RunJob(spec, *Profile::Parse(profile));
    ASSERT_TRUE(local.ok()) << local.status();
    ExpectBitIdentical(*remote, *local);
    // What ran the device profile comes back with the result.
    EXPECT_EQ(remote->device.backend, local->device.backend);
    EXPECT_EQ(remote->device.gpu_name, local->device.gpu_name);
    EXPECT_EQ(remote->device.math_mode, local->device.math_mode);
    EXPECT_EQ(remote->device.backend,
              std::string(profile) == "cuda-det-emu" ? "cuda-emu" : "");
    // Each received tensor comes with the digest it was checked against.
    EXPECT_EQ(remote->tensor_sha256.at("outputs"),
              Sha256Hex(local->outputs.raw(),
                        static_cast<size_t>(local->outputs.nbytes())));
    EXPECT_EQ(remote->tensor_sha256.count("epoch1"), 1u);
    EXPECT_TRUE(local->tensor_sha256.empty());
    EXPECT_EQ(progress, 2);  // one per epoch
    EXPECT_EQ(remote->outputs.shape(), (std::vector<int64_t>{16, 10, 32}));
  }
  auto d = Client(worker->address())->Describe();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->default_profile,
            RunJob(SmallSpec(), *Profile::Parse("fp32"))->profile);
}

TEST(WorkerDaemonTest, SuppliedDataAndInitialWeightsTravelExactly) {
  auto worker = StartWorker({"--insecure"});
  ASSERT_NE(worker, nullptr);
  JobSpec spec = SmallSpec();
  spec.model.layers.resize(1);
  spec.model.layers[0].units = 3;  // LSTM(3, seq): output (N, 10, 3)
  NdArray x(DType::kFloat64, {20, 10, 1}), y(DType::kFloat32, {20, 10, 3});
  NdArray eval_x(DType::kFloat32, {5, 10, 1});
  for (int64_t i = 0; i < x.size(); ++i) x.data<double>()[i] = 0.01 * i - 1;
  for (int64_t i = 0; i < y.size(); ++i) y.data<float>()[i] = 0.003f * i;
  for (int64_t i = 0; i < eval_x.size(); ++i) eval_x.data<float>()[i] = 0.1f;
  auto reference = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(reference.ok()) << reference.status();
  RunOptions options;
  options.x = x;
  options.y = y;
  options.eval_x = eval_x;
  std::vector<NdArray> init;
  for (const NamedArray& w : reference->final_weights) init.push_back(w.array);
  options.init_weights = init;
  auto remote = Client(worker->address())->Run(spec, "fp32", options);
  ASSERT_TRUE(remote.ok()) << remote.status();
  auto local = RunJob(spec, *Profile::Parse("fp32"), options);
  ASSERT_TRUE(local.ok()) << local.status();
  ExpectBitIdentical(*remote, *local);
  EXPECT_EQ(remote->outputs.shape(), (std::vector<int64_t>{5, 10, 3}));
  // The initial weights were the ones sent, not the seeded ones.
  EXPECT_NE(remote->fingerprints[0].sha256, reference->fingerprints[0].sha256);
}

TEST(WorkerDaemonTest, ResultAbove64MBStreamsIntact) {
  auto worker = StartWorker({"--insecure"});
  ASSERT_NE(worker, nullptr);
  const JobSpec spec = LargeOutputSpec(700);  // 71.7 MB of outputs
  auto remote = Client(worker->address())->Run(spec, "fp32");
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_GT(remote->outputs.nbytes(), 64 << 20);
  auto local = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(local.ok());
  EXPECT_TRUE(remote->outputs == local->outputs);
}

TEST(WorkerDaemonTest, InvalidSpecNamesFieldAndDaemonKeepsServing) {
  auto worker = StartWorker({"--insecure"});
  ASSERT_NE(worker, nullptr);
  auto client = Client(worker->address());
  JobSpec bad = SmallSpec();
  bad.model.layers[1].units = 0;
  auto r = client->Run(bad, "fp32");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.layers[1].lstm.units"));
  auto ok = client->Run(SmallSpec(), "fp32");
  EXPECT_TRUE(ok.ok()) << ok.status();
  auto unrunnable = client->Run(SmallSpec(), "fp32,threads=banana");
  EXPECT_EQ(unrunnable.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkerDaemonTest, StockGeneratedStubReadsTheStream) {
  // The worker writes chunk events itself (event_wire.h); a client built
  // from worker.proto alone, through protobuf's own parser, gets the same
  // tensors as WorkerClient does.
  auto worker = StartWorker({"--insecure"});
  ASSERT_NE(worker, nullptr);
  auto stub = v1::Worker::NewStub(PlaintextChannel(worker->address()));
  const JobSpec spec = LargeOutputSpec(40);  // 4 MB of outputs: 4 chunks
  v1::RunRequest request;
  *request.mutable_spec() = JobSpecToProto(spec);
  request.mutable_profile()->set_text("fp32");
  request.set_run_id("stock-stub");
  request.mutable_capture()->set_outputs(true);
  grpc::ClientContext ctx;
  auto reader = stub->Run(&ctx, request);
  v1::RunEvent event;
  TensorAssembler assembler;
  int chunks = 0;
  while (reader->Read(&event)) {
    if (!event.has_tensor_chunk()) continue;
    EXPECT_EQ(event.run_id(), "stock-stub");
    ++chunks;
    ASSERT_TRUE(assembler.Add(event.tensor_chunk()).ok());
  }
  ASSERT_TRUE(reader->Finish().ok());
  auto tensors = assembler.Finish();
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_GE(chunks, 4);
  auto local = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(local.ok());
  bool saw_outputs = false;
  for (const NamedArray& t : *tensors) {
    if (t.name != "outputs") continue;
    saw_outputs = true;
    EXPECT_TRUE(t.array == local->outputs);
  }
  EXPECT_TRUE(saw_outputs);
}

TEST(WorkerDaemonTest, RequestThatIsNotARunRequestIsInvalidArgument) {
  // Run is registered raw: the worker parses the request itself, and bytes
  // that are no RunRequest get INVALID_ARGUMENT while it keeps serving.
  auto worker = StartWorker({"--insecure"});
  ASSERT_NE(worker, nullptr);
  const std::shared_ptr<grpc::Channel> channel =
      PlaintextChannel(worker->address());
  const grpc::internal::RpcMethod method(
      "/driftscope.v1.Worker/Run", grpc::internal::RpcMethod::SERVER_STREAMING,
      channel);
  const grpc::Slice garbage(std::string("\xff\xff\xff\xff\xff"));
  const grpc::ByteBuffer request(&garbage, 1);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          channel.get(), method, &ctx, request));
  grpc::ByteBuffer event;
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("RunRequest"));
  auto ok = Client(worker->address())->Run(SmallSpec(), "fp32");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(WorkerDaemonTest, UnreachableWorkerIsUnavailableAfterRetries) {
  std::string address;
  {
    auto worker = StartWorker({"--insecure"});
    ASSERT_NE(worker, nullptr);
    address = worker->address();
  }  // killed: nothing listens there now
  WorkerClientOptions o;
  o.address = address;
  o.insecure = true;
  o.max_attempts = 3;
  o.initial_backoff = absl::Milliseconds(50);
  o.describe_deadline = absl::Seconds(5);
  auto client = WorkerClient::Create(o);
  ASSERT_TRUE(client.ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto d = (*client)->Describe();
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(d.status().message(), HasSubstr(address));
  // Two backoff waits (50 + 100 ms) happened between the three attempts.
  EXPECT_GE(std::chrono::steady_clock::now() - t0,
            std::chrono::milliseconds(150));
}

TEST(WorkerDaemonTest, OversizeJobRefusedBeforeWork) {
  auto worker = StartWorker({"--insecure", "--max_epochs=10"});
  ASSERT_NE(worker, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = Client(worker->address())->Run(LongWorkerSpec(), "fp32");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("--max_epochs=10"));
  EXPECT_EQ(ErrorReason(r.status()), "");  // not "busy": no use retrying
}

TEST(WorkerDaemonTest, BusyWorkerAndCancellation) {
  auto worker = StartWorker({"--insecure", "--max_concurrent_runs=1"});
  ASSERT_NE(worker, nullptr);
  auto client = Client(worker->address());
  std::atomic<bool> cancel{false};
  std::atomic<int64_t> steps{0};
  RunOptions options;
  options.cancel = &cancel;
  options.on_progress = [&](const ProgressEvent& e) { steps = e.step; };
  RemoteRunOptions remote;
  remote.capture.progress_every_steps = 1;
  auto long_run = std::async(std::launch::async, [&] {
    return client->Run(LongWorkerSpec(), "fp32", options, remote);
  });
  ASSERT_TRUE(Eventually([&] { return steps.load() > 0; }));

  auto second = client->Run(SmallSpec(), "fp32");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(second.status().message(), HasSubstr("--max_concurrent_runs=1"));
  // Told apart from a job over the limits without reading the message.
  EXPECT_EQ(ErrorReason(second.status()), kReasonWorkerBusy);

  cancel = true;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(long_run.wait_for(std::chrono::seconds(20)),
            std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(long_run.get().status().code(), absl::StatusCode::kCancelled);
  // The worker noticed: its slot frees within a step and it runs the next.
  ASSERT_TRUE(
      Eventually([&] { return client->Run(SmallSpec(), "fp32").ok(); }));
}

TEST(WorkerDaemonTest, BearerTokenRequired) {
  auto worker = StartWorker({"--insecure", "--auth_token=s3cret"});
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(Client(worker->address())->Describe().status().code(),
            absl::StatusCode::kUnauthenticated);
  WorkerClientOptions wrong;
  wrong.token = "s3creT";
  EXPECT_EQ(
      Client(worker->address(), wrong)->Run(SmallSpec(), "").status().code(),
      absl::StatusCode::kUnauthenticated);
  WorkerClientOptions right;
  right.token = "s3cret";
  EXPECT_TRUE(Client(worker->address(), right)->Describe().ok());
}

// The issue: a bad certificate or key at start-up said only "cannot
// listen". Now the file that is wrong is named (it said "cannot listen on
// 127.0.0.1:0" before this fix).
TEST(WorkerDaemonTest, CertificateOrKeyThatIsNotPemIsNamedAtStart) {
  const std::string dir = ::testing::TempDir() + "/worker_bad_tls";
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  std::ofstream(dir + "/garbage.pem") << "not a certificate\n";
  auto bad_cert = WorkerProcess::Start(
      {"--tls_cert=" + dir + "/garbage.pem", "--tls_key=" + dir + "/key.pem"});
  ASSERT_FALSE(bad_cert.ok());
  EXPECT_THAT(
      bad_cert.status().message(),
      HasSubstr("--tls_cert " + dir + "/garbage.pem holds no PEM CERTIFICATE"));
  auto bad_key = WorkerProcess::Start(
      {"--tls_cert=" + dir + "/cert.pem", "--tls_key=" + dir + "/cert.pem"});
  ASSERT_FALSE(bad_key.ok());
  EXPECT_THAT(bad_key.status().message(),
              HasSubstr("holds no PEM PRIVATE KEY"));
}

TEST(WorkerDaemonTest, TlsWorkerRefusesPlaintextAndServesTls) {
  const std::string dir = ::testing::TempDir() + "/worker_tls";
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  auto worker = StartWorker(
      {"--tls_cert=" + dir + "/cert.pem", "--tls_key=" + dir + "/key.pem"});
  ASSERT_NE(worker, nullptr);

  WorkerClientOptions plain;
  plain.describe_deadline = absl::Seconds(5);
  EXPECT_FALSE(Client(worker->address(), plain)->Describe().ok());

  WorkerClientOptions tls;
  tls.tls_root_cert_pem = ReadFile(dir + "/cert.pem");
  auto d = Client(worker->address(), tls)->Describe();
  EXPECT_TRUE(d.ok()) << d.status();
  auto r = Client(worker->address(), tls)->Run(SmallSpec(), "fp32");
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST(WorkerDaemonTest, MutualTlsNeedsAClientCertificate) {
  const std::string dir = ::testing::TempDir() + "/worker_mtls";
  // One self-signed certificate serves as server cert, client cert and the
  // CA that signed both: enough to exercise the verification paths.
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  auto worker = StartWorker({"--tls_cert=" + dir + "/cert.pem",
                             "--tls_key=" + dir + "/key.pem",
                             "--tls_client_ca=" + dir + "/cert.pem"});
  ASSERT_NE(worker, nullptr);
  WorkerClientOptions anonymous;
  anonymous.tls_root_cert_pem = ReadFile(dir + "/cert.pem");
  anonymous.describe_deadline = absl::Seconds(5);
  EXPECT_FALSE(Client(worker->address(), anonymous)->Describe().ok());
  WorkerClientOptions known = anonymous;
  known.tls_client_cert_pem = ReadFile(dir + "/cert.pem");
  known.tls_client_key_pem = ReadFile(dir + "/key.pem");
  auto d = Client(worker->address(), known)->Describe();
  EXPECT_TRUE(d.ok()) << d.status();
}

TEST(WorkerDaemonTest, RefusesPlaintextUnlessAskedFor) {
  auto w = WorkerProcess::Start({});
  EXPECT_FALSE(w.ok());
}

TEST(WorkerDaemonTest, SigtermDrainsAndExitsZero) {
  {
    auto idle = StartWorker({"--insecure"});
    ASSERT_NE(idle, nullptr);
    ASSERT_EQ(kill(idle->pid(), SIGTERM), 0);
    EXPECT_EQ(idle->WaitFor(std::chrono::seconds(20)), 0);
  }
  // A run still going when the grace period ends is cancelled, and the
  // client hears so.
  auto worker = StartWorker({"--insecure", "--grace_period=200ms"});
  ASSERT_NE(worker, nullptr);
  auto client = Client(worker->address());
  std::atomic<int64_t> steps{0};
  RunOptions options;
  options.on_progress = [&](const ProgressEvent& e) { steps = e.step; };
  RemoteRunOptions remote;
  remote.capture.progress_every_steps = 1;
  auto run = std::async(std::launch::async, [&] {
    return client->Run(LongWorkerSpec(), "fp32", options, remote);
  });
  ASSERT_TRUE(Eventually([&] { return steps.load() > 0; }));
  ASSERT_EQ(kill(worker->pid(), SIGTERM), 0);
  EXPECT_EQ(worker->WaitFor(std::chrono::seconds(20)), 0);
  ASSERT_EQ(run.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_FALSE(run.get().ok());
}

// The issue: a second SIGTERM during the drain was ignored, so an operator
// had to wait out the grace period (or kill -9). Ignored before this fix:
// the worker below stayed up for its 60 s grace.
TEST(WorkerDaemonTest, SecondSigtermDuringTheDrainStopsAtOnce) {
  auto worker = StartWorker({"--insecure", "--grace_period=60s"});
  ASSERT_NE(worker, nullptr);
  auto client = Client(worker->address());
  std::atomic<int64_t> steps{0};
  RunOptions options;
  options.on_progress = [&](const ProgressEvent& e) { steps = e.step; };
  RemoteRunOptions remote;
  remote.capture.progress_every_steps = 1;
  auto run = std::async(std::launch::async, [&] {
    return client->Run(LongWorkerSpec(), "fp32", options, remote);
  });
  ASSERT_TRUE(Eventually([&] { return steps.load() > 0; }));
  ASSERT_EQ(kill(worker->pid(), SIGTERM), 0);
  // Still draining: the run goes on.
  EXPECT_EQ(worker->WaitFor(std::chrono::milliseconds(500)), -1);
  ASSERT_EQ(kill(worker->pid(), SIGTERM), 0);
  EXPECT_EQ(worker->WaitFor(std::chrono::seconds(5)), 128 + SIGTERM);
  ASSERT_EQ(run.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_FALSE(run.get().ok());
}

}  // namespace
}  // namespace driftscope
