// WorkerRegistration: keeps a worker registered with a driftscope
// coordinator (DESIGN §2, §8).
//
// RegisterWorker with this worker's WorkerInfo, a secret chosen at start
// (which keeps its name with it while its lease lives) and the token it
// accepts from the coordinator, then a Heartbeat every
// lease_seconds/3 carrying the number of running runs and the draining flag.
// A lease the coordinator no longer knows (NOT_FOUND) is replaced by
// registering again; any other failure (the coordinator is down, restarting,
// unreachable) is retried with capped exponential backoff. Every call runs
// on the registration's own thread with a deadline, so the worker keeps
// serving Describe and Run whatever the coordinator does.
//
// Thread-safe: BeginDraining() and Stop() may be called from any thread.
#ifndef DRIFTSCOPE_SERVER_WORKER_REGISTRATION_H_
#define DRIFTSCOPE_SERVER_WORKER_REGISTRATION_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "driftscope/v1/coordinator.pb.h"
#include "driftscope/v1/worker.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace driftscope {

struct WorkerRegistrationOptions {
  // Coordinator "HOST:PORT"; empty: no registration.
  std::string coordinator;
  // The coordinator channel is TLS, verified against the PEM CA bundle in
  // `tls_ca_file` (empty: the system roots), unless plaintext is asked for.
  bool insecure = false;
  std::string tls_ca_file;
  // mTLS: this worker's client certificate chain and key (PEM files).
  std::string tls_cert_file, tls_key_file;
  // Name to verify in the coordinator's certificate instead of its host.
  std::string tls_server_name;
  // Bearer token for the coordinator, given directly or as a file (one of
  // the two; the file's trailing whitespace is dropped).
  std::string token;
  std::string token_file;
  // RegisterWorkerRequest.worker_secret; empty: a random one per start.
  std::string worker_secret;
  // RegisterWorkerRequest.worker_token: the token this worker accepts from
  // the coordinator (WorkerServer makes one per start); empty: none sent.
  std::string worker_token;
  // WorkerInfo.name; empty: "HOSTNAME:PORT".
  std::string name;
  // WorkerInfo.address, the address the coordinator dials; empty: the
  // listen address, or "HOSTNAME:PORT" when it listens on a wildcard.
  std::string advertise_address;
  // "KEY=VALUE" placement labels ("gpu=a100").
  std::vector<std::string> labels;
  // --device: the GPU the worker's cuda profiles run on (-1: GPU 0). A
  // worker that offers cuda presets adds labels for it (GpuLabels).
  int cuda_device = -1;
  // Wait after the first failed call; doubles after each, up to
  // max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration register_deadline = absl::Seconds(5);
  // Receives one line per state change (registered, coordinator
  // unreachable, lease lost, draining reported). Default: stderr.
  std::function<void(absl::string_view)> log;
};

// Labels for GPU `device` of `env` (-1: GPU 0): gpu (product name),
// gpu_index, gpu_cc (compute capability "8.0") and gpu_memory_mib. Empty
// when there is no such GPU.
std::vector<std::pair<std::string, std::string>> GpuLabels(
    const v1::Environment& env, int device);

// The WorkerInfo this worker registers with: name, advertised address and
// labels from `options`, the rest from `description` (Describe's answer).
// A worker that offers cuda presets also gets GpuLabels for its GPU, unless
// --labels gives those keys itself.
// `bound_address` is the "HOST:PORT" the worker listens on, with the port
// actually bound; `hostname` stands in for wildcard hosts and names.
// InvalidArgument naming the flag for a malformed label or address.
absl::StatusOr<v1::WorkerInfo> BuildWorkerInfo(
    const WorkerRegistrationOptions& options, absl::string_view bound_address,
    absl::string_view hostname, const v1::DescribeResponse& description);

// This machine's host name ("localhost" when it has none).
std::string LocalHostName();

class WorkerRegistration {
 public:
  // Checks the options (labels, TLS files, token) and starts registering in
  // the background; an unreachable coordinator is not an error here.
  // `running_runs` is called from the registration thread before each
  // heartbeat and must stay callable until Stop() returns.
  static absl::StatusOr<std::unique_ptr<WorkerRegistration>> Start(
      const WorkerRegistrationOptions& options, absl::string_view bound_address,
      const v1::DescribeResponse& description,
      std::function<int()> running_runs);

  ~WorkerRegistration();  // Stop()
  WorkerRegistration(const WorkerRegistration&) = delete;
  WorkerRegistration& operator=(const WorkerRegistration&) = delete;

  const v1::WorkerInfo& info() const { return info_; }

  // From now on heartbeats say draining=true; one is sent right away. A
  // worker not registered yet does not register any more.
  void BeginDraining();

  // Ends the background thread. When draining was asked for but no
  // coordinator has acknowledged it yet, one last heartbeat says so.
  // Idempotent.
  void Stop();

 private:
  WorkerRegistration(const WorkerRegistrationOptions& options,
                     v1::WorkerInfo info, std::string token,
                     std::shared_ptr<grpc::Channel> channel,
                     std::function<int()> running_runs);
  void Loop();
  absl::Status Register(std::string* lease_id, int* lease_seconds);
  absl::Status Heartbeat(const std::string& lease_id, bool draining,
                         absl::Duration deadline, int* lease_seconds);
  void Log(absl::string_view line) const;

  const WorkerRegistrationOptions options_;
  const v1::WorkerInfo info_;
  const std::string token_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::function<int()> running_runs_;
  std::vector<std::string> replaced_labels_;  // registration thread only

  absl::Mutex mu_;
  absl::CondVar wake_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_WORKER_REGISTRATION_H_
