// CoordinatorClient: the client side of driftscope.v1.Coordinator (DESIGN
// §2, §8), used by the `driftscope` job commands and by tests.
//
// Every call has a deadline. Calls that are safe to repeat (all but the
// streams, and SubmitJob thanks to its client request id) are retried with
// exponential backoff when they fail with UNAVAILABLE. WatchJob reconnects
// after a broken stream (the coordinator restarted: UNAVAILABLE, or the
// CANCELLED a server gives the calls still open at its shutdown deadline):
// the first event of a new stream is a snapshot, so nothing is missed.
// FetchResult reassembles a run's tensors from 1 MiB chunks and checks every
// chunk's crc32c, every tensor's sha256, and the names, dtypes, shapes and
// digests announced in the run's summary: a corrupted or truncated stream is
// DATA_LOSS naming the tensor; FetchFingerprints checks its answer against the
// summary's first and last fingerprint. Errors keep the coordinator's gRPC code
// and message, prefixed with its address.
//
// Safe for concurrent use: calls share one channel and own everything else.
#ifndef DRIFTSCOPE_CLIENT_LIB_COORDINATOR_CLIENT_H_
#define DRIFTSCOPE_CLIENT_LIB_COORDINATOR_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/lib/grpc_channel.h"
#include "driftscope/v1/coordinator.pb.h"
#include "engine/train/run_result.h"
#include "proto/lib/run_records.h"  // IsTerminal

namespace grpc {
class Channel;
}  // namespace grpc

namespace driftscope {

struct CoordinatorClientOptions {
  ChannelOptions channel;
  absl::Duration call_timeout = absl::Seconds(30);   // each unary call
  absl::Duration fetch_timeout = absl::Minutes(10);  // one FetchResult
  absl::Duration watch_timeout = absl::Hours(24);    // a whole WatchJob
  // Attempts of a unary call or FetchResult that fails with UNAVAILABLE;
  // the wait doubles from initial_backoff after each (at most max_backoff).
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(2);
  // WatchJob keeps reconnecting for this long after the last event it got.
  absl::Duration watch_reconnect = absl::Seconds(60);
};

// A random id for SubmitJobRequest.client_request_id ("req-" + 32 hex).
std::string RandomRequestId();

class CoordinatorClient {
 public:
  // InvalidArgument for inconsistent options (no address, half an mTLS
  // pair). Connects lazily: an unreachable coordinator shows up on the first
  // call as UNAVAILABLE.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Create(
      const CoordinatorClientOptions& options);

  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  const std::string& address() const { return options_.channel.address; }

  // Gives the request a random client_request_id when it has none and keeps
  // it on every retry, so a retried submission never makes a second job.
  absl::StatusOr<v1::Job> SubmitJob(v1::SubmitJobRequest request) const;
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) const;
  absl::StatusOr<v1::ListJobsResponse> ListJobs(
      const v1::ListJobsRequest& request) const;
  absl::StatusOr<std::vector<v1::WorkerStatus>> ListWorkers() const;
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id) const;

  // The coordinator's own drift report (FAILED_PRECONDITION until the
  // reference run has succeeded).
  absl::StatusOr<v1::DriftReport> GetReport(
      const v1::GetReportRequest& request) const;

  // Streams the job's events to `on_event` (on this thread) until the job is
  // terminal, and returns that state. on_event returning false stops the
  // watch early (CANCELLED).
  absl::StatusOr<v1::JobState> WatchJob(
      const std::string& job_id,
      const std::function<bool(const v1::JobEvent&)>& on_event) const;

  // The tensors `names` (empty: every tensor in run.summary) of a finished
  // run, verified as described above, in the order of run.summary.tensors.
  // FailedPrecondition when the run has no summary (not finished).
  absl::StatusOr<std::vector<NamedArray>> FetchResult(
      const std::string& job_id, const v1::RunInfo& run,
      const std::vector<std::string>& names = {}) const;

  // Every weight fingerprint of a finished run, in step order
  // (FetchFingerprints). DataLoss when the first or the last differs from
  // the run's summary, or the steps are not increasing;
  // FailedPrecondition when the run has no summary.
  absl::StatusOr<std::vector<v1::Fingerprint>> FetchFingerprints(
      const std::string& job_id, const v1::RunInfo& run) const;

 private:
  CoordinatorClient(const CoordinatorClientOptions& options,
                    std::shared_ptr<grpc::Channel> channel);

  // Calls `attempt` until it succeeds, fails with another code than
  // UNAVAILABLE, or max_attempts is reached; prefixes errors.
  absl::Status Retry(const std::function<absl::Status()>& attempt) const;
  absl::Status Prefixed(const absl::Status& status) const;
  absl::StatusOr<std::vector<NamedArray>> FetchOnce(
      const v1::FetchResultRequest& request) const;

  const CoordinatorClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_LIB_COORDINATOR_CLIENT_H_
