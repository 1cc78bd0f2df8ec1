// WorkerRegistry: the workers a coordinator knows, how they came (a
// RegisterWorker lease or the static --workers list) and whether they take
// runs (DESIGN §2, §8).
//
// A registered worker stays AVAILABLE while it heartbeats within its lease;
// when a lease runs out the worker becomes UNAVAILABLE, its lease id is
// forgotten (Heartbeat: NotFound, register again) and the loss listener is
// told, so the scheduler moves its runs elsewhere. A static worker is
// AVAILABLE while Describe answers (the scheduler probes it). An RPC that
// finds a worker unreachable marks it UNAVAILABLE until its next heartbeat
// or successful probe.
//
// Identity: a name held by a live lease stays with the registrant that
// holds it, proved by its client certificate (mTLS) or else by the secret
// it chose (only the secret's SHA-256 is kept). Each registered worker
// keeps the credential the coordinator calls it with (WorkerTarget).
//
// Labels: the worker's free-form ones plus those derived from what it
// reports about itself (Describe): "host", "arch", "cpu", "gpu" and, with a
// GPU, "gpu_index", "gpu_cc", "gpu_memory_mib", and "default_profile". A
// derived key cannot be set by the registration text: the derived value
// replaces it.
//
// Safe for concurrent use. The loss listener is called without the
// registry's lock held.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_WORKER_REGISTRY_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_WORKER_REGISTRY_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "driftscope/v1/coordinator.pb.h"
#include "server/coordinator/worker_target.h"

namespace driftscope::coordinator {

struct WorkerRegistryOptions {
  absl::Duration lease = absl::Seconds(10);
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // A registered worker silent this long (its lease long ended) is
  // forgotten, so the registry does not grow with every name ever
  // registered. Static workers are never forgotten.
  absl::Duration forget_after = absl::Hours(1);
};

// What the scheduler needs of one worker.
struct WorkerView {
  v1::WorkerInfo info;  // labels merged with the derived ones
  v1::WorkerState state = v1::WORKER_UNAVAILABLE;
  bool is_static = false;
};

// Who is registering: what it proved and what it will be called with.
struct Registrant {
  std::string identity;  // its client certificate's identity (mTLS), or ""
  std::string secret;    // RegisterWorkerRequest.worker_secret
  WorkerCredential credential;
};

// The shortest worker_secret accepted: 16 characters are 64 bits or more.
inline constexpr size_t kMinWorkerSecretSize = 16;

class WorkerRegistry {
 public:
  // Called with the name of a registered worker whose lease ran out.
  using LossListener = std::function<void(const std::string& name)>;

  explicit WorkerRegistry(WorkerRegistryOptions options);
  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  void SetLossListener(LossListener listener);

  // Whether `registrant` may register `worker` now, checked before the
  // coordinator dials the worker: InvalidArgument naming the field for an
  // empty name, an address that is not HOST:PORT or is a wildcard, a
  // missing or short secret without a certificate, or a name that belongs
  // to a static worker; AlreadyExists when the name is held by a live
  // lease of another registrant (another certificate, or without
  // certificates another secret), so no one can take a live worker's name
  // and the runs placed on it.
  absl::Status CheckRegistrant(const v1::WorkerInfo& worker,
                               const Registrant& registrant) const;
  // CheckRegistrant, then a lease for `worker` (whose environment, presets
  // and so on the caller took from its Describe; its labels get the derived
  // ones, which replace any the text gave, and max_concurrent_runs must be
  // at least 1). A worker that registers again gets a new lease; the old
  // lease id stops working. replaced_labels in the answer names the labels
  // whose values were replaced.
  absl::StatusOr<v1::RegisterWorkerResponse> Register(
      const v1::WorkerInfo& worker, const Registrant& registrant);
  // NotFound when the lease id is unknown or the lease ran out.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request);

  // A worker of the static list, described by a successful probe
  // (available = true) or not reachable (available = false; `info` may then
  // hold just the name and address).
  void UpdateStatic(const v1::WorkerInfo& info, bool available);
  std::vector<std::string> StaticAddresses() const;

  // An RPC found the worker unreachable.
  void MarkUnreachable(absl::string_view name);

  // Ends the leases that ran out (their workers become UNAVAILABLE) and
  // tells the loss listener; forgets registered workers silent for
  // options.forget_after. Returns the names whose leases ended.
  std::vector<std::string> ExpireLeases();

  // How to call worker `name` at `address` (the scheduler's choice):
  // static workers with the fleet credential, registered ones with the
  // credential their registration earned, unknown names with none.
  WorkerTarget Target(absl::string_view name, std::string address) const;

  std::optional<WorkerView> Get(absl::string_view name) const;
  std::vector<WorkerView> All() const;  // sorted by name
  // running_runs comes from `running` (the scheduler's count) by name.
  std::vector<v1::WorkerStatus> Statuses(
      const std::map<std::string, int>& running) const;

  absl::Duration lease() const { return options_.lease; }

 private:
  struct Entry {
    WorkerView view;
    std::string lease_id;  // "" for static workers and ended leases
    absl::Time last_heartbeat = absl::InfinitePast();
    int reported_running = 0;
    std::string identity;       // of the registration holding lease_id
    std::string secret_sha256;  // of its worker_secret ("" when none)
    WorkerCredential credential;
  };

  absl::Status CheckRegistrantLocked(const v1::WorkerInfo& worker,
                                     const Registrant& registrant) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerRegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry, std::less<>> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> lease_to_name_ ABSL_GUARDED_BY(mu_);
  LossListener listener_ ABSL_GUARDED_BY(mu_);
};

// `info` with the labels derived from its environment and default profile
// (host, arch, cpu, gpu; with a GPU gpu_index, gpu_cc, gpu_memory_mib for
// the GPU its gpu_index label names when that GPU exists, else GPU 0;
// default_profile) in place of any the worker gave for those keys. The
// keys whose given values were replaced or dropped go to `replaced`.
v1::WorkerInfo WithDerivedLabels(const v1::WorkerInfo& info,
                                 std::vector<std::string>* replaced = nullptr);

// Whether `labels` contains every pair of `wanted`.
bool LabelsMatch(const google::protobuf::Map<std::string, std::string>& labels,
                 const google::protobuf::Map<std::string, std::string>& wanted);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_WORKER_REGISTRY_H_
