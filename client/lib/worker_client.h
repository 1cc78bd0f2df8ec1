// WorkerClient: runs jobs on a remote driftscope-worker (driftscope.v1.Worker)
// and returns the same engine types an in-process run gives.
//
// Run() mirrors RunJob() (engine/train/trainer.h): same JobSpec, a profile,
// the same RunOptions (progress callback, cancel flag, supplied tensors,
// initial weights), and a RunResult whose tensors were reassembled from 1 MiB
// chunks with every chunk's crc32c and every tensor's sha256 checked. A
// corrupted or truncated stream is DATA_LOSS naming the tensor; worker
// errors keep their gRPC code and message. Calls that fail with UNAVAILABLE
// before the worker accepted anything are retried with exponential backoff.
//
// Safe for concurrent use: calls share one channel and own everything else.
#ifndef DRIFTSCOPE_CLIENT_LIB_WORKER_CLIENT_H_
#define DRIFTSCOPE_CLIENT_LIB_WORKER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/lib/grpc_channel.h"
#include "engine/env/environment.h"
#include "engine/job/job_spec.h"
#include "engine/train/run_result.h"
#include "engine/train/trainer.h"

namespace driftscope {

// Where and how to connect (address, TLS, token: ChannelOptions), plus the
// worker calls' deadlines and retries.
struct WorkerClientOptions : ChannelOptions {
  absl::Duration describe_deadline = absl::Seconds(30);
  absl::Duration run_deadline = absl::Hours(24);  // the whole stream
  // Attempts for a call that fails with UNAVAILABLE before any event; the
  // wait doubles from initial_backoff after each.
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(200);
};

// Which results come back, as Capture in worker.proto. Fingerprints always.
struct RemoteCapture {
  bool outputs = true, losses = true, final_weights = true,
       epoch_outputs = true, states = true;
  int progress_every_steps = 0;  // 0: one progress event per epoch
};

struct RemoteRunOptions {
  std::string run_id;  // empty: a random one
  RemoteCapture capture;
};

// What a worker says it is (DescribeResponse).
struct WorkerDescription {
  Environment environment;
  std::string default_profile;
  std::vector<std::string> presets;
  int max_concurrent_runs = 0;
  int64_t max_memory_bytes = 0;  // for its runs together; 0: no limit
};

// The channel WorkerClient uses: credentials from `options` and the flow
// control settings for bulk results. InvalidArgument as WorkerClient::Create.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeWorkerChannel(
    const WorkerClientOptions& options);

class WorkerClient {
 public:
  // InvalidArgument for inconsistent options (no address, half an mTLS
  // pair, a token with a character no header can carry). Connects lazily: an
  // unreachable worker shows up on the first call.
  static absl::StatusOr<std::unique_ptr<WorkerClient>> Create(
      const WorkerClientOptions& options);

  WorkerClient(const WorkerClient&) = delete;
  WorkerClient& operator=(const WorkerClient&) = delete;

  absl::StatusOr<WorkerDescription> Describe() const;

  // Runs `spec` under `profile` ("" = the worker's default). on_progress is
  // called on this thread; setting *options.cancel cancels the call, and the
  // worker stops the run within one training step (result: Cancelled).
  absl::StatusOr<RunResult> Run(const JobSpec& spec, absl::string_view profile,
                                const RunOptions& options = {},
                                const RemoteRunOptions& remote = {}) const;

 private:
  explicit WorkerClient(const WorkerClientOptions& options,
                        std::shared_ptr<grpc::Channel> channel);
  absl::StatusOr<RunResult> RunOnce(const JobSpec& spec,
                                    absl::string_view profile,
                                    const RunOptions& options,
                                    const RemoteRunOptions& remote,
                                    bool* accepted) const;

  const WorkerClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_LIB_WORKER_CLIENT_H_
