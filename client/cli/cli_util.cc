#include "client/cli/cli_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace driftscope::cli {

namespace {

std::string Errno() { return std::strerror(errno); }

std::string Parent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

bool IsEmptyDirectory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return false;
  bool empty = true;
  while (const struct dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(dir);
  return empty;
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

}  // namespace

int ReportError(std::FILE* err, const absl::Status& status) {
  // One line whatever the message holds, so scripts can rely on it.
  std::string message(status.message());
  absl::StrReplaceAll({{"\r", " "}, {"\n", " "}}, &message);
  std::fprintf(err, "driftscope: error: %s\n", message.c_str());
  std::fflush(err);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(
    const std::vector<std::string>& args,
    const std::set<std::string>& value_flags,
    const std::set<std::string>& switch_flags) {
  ParsedArgs parsed;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    std::string name = arg.substr(absl::StartsWith(arg, "--") ? 2 : 1);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (switch_flags.count(name)) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " takes no value"));
      }
      parsed.switches.insert(name);
      continue;
    }
    if (!value_flags.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag '", arg, "' (see 'driftscope help <command>')"));
    }
    if (!value.has_value()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    }
    if (value->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " needs a non-empty value"));
    }
    if (!parsed.values.emplace(name, *value).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " given more than once"));
    }
  }
  return parsed;
}

absl::StatusOr<std::vector<std::string>> SplitProfileList(
    const std::string& list, const std::string& flag) {
  std::vector<std::string> merged;
  for (absl::string_view p : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    // Pieces with '=' are knobs of the profile before them.
    if (absl::StrContains(p, '=') && !merged.empty()) {
      absl::StrAppend(&merged.back(), ",", p);
    } else {
      merged.emplace_back(p);
    }
  }
  if (merged.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " needs at least one profile"));
  }
  return merged;
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsMountPoint(const std::string& path) {
  struct stat st, up;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  if (::stat((path + "/..").c_str(), &up) != 0) return false;
  if (st.st_dev != up.st_dev) return true;
  // A bind mount of a directory of the same file system keeps st_dev.
  struct statx sx;
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
              &sx) == 0 &&
      (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
    return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  }
  return false;
}

absl::Status CheckOutputFile(const std::string& path, const std::string& flag) {
  if (IsDirectory(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path, ": is a directory; give the path of a file"));
  }
  const std::string parent = Parent(path);
  if (!IsDirectory(parent)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path, ": directory ", parent, " does not exist"));
  }
  // The file is written next to itself and renamed into place
  // (WriteTextFile): a file created there now shows it will work.
  std::string probe = path + ".probe-XXXXXX";
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": cannot write in ", parent, ": ",
                     Errno(), " (nothing was run)"));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

void RemoveTree(const std::string& path) {
  ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

namespace {

// The StagedDirs not yet committed or removed, for the signal thread.
absl::Mutex staged_mu;
std::set<std::string>& StagedPaths() ABSL_EXCLUSIVE_LOCKS_REQUIRED(staged_mu) {
  static auto* paths = new std::set<std::string>();
  return *paths;
}

void TrackStaged(const std::string& path) {
  absl::MutexLock lock(&staged_mu);
  StagedPaths().insert(path);
}

void UntrackStaged(const std::string& path) {
  absl::MutexLock lock(&staged_mu);
  StagedPaths().erase(path);
}

}  // namespace

void RemoveStagedDirsOnTermination() {
  // A signal the parent set to be ignored (a background job of a
  // non-interactive shell, nohup) stays ignored.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction current;
    if (sigaction(sig, nullptr, &current) == 0 &&
        current.sa_handler == SIG_IGN) {
      continue;
    }
    sigaddset(&set, sig);
  }
  if (sigisemptyset(&set)) return;
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    {
      absl::MutexLock lock(&staged_mu);
      for (const std::string& path : StagedPaths()) RemoveTree(path);
    }
    // End as the signal would have: default action, unblocked.
    std::signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    std::raise(sig);
    std::_Exit(128 + sig);
  }).detach();
}

