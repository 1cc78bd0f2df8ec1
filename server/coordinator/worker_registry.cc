#include "server/coordinator/worker_registry.h"

#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/core/sha256.h"
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

std::string SecretDigest(const std::string& secret) {
  return secret.empty() ? "" : Sha256Hex(secret.data(), secret.size());
}

// Whether `label` is `product`, or one of its words (split at spaces,
// '-' and '_'), ignoring case.
bool NamesTheGpu(absl::string_view label, absl::string_view product) {
  if (label.empty()) return false;
  if (absl::EqualsIgnoreCase(label, product)) return true;
  for (absl::string_view word :
       absl::StrSplit(product, absl::ByAnyChar(" -_"), absl::SkipEmpty())) {
    if (absl::EqualsIgnoreCase(label, word)) return true;
  }
  return false;
}

}  // namespace

v1::WorkerInfo WithDerivedLabels(const v1::WorkerInfo& info,
                                 std::vector<std::string>* replaced) {
  const v1::Environment& env = info.environment();
  const auto& given = info.labels();
  // The GPU the worker says it uses, when it has that GPU (a worker runs
  // its cuda profiles on its --device).
  int gpu = 0;
  if (auto it = given.find("gpu_index"); it != given.end()) {
    int index = 0;
    if (absl::SimpleAtoi(it->second, &index) && index >= 0 &&
        index < env.cuda().devices_size()) {
      gpu = index;
    }
  }
  std::map<std::string, std::string> derived = {
      {"host", env.hostname()}, {"arch", env.arch()},
      {"cpu", env.cpu_model()}, {"gpu", "none"},
      {"gpu_index", ""},        {"gpu_cc", ""},
      {"gpu_memory_mib", ""},   {"default_profile", info.default_profile()}};
  if (gpu < env.cuda().devices_size()) {
    const v1::CudaDevice& d = env.cuda().devices(gpu);
    derived["gpu"] = d.name();
    // A short name the operator chose ("gpu=a100") stays when it is a word
    // of the product name ("NVIDIA A100-SXM4-80GB"): true, and what
    // placements already ask for.
    if (auto it = given.find("gpu");
        it != given.end() && NamesTheGpu(it->second, d.name())) {
      derived["gpu"] = it->second;
    }
    derived["gpu_index"] = absl::StrCat(gpu);
    derived["gpu_cc"] = absl::StrCat(d.compute_major(), ".", d.compute_minor());
    derived["gpu_memory_mib"] = absl::StrCat(d.memory_bytes() >> 20);
  }
  v1::WorkerInfo out = info;
  auto* labels = out.mutable_labels();
  for (const auto& [key, value] : derived) {
    auto it = labels->find(key);
    if (it != labels->end() && it->second != value && replaced != nullptr) {
      replaced->push_back(key);
    }
    if (value.empty()) {
      labels->erase(key);
    } else {
      (*labels)[key] = value;
    }
  }
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

absl::Status WorkerRegistry::CheckRegistrant(
    const v1::WorkerInfo& worker, const Registrant& registrant) const {
  absl::MutexLock lock(&mu_);
  return CheckRegistrantLocked(worker, registrant);
}

absl::Status WorkerRegistry::CheckRegistrantLocked(
    const v1::WorkerInfo& worker, const Registrant& registrant) const {
  if (worker.name().empty()) {
    return absl::InvalidArgumentError("worker.name is required");
  }
  if (absl::Status s = CheckDialAddress(worker.address()); !s.ok()) return s;
  if (registrant.identity.empty() &&
      registrant.secret.size() < kMinWorkerSecretSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker_secret must be a random string of at least ",
        kMinWorkerSecretSize, " characters (driftscope-worker sends one), got ",
        registrant.secret.size(),
        "; it keeps the name with this worker while its lease lives. Only "
        "a registration with a client certificate (mTLS) may omit it"));
  }
  auto it = workers_.find(worker.name());
  if (it == workers_.end()) return absl::OkStatus();
  const Entry& held = it->second;
  if (held.view.is_static) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.name \"", worker.name(),
                     "\" is a worker of the coordinator's --workers list"));
  }
  const bool live = !held.lease_id.empty() &&
                    options_.clock() - held.last_heartbeat <= options_.lease;
  if (!live) return absl::OkStatus();
  // A certificate is the stronger proof: the same one may come back with a
  // new secret (a restarted worker). Without certificates only the secret
  // the name was registered with proves it is the same worker.
  const bool same = held.identity == registrant.identity &&
                    (!registrant.identity.empty() ||
                     (!held.secret_sha256.empty() &&
                      held.secret_sha256 == SecretDigest(registrant.secret)));
  if (same) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat(
      "worker.name \"", worker.name(), "\" is held by the live lease of ",
      held.identity != registrant.identity ? "another client certificate"
                                           : "a worker with another "
                                             "worker_secret",
      "; choose another name, or wait until that lease ends (",
      absl::FormatDuration(options_.lease),
      " without heartbeats; a restarted worker gets its name back then)"));
}

absl::StatusOr<v1::RegisterWorkerResponse> WorkerRegistry::Register(
    const v1::WorkerInfo& worker, const Registrant& registrant) {
  if (worker.max_concurrent_runs() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.max_concurrent_runs must be at least 1, got ",
                     worker.max_concurrent_runs()));
  }
  v1::RegisterWorkerResponse response;
  const std::string lease_id = RandomId("lease-", 24);
  std::vector<std::string> replaced;
  v1::WorkerInfo info = WithDerivedLabels(worker, &replaced);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckRegistrantLocked(worker, registrant); !s.ok()) {
    return s;
  }
  Entry& e = workers_[worker.name()];
  if (!e.lease_id.empty()) lease_to_name_.erase(e.lease_id);
  e.identity = registrant.identity;
  e.secret_sha256 = SecretDigest(registrant.secret);
  e.credential = registrant.credential;
  e.view.info = std::move(info);
  e.view.state = v1::WORKER_AVAILABLE;
  e.view.is_static = false;
  e.lease_id = lease_id;
  e.last_heartbeat = options_.clock();
  e.reported_running = 0;
  lease_to_name_[lease_id] = worker.name();
  response.set_lease_id(lease_id);
  response.set_lease_seconds(
      static_cast<int32_t>(absl::ToInt64Seconds(options_.lease)));
  for (std::string& key : replaced) response.add_replaced_labels(key);
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
  e.credential = {WorkerCredential::Kind::kFleet, ""};
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

WorkerTarget WorkerRegistry::Target(absl::string_view name,
                                    std::string address) const {
  WorkerTarget target;
  target.address = std::move(address);
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(name);
  if (it != workers_.end()) target.credential = it->second.credential;
  return target;
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
