// Coordinator benchmark (issue 6, DESIGN §11): a driftscope-coordinator and
// 8 driftscope-workers as real processes on loopback, the workers
// registering themselves. 1,000 small jobs are submitted concurrently and
// waited for; the same runs are also sent straight to the workers, with
// the same per-worker concurrency, as the baseline measured in this run.
//
// Printed: jobs and runs completed, both wall times, the coordinator's
// scheduling overhead per run ((coordinator wall - direct wall) / runs), its
// CPU time per run, and its peak RSS (VmHWM). A plain program rather than a
// Google Benchmark: one measurement of a whole system, not a loop.
//
//   build/bench/coordinator_bench [--jobs=1000] [--workers=8] [--slots=2]
//       [--placement=all|one] [--submitters=32]
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/lib/worker_client.h"
#include "driftscope/v1/coordinator.grpc.pb.h"
#include "engine/job/job_spec.h"
#include "proto/lib/job_convert.h"

extern char** environ;

ABSL_FLAG(int, jobs, 1000, "jobs submitted concurrently");
ABSL_FLAG(int, workers, 8, "worker processes");
ABSL_FLAG(int, slots, 2, "--max_concurrent_runs of each worker");
ABSL_FLAG(std::string, placement, "all",
          "all: every job runs on every worker (jobs x workers runs, the "
          "way a drift job is placed); one: job i runs on worker i % N");
ABSL_FLAG(int, submitters, 32, "client threads calling SubmitJob");
ABSL_FLAG(std::string, tmp_dir, "/tmp",
          "where the coordinator's store and the daemons' logs go (/dev/shm: "
          "a store whose fsyncs cost nothing)");
ABSL_FLAG(std::string, bin_dir, DRIFTSCOPE_BINARY_DIR,
          "build directory holding server/driftscope-{worker,coordinator}");

namespace driftscope {
namespace {

// A daemon started with --listen=127.0.0.1:0; its address is read from the
// first stdout line. Killed (SIGKILL) when destroyed.
class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(
      std::vector<std::string> args, const std::string& log_file) {
    auto d = std::unique_ptr<Daemon>(new Daemon());
    int out[2];
    if (pipe(out) != 0) return absl::InternalError("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&d->pid_, args[0].c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    d->fd_ = out[0];
    if (rc != 0) {
      d->pid_ = -1;
      return absl::InternalError(absl::StrCat("cannot start ", args[0]));
    }
    std::string line;
    while (line.find('\n') == std::string::npos) {
      pollfd p{d->fd_, POLLIN, 0};
      char buf[256];
      if (poll(&p, 1, 30000) <= 0) {
        return absl::DeadlineExceededError(args[0] + " printed no address");
      }
      const ssize_t n = read(d->fd_, buf, sizeof(buf));
      if (n <= 0) {
        return absl::UnavailableError(
            absl::StrCat(args[0], " exited; see ", log_file));
      }
      line.append(buf, static_cast<size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (!absl::StartsWith(line, "listening on ")) {
      return absl::InternalError("unexpected first line: " + line);
    }
    d->address_ = line.substr(13);
    return d;
  }
  ~Daemon() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

 private:
  Daemon() = default;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string address_;
};

// A /proc/PID/status field in kB ("VmHWM"), or -1.
long ProcStatusKb(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) {
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

// User + system CPU time of a process.
absl::Duration ProcCpuTime(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stol(f);
    if (i == 15) stime = std::stol(f);
  }
  return absl::Seconds(static_cast<double>(utime + stime) /
                       static_cast<double>(sysconf(_SC_CLK_TCK)));
}

// The tiny job: SimpleRNN(4) over T=4, 16 samples, one epoch.
JobSpec TinyJob() {
  JobSpec s = DefaultJobSpec();
  s.model.timesteps = 4;
  s.model.features = 1;
  s.model.layers.assign(1, LayerSpec{});
  s.model.layers[0].kind = LayerKind::kSimpleRnn;
  s.model.layers[0].units = 4;
  s.model.layers[0].return_sequences = true;
  s.data.samples = 16;
  s.data.eval_samples = 16;
  s.training.epochs = 1;
  s.training.batch_size = 16;
  return s;
}

void Prepare(grpc::ClientContext* ctx, absl::Duration deadline) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
}

// Runs `work(i)` for i in [0, n) on `threads` threads.
template <typename F>
void ParallelFor(int n, int threads, F work) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) work(i);
    });
  }
  for (std::thread& t : pool) t.join();
}

struct Measurement {
  int runs_ok = 0;
  int runs = 0;
  absl::Duration wall;
};

