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
// Labels: the worker's own plus derived ones ("host", "arch", "cpu", "gpu",
// "default_profile"); the worker's own win on a clash.
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

class WorkerRegistry {
 public:
  // Called with the name of a registered worker whose lease ran out.
  using LossListener = std::function<void(const std::string& name)>;

  explicit WorkerRegistry(WorkerRegistryOptions options);
  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  void SetLossListener(LossListener listener);

  // InvalidArgument naming the field for an empty name, an address that is
  // not HOST:PORT or is a wildcard, max_concurrent_runs < 1, or a name that
  // belongs to a static worker. A worker that registers again (restarted)
  // gets a new lease; the old lease id stops working. `identity` is who
  // the caller proved to be (its client certificate's identity under mTLS;
  // "" without one): a name held by a live lease of another identity is
  // AlreadyExists, so one worker cannot take another's name and its runs.
  absl::StatusOr<v1::RegisterWorkerResponse> Register(
      const v1::WorkerInfo& worker, const std::string& identity = "");
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
    std::string identity;  // of the registration holding lease_id
  };

  const WorkerRegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry, std::less<>> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> lease_to_name_ ABSL_GUARDED_BY(mu_);
  LossListener listener_ ABSL_GUARDED_BY(mu_);
};

// The derived labels of a worker (host, arch, cpu, gpu, default_profile)
// merged under its own labels.
v1::WorkerInfo WithDerivedLabels(const v1::WorkerInfo& info);

// Whether `labels` contains every pair of `wanted`.
bool LabelsMatch(const google::protobuf::Map<std::string, std::string>& labels,
                 const google::protobuf::Map<std::string, std::string>& wanted);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_WORKER_REGISTRY_H_
