// Transport benchmarks (DESIGN §11): result streaming over loopback (target
// ≥ 1 GB/s of tensor bytes) and the default job run through a worker versus
// in-process (target < 5% extra wall time). Worker and client share this
// process and its cores, as on a one-box deployment.
#include <benchmark/benchmark.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include <chrono>
#include <memory>

#include "client/lib/job_convert.h"
#include "client/lib/worker_client.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "engine/train/trainer.h"
#include "server/common/crc32c.h"
#include "server/common/tensor_stream.h"
#include "server/worker/worker_server.h"

namespace driftscope {
namespace {

WorkerServer& Server() {
  static WorkerServer* server = [] {
    WorkerServerOptions o;
    o.listen = "127.0.0.1:0";
    o.tls.insecure = true;
    o.service.max_concurrent_runs = 4;
    return WorkerServer::BuildAndStart(o)->release();
  }();
  return *server;
}

std::unique_ptr<WorkerClient> Client() {
  WorkerClientOptions o;
  o.address = Server().address();
  o.insecure = true;
  return *WorkerClient::Create(o);
}

// Outputs of `mib` MiB for almost no compute: Dense(256) over 100 steps.
JobSpec LargeOutputJob(int mib) {
  JobSpec s = DefaultJobSpec();
  s.model.timesteps = 100;
  s.model.layers.assign(1, LayerSpec{});
  s.model.layers[0].kind = LayerKind::kDense;
  s.model.layers[0].units = 256;
  s.model.layers[0].activation = Activation::kLinear;
  s.data.eval_samples = mib * (1 << 20) / (100 * 256 * 4);
  s.training.epochs = 0;
  return s;
}

RemoteRunOptions OutputsOnly() {
  RemoteRunOptions r;
  r.capture = RemoteCapture{true, false, false, false, false, 0};
  return r;
}

// The per-byte work of streaming without the network: chunking, crc32c and
// sha256 on the sender, checks and copies on the receiver, one thread.
void BM_ChunkRoundTrip(benchmark::State& state) {
  NdArray a(DType::kFloat32, {state.range(0) << 18});
  for (int64_t i = 0; i < a.size(); ++i) a.data<float>()[i] = 0.25f * i;
  for (auto _ : state) {
    TensorAssembler assembler;
    EmitTensorChunks("outputs", a, [&](v1::TensorChunk* c) {
      return assembler.Add(*c).ok();
    });
    benchmark::DoNotOptimize(assembler.Finish());
  }
  state.SetBytesProcessed(state.iterations() * a.nbytes());
}
BENCHMARK(BM_ChunkRoundTrip)->Arg(64)->Unit(benchmark::kMillisecond);

void BM_Crc32c(benchmark::State& state) {
  std::string bytes(1 << 20, 'x');
  for (auto _ : state)
    benchmark::DoNotOptimize(Crc32c(bytes.data(), bytes.size()));
  state.SetBytesProcessed(state.iterations() * bytes.size());
}
BENCHMARK(BM_Crc32c);

void BM_EvalInProcess(benchmark::State& state) {
  const JobSpec spec = LargeOutputJob(static_cast<int>(state.range(0)));
  const Profile profile = *Profile::Parse("fp32");
  int64_t bytes = 0;
  for (auto _ : state) {
    auto r = RunJob(spec, profile);
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
    bytes += r->outputs.nbytes();
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_EvalInProcess)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same job through the worker: the difference to BM_EvalInProcess is
// the transport (chunking, crc32c, sha256 on both sides, gRPC, copies).
void BM_EvalRemote(benchmark::State& state) {
  const JobSpec spec = LargeOutputJob(static_cast<int>(state.range(0)));
  auto client = Client();
  int64_t bytes = 0;
  for (auto _ : state) {
    auto r = client->Run(spec, "fp32", {}, OutputsOnly());
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
    bytes += r->outputs.nbytes();
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_EvalRemote)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Streaming alone: the stub read directly, timed from the first tensor chunk
// to `done`, so the eval compute before the first chunk is left out. Each
// chunk is checked (crc32c) and copied out as WorkerClient does.
void BM_StreamOnly(benchmark::State& state) {
  const JobSpec spec = LargeOutputJob(static_cast<int>(state.range(0)));
  auto stub = v1::Worker::NewStub(grpc::CreateChannel(
      Server().address(), grpc::InsecureChannelCredentials()));
  v1::RunRequest request;
  *request.mutable_spec() = JobSpecToProto(spec);
  request.mutable_capture()->set_outputs(true);
  int64_t bytes = 0;
  for (auto _ : state) {
    grpc::ClientContext ctx;
    auto reader = stub->Run(&ctx, request);
    v1::RunEvent event;
    std::chrono::steady_clock::time_point first;
    bool started = false;
    TensorAssembler assembler;
    while (reader->Read(&event)) {
      if (event.has_tensor_chunk()) {
        if (!started) first = std::chrono::steady_clock::now();
        started = true;
        if (!assembler.Add(event.tensor_chunk()).ok()) {
          state.SkipWithError("bad chunk");
        }
        bytes += event.tensor_chunk().data().size();
      }
    }
    const auto end = std::chrono::steady_clock::now();
    if (!reader->Finish().ok()) state.SkipWithError("run failed");
    state.SetIterationTime(std::chrono::duration<double>(end - first).count());
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_StreamOnly)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

void BM_DefaultJobInProcess(benchmark::State& state) {
  const JobSpec spec = DefaultJobSpec();
  const Profile profile = *Profile::Parse("fp32");
  for (auto _ : state) benchmark::DoNotOptimize(RunJob(spec, profile));
}
BENCHMARK(BM_DefaultJobInProcess)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_DefaultJobRemote(benchmark::State& state) {
  const JobSpec spec = DefaultJobSpec();
  auto client = Client();
  for (auto _ : state) {
    auto r = client->Run(spec, "fp32");
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
  }
}
BENCHMARK(BM_DefaultJobRemote)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace driftscope

BENCHMARK_MAIN();