// The baseline: every run straight to its worker, `slots` at a time per
// worker, as the coordinator would dispatch them.
Measurement RunDirect(const std::vector<std::string>& workers, int jobs,
                      bool all, int slots, const JobSpec& spec,
                      int progress_every) {
  std::vector<std::unique_ptr<WorkerClient>> clients;
  for (const std::string& a : workers) {
    WorkerClientOptions o;
    o.address = a;
    o.insecure = true;
    clients.push_back(*WorkerClient::Create(o));
  }
  const int n = static_cast<int>(workers.size());
  std::atomic<int> ok{0};
  std::vector<std::atomic<int>> next(n);
  const absl::Time start = absl::Now();
  std::vector<std::thread> pool;
  for (int w = 0; w < n; ++w) {
    const int runs_here = all ? jobs : (jobs - w + n - 1) / n;
    for (int s = 0; s < slots; ++s) {
      pool.emplace_back([&, w, runs_here] {
        while (next[w]++ < runs_here) {
          RemoteRunOptions remote;
          remote.capture.progress_every_steps = progress_every;
          if (clients[w]->Run(spec, "", {}, remote).ok()) ++ok;
        }
      });
    }
  }
  for (std::thread& t : pool) t.join();
  Measurement m;
  m.wall = absl::Now() - start;
  m.runs_ok = ok;
  m.runs = all ? jobs * n : jobs;
  return m;
}

