#include "server/coordinator/worker_registry.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/coordinator/ids.h"

namespace driftscope::coordinator {

namespace {

// InvalidArgument unless `address` is HOST:PORT with a concrete host.
absl::Status CheckDialAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker.address must be HOST:PORT, got \"", address, "\""));
  }
  const absl::string_view host = address.substr(0, colon);
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host == "*") {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.address \"", address,
                     "\" is a wildcard address: give one the coordinator "
                     "can dial"));
  }
  return absl::OkStatus();
}

}  // namespace

v1::WorkerInfo WithDerivedLabels(const v1::WorkerInfo& info) {
  v1::WorkerInfo out = info;
  auto* labels = out.mutable_labels();
  const v1::Environment& env = info.environment();
  auto derive = [&](const std::string& key, const std::string& value) {
    if (!value.empty() && labels->count(key) == 0) (*labels)[key] = value;
  };
  derive("host", env.hostname());
  derive("arch", env.arch());
  derive("cpu", env.cpu_model());
  derive("gpu", env.cuda().devices_size() > 0 ? env.cuda().devices(0).name()
                                              : std::string("none"));
  derive("default_profile", info.default_profile());
  return out;
}

bool LabelsMatch(
    const google::protobuf::Map<std::string, std::string>& labels,
    const google::protobuf::Map<std::string, std::string>& wanted) {
  for (const auto& [key, value] : wanted) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

WorkerRegistry::WorkerRegistry(WorkerRegistryOptions options)
    : options_(std::move(options)) {}

void WorkerRegistry::SetLossListener(LossListener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

absl::StatusOr<v1::RegisterWorkerResponse> WorkerRegistry::Register(
    const v1::WorkerInfo& worker, const std::string& identity) {
  if (worker.name().empty()) {
    return absl::InvalidArgumentError("worker.name is required");
  }
  if (absl::Status s = CheckDialAddress(worker.address()); !s.ok()) return s;
  if (worker.max_concurrent_runs() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.max_concurrent_runs must be at least 1, got ",
                     worker.max_concurrent_runs()));
  }
  v1::RegisterWorkerResponse response;
  const std::string lease_id = RandomId("lease-", 24);
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker.name());
  if (it != workers_.end() && it->second.view.is_static) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.name \"", worker.name(),
                     "\" is a worker of the coordinator's --workers list"));
  }
  if (it != workers_.end() && !it->second.lease_id.empty() &&
      it->second.identity != identity &&
      options_.clock() - it->second.last_heartbeat <= options_.lease) {
    return absl::AlreadyExistsError(absl::StrCat(
        "worker.name \"", worker.name(),
        "\" is held by the live lease of another credential; choose another "
        "name, or register with the same certificate"));
  }
  Entry& e = workers_[worker.name()];
  if (!e.lease_id.empty()) lease_to_name_.erase(e.lease_id);
  e.identity = identity;
  e.view.info = WithDerivedLabels(worker);
  e.view.state = v1::WORKER_AVAILABLE;
  e.view.is_static = false;
  e.lease_id = lease_id;
  e.last_heartbeat = options_.clock();
  e.reported_running = 0;
  lease_to_name_[lease_id] = worker.name();
  response.set_lease_id(lease_id);
  response.set_lease_seconds(
      static_cast<int32_t>(absl::ToInt64Seconds(options_.lease)));
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> WorkerRegistry::Heartbeat(
    const v1::HeartbeatRequest& request) {
  LossListener listener;
  std::string lost;
  {
    absl::MutexLock lock(&mu_);
    auto it = lease_to_name_.find(request.lease_id());
    if (it == lease_to_name_.end()) {
      return absl::NotFoundError(
          "lease unknown or expired: register again (RegisterWorker)");
    }
    Entry& e = workers_[it->second];
    const absl::Time now = options_.clock();
    if (now - e.last_heartbeat > options_.lease) {
      // Late: the lease ended even if ExpireLeases has not run yet.
      lost = it->second;
      e.view.state = v1::WORKER_UNAVAILABLE;
      e.lease_id.clear();
      lease_to_name_.erase(it);
      listener = listener_;
    } else {
      e.last_heartbeat = now;
      e.reported_running = request.running_runs();
      e.view.state =
          request.draining() ? v1::WORKER_DRAINING : v1::WORKER_AVAILABLE;
      v1::HeartbeatResponse response;
      response.set_lease_seconds(
          static_cast<int32_t>(absl::ToInt64Seconds(options_.lease)));
      return response;
    }
  }
  if (listener) listener(lost);
  return absl::NotFoundError(
      "lease expired (no heartbeat within lease_seconds): register again");
}

void WorkerRegistry::UpdateStatic(const v1::WorkerInfo& info, bool available) {
  absl::MutexLock lock(&mu_);
  Entry& e = workers_[info.name()];
  if (available || !e.view.is_static) {
    e.view.info = WithDerivedLabels(info);
  }
  e.view.is_static = true;
  e.view.state = available ? v1::WORKER_AVAILABLE : v1::WORKER_UNAVAILABLE;
  if (available) e.last_heartbeat = options_.clock();
}

std::vector<std::string> WorkerRegistry::StaticAddresses() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, e] : workers_) {
    if (e.view.is_static) out.push_back(e.view.info.address());
  }
  return out;
}

void WorkerRegistry::MarkUnreachable(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(name);
  if (it != workers_.end()) it->second.view.state = v1::WORKER_UNAVAILABLE;
}

std::vector<std::string> WorkerRegistry::ExpireLeases() {
  std::vector<std::string> lost;
  LossListener listener;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.clock();
    for (auto& [name, e] : workers_) {
      if (e.lease_id.empty() || now - e.last_heartbeat <= options_.lease) {
        continue;
      }
      e.view.state = v1::WORKER_UNAVAILABLE;
      lease_to_name_.erase(e.lease_id);
      e.lease_id.clear();
      lost.push_back(name);
    }
    for (auto it = workers_.begin(); it != workers_.end();) {
      const Entry& e = it->second;
      if (!e.view.is_static && e.lease_id.empty() &&
          now - e.last_heartbeat > options_.forget_after) {
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    listener = listener_;
  }
  if (listener) {
    for (const std::string& name : lost) listener(name);
  }
  return lost;
}

std::optional<WorkerView> WorkerRegistry::Get(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(name);
  if (it == workers_.end()) return std::nullopt;
  return it->second.view;
}

std::vector<WorkerView> WorkerRegistry::All() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerView> out;
  out.reserve(workers_.size());
  for (const auto& [name, e] : workers_) out.push_back(e.view);
  return out;
}

std::vector<v1::WorkerStatus> WorkerRegistry::Statuses(
    const std::map<std::string, int>& running) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::WorkerStatus> out;
  for (const auto& [name, e] : workers_) {
    v1::WorkerStatus s;
    *s.mutable_worker() = e.view.info;
    s.set_state(e.view.state);
    if (e.last_heartbeat != absl::InfinitePast()) {
      s.set_last_heartbeat_unix_ms(absl::ToUnixMillis(e.last_heartbeat));
    }
    auto r = running.find(name);
    s.set_running_runs(r == running.end() ? 0 : r->second);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace driftscope::coordinator