absl::StatusOr<StagedDir> StagedDir::Create(const std::string& final_path,
                                            const std::string& flag,
                                            const std::string& marker) {
  std::string target = final_path;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  if (PathExists(target)) {
    if (!IsDirectory(target)) {
      return absl::FailedPreconditionError(absl::StrCat(
          flag, " ", final_path, ": exists and is not a directory"));
    }
    // Commit replaces the directory by a rename, which a mount point
    // refuses (EBUSY): found here, before any work.
    if (IsMountPoint(target)) {
      return absl::FailedPreconditionError(absl::StrCat(
          flag, " ", final_path,
          ": is a mount point, which cannot be replaced; give a directory "
          "inside it (e.g. ",
          target, "/run)"));
    }
    // Only a previous output (or an empty directory) is ever replaced, so a
    // mistyped --out cannot wipe unrelated files.
    if (!IsEmptyDirectory(target) && !PathExists(target + "/" + marker)) {
      return absl::FailedPreconditionError(
          absl::StrCat(flag, " ", final_path,
                       ": exists and is not a driftscope output directory (no ",
                       marker, "); choose another path or remove it"));
    }
  }
  const std::string parent = Parent(target);
  if (!IsDirectory(parent)) {
    return absl::NotFoundError(absl::StrCat(flag, " ", final_path,
                                            ": parent directory ", parent,
                                            " does not exist"));
  }
  std::string pattern = target + ".tmp-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", final_path,
                     ": cannot create a directory next to it: ", Errno()));
  }
  TrackStaged(pattern);
  return StagedDir(target, pattern);
}

StagedDir::StagedDir(StagedDir&& other) noexcept
    : final_(std::move(other.final_)), temp_(std::move(other.temp_)) {
  other.temp_.clear();
}

StagedDir::~StagedDir() {
  if (!temp_.empty()) {
    RemoveTree(temp_);
    UntrackStaged(temp_);
  }
}

absl::Status StagedDir::MakeSubdir(const std::string& name) {
  const std::string dir = temp_ + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", Errno()));
  }
  return absl::OkStatus();
}

absl::Status StagedDir::Commit() {
  std::string old;
  if (PathExists(final_)) {
    old = final_ + ".old-XXXXXX";
    if (::mkdtemp(old.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot move the previous ",
                                              final_, " aside: ", Errno()));
    }
    if (::rename(final_.c_str(), old.c_str()) != 0) {
      const std::string why = Errno();
      ::rmdir(old.c_str());  // the empty directory made for it
      return absl::InternalError(
          absl::StrCat("cannot move the previous ", final_, " aside: ", why));
    }
  }
  if (::rename(temp_.c_str(), final_.c_str()) != 0) {
    const std::string why = Errno();
    if (!old.empty()) ::rename(old.c_str(), final_.c_str());
    return absl::InternalError(
        absl::StrCat("rename ", temp_, " -> ", final_, ": ", why));
  }
  UntrackStaged(temp_);
  temp_.clear();
  if (!old.empty()) RemoveTree(old);
  return absl::OkStatus();
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(absl::StrCat("open ", tmp, ": ", Errno()));
  }
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !wrote) {
    ::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("write ", tmp, ": ", Errno()));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("rename ", tmp, ": ", Errno()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InProcessMemoryLimit(const ParsedArgs& parsed) {
  if (std::optional<std::string> m = parsed.Get("max-memory-mib")) {
    int64_t mib = 0;
    if (!absl::SimpleAtoi(*m, &mib) || mib < 1 || mib > (int64_t{1} << 40)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max-memory-mib must be a whole number of MiB >= 1, got '", *m,
          "'"));
    }
    return mib * 1024 * 1024;
  }
  return AvailableMemoryBytes() / 10 * 9;
}

absl::Status CheckRunsFitInMemory(const std::vector<JobMemory>& runs,
                                  int parallel, int64_t limit_bytes) {
  if (runs.empty()) return absl::OkStatus();
  std::vector<const JobMemory*> by_peak;
  for (const JobMemory& m : runs) by_peak.push_back(&m);
  std::sort(by_peak.begin(), by_peak.end(),
            [](const JobMemory* a, const JobMemory* b) {
              return a->total() > b->total();
            });
  // Summed as one JobMemory so the message names the largest part.
  JobMemory sum;
  const size_t running =
      std::min(by_peak.size(), static_cast<size_t>(std::max(parallel, 1)));
  for (size_t i = 0; i < by_peak.size(); ++i) {
    const JobMemory& m = *by_peak[i];
    if (i < running) {
      sum.weights += m.weights;
      sum.optimizer += m.optimizer;
      sum.activations += m.activations;
      sum.data += m.data;
      sum.generator += m.generator;
      sum.outputs += m.outputs;
      sum.epoch_outputs += m.epoch_outputs;
      sum.fingerprints += m.fingerprints;
      if (i == 0) sum.transfer = m.transfer;
    } else {
      sum.outputs += m.result;  // what a finished run keeps
    }
  }
  return CheckJobMemory(
      sum, limit_bytes,
      "the memory limit for in-process runs (--max-memory-mib, default 90% "
      "of this machine's memory)");
}

}  // namespace driftscope::cli