// Every job through the coordinator: SubmitJob from `submitters` threads at
// once, then wait until every job is terminal. The wall time ends at the
// last job's finished_unix_ms.
absl::StatusOr<Measurement> RunThroughCoordinator(
    v1::Coordinator::Stub* stub, const std::vector<std::string>& names,
    const std::string& tag, int jobs, bool all, int submitters,
    const JobSpec& spec, int* jobs_succeeded) {
  const v1::JobSpec proto = JobSpecToProto(spec);
  std::atomic<int> submit_errors{0};
  std::vector<std::string> job_ids(jobs);
  const absl::Time start = absl::Now();
  ParallelFor(jobs, submitters, [&](int i) {
    v1::SubmitJobRequest r;
    r.set_client_request_id(absl::StrCat(tag, "-", i));
    *r.mutable_spec() = proto;
    if (!all) r.mutable_placement()->add_workers(names[i % names.size()]);
    grpc::ClientContext ctx;
    Prepare(&ctx, absl::Minutes(5));
    v1::Job job;
    const grpc::Status s = stub->SubmitJob(&ctx, r, &job);
    if (!s.ok()) {
      if (submit_errors++ == 0) {
        std::fprintf(stderr, "SubmitJob: %s\n", s.error_message().c_str());
      }
      return;
    }
    job_ids[i] = job.job_id();
  });
  if (submit_errors > 0) {
    return absl::InternalError(
        absl::StrCat(submit_errors.load(), " SubmitJob calls failed"));
  }
  const absl::Duration submit_wall = absl::Now() - start;
  std::fprintf(stderr, "submitted %d jobs in %.2f s\n", jobs,
               absl::ToDoubleSeconds(submit_wall));

  Measurement m;
  int64_t last_finished_ms = 0;
  for (int i = 0; i < jobs; ++i) {
    for (;;) {
      grpc::ClientContext ctx;
      Prepare(&ctx, absl::Seconds(30));
      v1::GetJobRequest r;
      r.set_job_id(job_ids[i]);
      v1::Job job;
      const grpc::Status s = stub->GetJob(&ctx, r, &job);
      if (!s.ok()) return absl::InternalError("GetJob: " + s.error_message());
      if (job.finished_unix_ms() != 0) {
        last_finished_ms = std::max(last_finished_ms, job.finished_unix_ms());
        if (job.state() == v1::JOB_SUCCEEDED) ++*jobs_succeeded;
        for (const v1::RunInfo& run : job.runs()) {
          ++m.runs;
          if (run.state() == v1::RUN_SUCCEEDED) ++m.runs_ok;
        }
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  m.wall = absl::FromUnixMillis(last_finished_ms) - start;
  return m;
}

int Main() {
  const int jobs = absl::GetFlag(FLAGS_jobs);
  const int n = absl::GetFlag(FLAGS_workers);
  const int slots = absl::GetFlag(FLAGS_slots);
  const bool all = absl::GetFlag(FLAGS_placement) == "all";
  if (!all && absl::GetFlag(FLAGS_placement) != "one") {
    std::fprintf(stderr, "--placement must be all or one\n");
    return 2;
  }
  const std::string bin = absl::GetFlag(FLAGS_bin_dir) + "/server/";
  std::string tmpl = absl::GetFlag(FLAGS_tmp_dir) + "/coordinator_bench.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "cannot create a directory in %s\n",
                 absl::GetFlag(FLAGS_tmp_dir).c_str());
    return 1;
  }
  const std::string dir = tmpl;

  auto coordinator = Daemon::Start(
      {bin + "driftscope-coordinator", "--listen=127.0.0.1:0", "--insecure",
       "--worker_insecure", "--store_dir=" + dir + "/store"},
      dir + "/coordinator.log");
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<Daemon>> workers;
  std::vector<std::string> addresses, names;
  for (int i = 0; i < n; ++i) {
    const std::string name = absl::StrCat("bench-worker-", i);
    auto w = Daemon::Start(
        {bin + "driftscope-worker", "--listen=127.0.0.1:0", "--insecure",
         "--coordinator=" + (*coordinator)->address(), "--coordinator_insecure",
         "--name=" + name, absl::StrCat("--max_concurrent_runs=", slots)},
        absl::StrCat(dir, "/", name, ".log"));
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
      return 1;
    }
    addresses.push_back((*w)->address());
    names.push_back(name);
    workers.push_back(*std::move(w));
  }
  auto stub = v1::Coordinator::NewStub(grpc::CreateChannel(
      (*coordinator)->address(), grpc::InsecureChannelCredentials()));
  // Wait until every worker registered and is available.
  for (int available = 0; available < n;) {
    absl::SleepFor(absl::Milliseconds(100));
    grpc::ClientContext ctx;
    Prepare(&ctx, absl::Seconds(5));
    v1::ListWorkersResponse r;
    if (!stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &r).ok()) continue;
    available = 0;
    for (const v1::WorkerStatus& w : r.workers()) {
      available += w.state() == v1::WORKER_AVAILABLE;
    }
  }

  const JobSpec spec = TinyJob();
  // As the coordinator asks: about 50 progress events per run.
  const int64_t steps = 1;  // 16 samples, batch 16, one epoch
  const int progress_every = static_cast<int>(std::max<int64_t>(1, steps / 50));
  // Warm both paths up (connections, page cache, first-run allocations).
  RunDirect(addresses, n, false, 1, spec, progress_every);
  {
    int ignored = 0;
    if (!RunThroughCoordinator(stub.get(), names, "warm-up", n, false, n, spec,
                               &ignored)
             .ok()) {
      return 1;
    }
  }

  const Measurement direct =
      RunDirect(addresses, jobs, all, slots, spec, progress_every);
  const absl::Duration cpu_before = ProcCpuTime((*coordinator)->pid());
  int jobs_succeeded = 0;
  absl::StatusOr<Measurement> via = RunThroughCoordinator(
      stub.get(), names, "bench", jobs, all, absl::GetFlag(FLAGS_submitters),
      spec, &jobs_succeeded);
  if (!via.ok()) {
    std::fprintf(stderr, "%s\n", via.status().ToString().c_str());
    return 1;
  }
  const absl::Duration cpu = ProcCpuTime((*coordinator)->pid()) - cpu_before;
  const long hwm_kb = ProcStatusKb((*coordinator)->pid(), "VmHWM");

  const double overhead_ms =
      absl::ToDoubleMilliseconds(via->wall - direct.wall) / via->runs;
  std::printf(
      "coordinator_bench: %d jobs x %s (%d runs), %d workers x %d slots, "
      "SimpleRNN(4) T=4, 16 samples, 1 epoch\n",
      jobs, all ? "every worker" : "one worker", via->runs, n, slots);
  std::printf("%-40s %12s\n", "", "value");
  std::printf("%-40s %7d/%d\n", "jobs succeeded (coordinator)", jobs_succeeded,
              jobs);
  std::printf("%-40s %7d/%d\n", "runs succeeded (coordinator)", via->runs_ok,
              via->runs);
  std::printf("%-40s %7d/%d\n", "runs succeeded (direct)", direct.runs_ok,
              direct.runs);
  std::printf("%-40s %12.2f\n", "wall s, direct to workers (baseline)",
              absl::ToDoubleSeconds(direct.wall));
  std::printf("%-40s %12.2f\n", "wall s, through the coordinator",
              absl::ToDoubleSeconds(via->wall));
  std::printf(
      "%-40s %12.2f\n", "ratio coordinator / direct",
      absl::ToDoubleSeconds(via->wall) / absl::ToDoubleSeconds(direct.wall));
  std::printf("%-40s %12.3f\n", "scheduling overhead ms per run", overhead_ms);
  std::printf("%-40s %12.3f\n", "coordinator CPU ms per run",
              absl::ToDoubleMilliseconds(cpu) / via->runs);
  std::printf("%-40s %12.1f\n", "coordinator peak RSS MiB (VmHWM)",
              hwm_kb / 1024.0);
  std::fflush(stdout);
  workers.clear();
  coordinator->reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  const bool complete = jobs_succeeded == jobs && via->runs_ok == via->runs &&
                        direct.runs_ok == direct.runs;
  return complete ? 0 : 1;
}

}  // namespace
}  // namespace driftscope

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return driftscope::Main();
}
