#include "server/coordinator/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "engine/core/sha256.h"

namespace driftscope::coordinator {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int err = errno;
  const std::string text = absl::StrCat(what, " ", path, ": ", strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(text);
  if (err == ENOENT) return absl::NotFoundError(text);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(text);
  return absl::InternalError(text);
}

// fsync of a directory makes the names created in it durable.
absl::Status SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir);
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return ErrnoError("cannot fsync directory", dir);
  return absl::OkStatus();
}

// mkdir that treats "already there" as success; `created` says whether this
// call made it (its parent then needs an fsync).
absl::Status MakeDir(const std::string& dir, bool* created) {
  *created = false;
  if (mkdir(dir.c_str(), 0755) == 0) {
    *created = true;
    return absl::OkStatus();
  }
  if (errno == EEXIST) return absl::OkStatus();
  return ErrnoError("cannot create directory", dir);
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  struct stat st;
  std::string out;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    out.reserve(static_cast<size_t>(st.st_size));
  }
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("cannot read", path);
      close(fd);
      return s;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

}  // namespace

bool IsBlobKey(absl::string_view key) {
  if (key.size() != 64) return false;
  for (char c : key) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<FileBlobStore>> FileBlobStore::Open(
    const std::string& root) {
  std::error_code ec;
  std::filesystem::create_directories(root + "/tmp", ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create blob directory ",
                                            root, "/tmp: ", ec.message()));
  }
  // A crash between write and rename leaves a temporary file; nothing refers
  // to it.
  for (const auto& entry :
       std::filesystem::directory_iterator(root + "/tmp", ec)) {
    std::error_code ignored;
    std::filesystem::remove(entry.path(), ignored);
  }
  return std::unique_ptr<FileBlobStore>(new FileBlobStore(root));
}

std::string FileBlobStore::PathOf(absl::string_view sha256) const {
  return absl::StrCat(root_, "/", sha256.substr(0, 2), "/", sha256.substr(2));
}

bool FileBlobStore::Has(absl::string_view sha256) {
  if (!IsBlobKey(sha256)) return false;
  struct stat st;
  return stat(PathOf(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<std::string> FileBlobStore::Put(absl::string_view data) {
  return PutVerified(data, Sha256Hex(data.data(), data.size()));
}

absl::StatusOr<std::string> FileBlobStore::PutVerified(
    absl::string_view data, absl::string_view sha256) {
  if (!IsBlobKey(sha256)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob key '", sha256, "' is not 64 lowercase hex digits (a SHA-256)"));
  }
  const std::string key(sha256);
  const std::string path = PathOf(key);
  struct stat st;
  // Present with the right size: written and synced by an earlier Put (a
  // flipped bit is Get's to find, not worth re-hashing every Put).
  if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<size_t>(st.st_size) == data.size()) {
    return key;
  }
  const std::string shard = absl::StrCat(root_, "/", key.substr(0, 2));
  bool created = false;
  if (absl::Status s = MakeDir(shard, &created); !s.ok()) return s;
  if (created) {
    if (absl::Status s = SyncDir(root_); !s.ok()) return s;
  }
  std::string tmp = absl::StrCat(root_, "/tmp/", key.substr(0, 16), "-XXXXXX");
  const int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  absl::Status s = WriteAll(fd, data, tmp);
  if (s.ok() && fsync(fd) != 0) s = ErrnoError("cannot fsync", tmp);
  if (close(fd) != 0 && s.ok()) s = ErrnoError("cannot close", tmp);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoError(absl::StrCat("cannot rename ", tmp, " to"), path);
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  if (absl::Status synced = SyncDir(shard); !synced.ok()) return synced;
  return key;
}

absl::StatusOr<std::string> FileBlobStore::Get(absl::string_view sha256) {
  if (!IsBlobKey(sha256)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob key '", sha256, "' is not 64 lowercase hex digits (a SHA-256)"));
  }
  const std::string path = PathOf(sha256);
  absl::StatusOr<std::string> data = ReadAll(path);
  if (!data.ok()) {
    if (absl::IsNotFound(data.status())) {
      return absl::NotFoundError(absl::StrCat("no blob ", sha256));
    }
    return data.status();
  }
  const std::string actual = Sha256Hex(data->data(), data->size());
  if (actual != sha256) {
    return absl::DataLossError(
        absl::StrCat("blob ", path, " is corrupt: its bytes hash to ", actual,
                     "; restore the store directory from a backup"));
  }
  return data;
}

absl::Status FileBlobStore::GetInto(absl::string_view sha256,
                                    absl::Span<uint8_t> out) {
  if (!IsBlobKey(sha256)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob key '", sha256, "' is not 64 lowercase hex digits (a SHA-256)"));
  }
  const std::string path = PathOf(sha256);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no blob ", sha256));
    }
    return ErrnoError("cannot open", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status s = ErrnoError("cannot stat", path);
    close(fd);
    return s;
  }
  if (static_cast<uint64_t>(st.st_size) != out.size()) {
    close(fd);
    return absl::DataLossError(absl::StrCat(
        "blob ", path, " holds ", st.st_size, " bytes, expected ", out.size()));
  }
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = n < 0 ? ErrnoError("cannot read", path)
                             : absl::DataLossError(absl::StrCat(
                                   "blob ", path, " ended after ", done, " of ",
                                   out.size(), " bytes"));
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  const std::string actual = Sha256Hex(out.data(), out.size());
  if (actual != sha256) {
    return absl::DataLossError(
        absl::StrCat("blob ", path, " is corrupt: its bytes hash to ", actual,
                     "; restore the store directory from a backup"));
  }
  return absl::OkStatus();
}

}  // namespace driftscope::coordinator
