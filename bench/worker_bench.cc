// Transport benchmarks (DESIGN §11): result streaming over loopback (target
// ≥ 1 GB/s of tensor bytes) and the default job run through a worker versus
// in-process (target < 5% extra wall time).
//
// The worker is a real driftscope-worker process on 127.0.0.1 (port 0),
// started once for the whole program, so each end has its own allocator and
// threads as in a deployment, and the CPU time of each end is measured
// apart: this process's (getrusage) and the worker's (/proc/PID/stat).
// Both ends share this machine's cores.
#include <benchmark/benchmark.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "client/lib/worker_client.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "engine/core/sha256.h"
#include "engine/train/trainer.h"
#include "proto/lib/crc32c.h"
#include "proto/lib/event_wire.h"
#include "proto/lib/job_convert.h"
#include "proto/lib/tensor_stream.h"
#include "tests/server/test_certs.h"
#include "tests/server/worker_process.h"
#include "tests/server/worker_test_specs.h"

namespace driftscope {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double CpuSeconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// CPU time of every thread of this process (the client end).
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return CpuSeconds(u);
}

double ThreadCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_THREAD, &u);
  return CpuSeconds(u);
}

int64_t PageFaults() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

std::unique_ptr<testing::WorkerProcess> StartWorkerOrExit(
    std::vector<std::string> flags) {
  flags.push_back("--max_concurrent_runs=4");
  auto w = testing::WorkerProcess::Start(std::move(flags));
  if (!w.ok()) {
    std::fprintf(stderr, "cannot start %s: %s\n",
                 testing::WorkerBinary().c_str(),
                 std::string(w.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(w);
}

// Killed when the program exits.
testing::WorkerProcess& Worker() {
  static std::unique_ptr<testing::WorkerProcess> worker =
      StartWorkerOrExit({"--insecure"});
  return *worker;
}

// A second worker serving TLS with a throwaway self-signed certificate (made
// by the openssl command), and the client options that trust it.
struct TlsWorkerAndOptions {
  std::unique_ptr<testing::WorkerProcess> worker;
  WorkerClientOptions options;
};
TlsWorkerAndOptions& TlsWorker() {
  static TlsWorkerAndOptions* const tls = [] {
    char dir_template[] = "/tmp/worker_bench_tls.XXXXXX";
    const char* dir = mkdtemp(dir_template);
    const std::string d = dir == nullptr ? "/tmp" : dir;
    if (!testing::MakeSelfSignedCert(d)) {
      std::fprintf(stderr, "openssl could not make a certificate\n");
      std::exit(1);
    }
    auto* t = new TlsWorkerAndOptions;
    t->worker = StartWorkerOrExit(
        {"--tls_cert=" + d + "/cert.pem", "--tls_key=" + d + "/key.pem"});
    t->options.address = t->worker->address();
    t->options.tls_root_cert_pem = testing::ReadFile(d + "/cert.pem");
    return t;
  }();
  return *tls;
}

// CPU time of the worker process so far (clock ticks: 10 ms resolution, so
// it is read around whole benchmark loops or long streams only).
double WorkerCpuSeconds(int pid = Worker().pid()) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields after "(comm)": state is field 3, utime 14 and stime 15.
  const char* p = std::strrchr(buf, ')');
  unsigned long long utime = 0, stime = 0;
  if (p == nullptr ||
      std::sscanf(p + 2,
                  "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                  &utime, &stime) != 2) {
    return 0;
  }
  return static_cast<double>(utime + stime) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

WorkerClientOptions ClientOptions() {
  WorkerClientOptions o;
  o.address = Worker().address();
  o.insecure = true;
  return o;
}

std::unique_ptr<WorkerClient> Client() {
  return *WorkerClient::Create(ClientOptions());
}

// Outputs of `mib` MiB for almost no compute: Dense(256) over 100 steps.
JobSpec LargeOutputJob(int mib) {
  return testing::LargeOutputSpec(mib * (1 << 20) / (100 * 256 * 4));
}

RemoteRunOptions OutputsOnly() {
  RemoteRunOptions r;
  r.capture = RemoteCapture{true, false, false, false, false, 0};
  return r;
}

NdArray Ramp(int64_t mib) {
  NdArray a(DType::kFloat32, {mib << 18});
  for (int64_t i = 0; i < a.size(); ++i) a.data<float>()[i] = 0.25f * i;
  return a;
}

// The per-byte work of streaming without the network: chunking, crc32c and
// sha256 on the sender, checks and copies on the receiver. The CPU column
// is this thread's; both hashes run on helper threads.
void BM_ChunkRoundTrip(benchmark::State& state) {
  const NdArray a = Ramp(state.range(0));
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

// Floors of the per-byte work: each end hashes every byte once.
void BM_Crc32c(benchmark::State& state) {
  std::string bytes(1 << 20, 'x');
  for (auto _ : state)
    benchmark::DoNotOptimize(Crc32c(bytes.data(), bytes.size()));
  state.SetBytesProcessed(state.iterations() * bytes.size());
}
BENCHMARK(BM_Crc32c);

void BM_Sha256(benchmark::State& state) {
  std::string bytes(1 << 20, 'x');
  Sha256 sha;
  for (auto _ : state) {
    sha.Update(bytes.data(), bytes.size());
    benchmark::DoNotOptimize(sha.Digest());
  }
  state.SetBytesProcessed(state.iterations() * bytes.size());
}
BENCHMARK(BM_Sha256);

// The receiver's first touch of a result array: a new NdArray written once,
// as it comes from the array block cache in a process that has received
// before (BM_ArrayFromCache), and the same bytes on freshly mapped pages
// (BM_FreshPages: the page faults the cache saves).
void BM_ArrayFromCache(benchmark::State& state) {
  const int64_t mib = state.range(0);
  for (auto _ : state) {
    NdArray a = NdArray::Uninitialized(DType::kFloat32, {mib << 18});
    std::memset(a.raw(), 1, static_cast<size_t>(a.nbytes()));
    benchmark::DoNotOptimize(a.raw());
  }
  state.SetBytesProcessed(state.iterations() * (mib << 20));
}
BENCHMARK(BM_ArrayFromCache)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_FreshPages(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  for (auto _ : state) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      break;
    }
    std::memset(p, 1, bytes);
    benchmark::DoNotOptimize(p);
    munmap(p, bytes);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_FreshPages)->Arg(256)->Unit(benchmark::kMillisecond);

// Streaming alone: the stub read directly, timed from the first tensor chunk
// to the end of the call, so the eval compute before the first chunk is left
// out. Each chunk is read raw, checked and reassembled as WorkerClient does.
// CPU per byte of each end: `sender_ns_per_byte` (the worker process),
// `receiver_ns_per_byte` (this one), and `reader_ns_per_byte`, the
// receiving thread alone (its SHA-256 runs beside it): with a core each, the
// slower of the ends' critical paths bounds the rate.
void StreamOnly(benchmark::State& state, const WorkerClientOptions& options,
                int worker_pid) {
  const JobSpec spec = LargeOutputJob(static_cast<int>(state.range(0)));
  const std::shared_ptr<grpc::Channel> channel = *MakeWorkerChannel(options);
  v1::RunRequest request;
  *request.mutable_spec() = JobSpecToProto(spec);
  request.mutable_capture()->set_outputs(true);
  int64_t bytes = 0, faults = 0;
  double receiver = 0, reader = 0, sender = 0, seconds = 0;
  for (auto _ : state) {
    grpc::ClientContext ctx;
    auto reader_stream = StartRawRun(channel, &ctx, request);
    grpc::ByteBuffer buffer;
    ReceivedEvent received;
    Clock::time_point first;
    double receiver0 = 0, reader0 = 0, sender0 = 0;
    int64_t faults0 = 0;
    bool started = false;
    TensorAssembler assembler;
    while (reader_stream->Read(&buffer)) {
      if (!ParseRunEvent(buffer, &received).ok()) {
        state.SkipWithError("bad event");
      }
      const v1::RunEvent& event = received.event;
      if (event.has_tensor_chunk()) {
        if (!started) {
          first = Clock::now();
          receiver0 = ProcessCpuSeconds();
          reader0 = ThreadCpuSeconds();
          sender0 = WorkerCpuSeconds(worker_pid);
          faults0 = PageFaults();
        }
        started = true;
        if (!assembler.Add(event.tensor_chunk(), received.data).ok()) {
          state.SkipWithError("bad chunk");
        }
        for (const auto& piece : received.data) bytes += piece.size();
      }
    }
    if (!reader_stream->Finish().ok()) state.SkipWithError("run failed");
    const Clock::time_point end = Clock::now();
    receiver += ProcessCpuSeconds() - receiver0;
    reader += ThreadCpuSeconds() - reader0;
    sender += WorkerCpuSeconds(worker_pid) - sender0;
    faults += PageFaults() - faults0;
    if (!assembler.Finish().ok()) state.SkipWithError("incomplete tensor");
    state.SetIterationTime(Seconds(end - first));
    seconds += Seconds(end - first);
  }
  const double b = static_cast<double>(bytes);
  state.SetBytesProcessed(bytes);
  // bytes_per_second above counts in binary units (M = 2^20); the target is
  // in decimal GB/s.
  state.counters["GB_per_s"] = b / seconds / 1e9;
  state.counters["sender_ns_per_byte"] = 1e9 * sender / b;
  state.counters["receiver_ns_per_byte"] = 1e9 * receiver / b;
  state.counters["reader_ns_per_byte"] = 1e9 * reader / b;
  // 256 per MiB would be a fresh result array (4 KiB pages); with the array
  // block cache the array reuses the previous one's pages.
  state.counters["receiver_faults_per_mib"] =
      static_cast<double>(faults) / (b / (1 << 20));
}
void BM_StreamOnly(benchmark::State& state) {
  StreamOnly(state, ClientOptions(), Worker().pid());
}
BENCHMARK(BM_StreamOnly)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->MinTime(2);

// The same over TLS (what a deployment across hosts runs): encryption and
// its copies on both ends, on top of the same work.
void BM_StreamOnlyTls(benchmark::State& state) {
  StreamOnly(state, TlsWorker().options, TlsWorker().worker->pid());
}
BENCHMARK(BM_StreamOnlyTls)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->MinTime(2);

// A remote run against the same run in-process, alternated in one loop
// (the order flips every iteration) so changes in load hit both. Reports
// `remote_over_inprocess` (ratio of the summed wall times), `median_ratio`
// (median of the per-iteration ratios: robust to the load spikes of a shared
// machine) and `cpu_ratio` (CPU time of both ends of the remote run against
// the in-process run's: what the remote run costs where a core is free,
// whatever the load here).
void RemoteVsInProcess(benchmark::State& state, const JobSpec& spec,
                       const RemoteRunOptions& remote) {
  const Profile profile = *Profile::Parse("fp32");
  auto client = Client();
  double wall[2] = {0, 0}, cpu[2] = {0, 0};
  std::vector<double> ratios;
  int64_t n = 0;
  const double worker0 = WorkerCpuSeconds();
  for (auto _ : state) {
    double now[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const int which = static_cast<int>((n + k) % 2);  // 0 local, 1 remote
      const double cpu0 = ProcessCpuSeconds();
      const Clock::time_point t0 = Clock::now();
      const bool ok = which == 0 ? RunJob(spec, profile).ok()
                                 : client->Run(spec, "fp32", {}, remote).ok();
      now[which] = Seconds(Clock::now() - t0);
      if (!ok) state.SkipWithError("run failed");
      wall[which] += now[which];
      cpu[which] += ProcessCpuSeconds() - cpu0;
    }
    state.SetIterationTime(now[1]);
    ratios.push_back(now[1] / now[0]);
    ++n;
  }
  const double worker = WorkerCpuSeconds() - worker0;
  std::sort(ratios.begin(), ratios.end());
  state.counters["inprocess_ms"] =
      benchmark::Counter(1e3 * wall[0], benchmark::Counter::kAvgIterations);
  state.counters["remote_over_inprocess"] = wall[1] / wall[0];
  if (!ratios.empty()) {
    state.counters["median_ratio"] = ratios[ratios.size() / 2];
  }
  state.counters["cpu_ratio"] = (cpu[1] + worker) / cpu[0];
}

void BM_DefaultJobRemoteVsInProcess(benchmark::State& state) {
  RemoteVsInProcess(state, DefaultJobSpec(), RemoteRunOptions{});
}
BENCHMARK(BM_DefaultJobRemoteVsInProcess)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->MinTime(5);

// The whole remote run of a large result (compute, then 256 MiB streamed)
// against the same run in-process.
void BM_LargeOutputRemoteVsInProcess(benchmark::State& state) {
  RemoteVsInProcess(state, LargeOutputJob(static_cast<int>(state.range(0))),
                    OutputsOnly());
}
BENCHMARK(BM_LargeOutputRemoteVsInProcess)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->MinTime(5);

}  // namespace
}  // namespace driftscope

BENCHMARK_MAIN();
