#include "proto/lib/token_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace driftscope {

namespace {

// A token file is a few dozen bytes; anything this large is the wrong file.
constexpr size_t kMaxTokenFileBytes = 64 * 1024;

absl::Status CannotRead(absl::string_view flag, const std::string& path,
                        absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": cannot read \"", path, "\": ", why));
}

// EACCES, said so that the fix is obvious: which user this process is, who
// owns the file and its mode (a secret stored 0600 by another user, as a
// container's uid 10001 meets it).
absl::Status PermissionDenied(absl::string_view flag, const std::string& path) {
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  struct stat st;
  std::string file = "its owner and mode are unknown";
  if (::stat(path.c_str(), &st) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    file = absl::StrCat("it is owned by uid ", st.st_uid, " gid ", st.st_gid,
                        " with mode ", mode);
  }
  return absl::PermissionDeniedError(
      absl::StrCat(flag, ": cannot read \"", path,
                   "\": permission denied; this process "
                   "runs as uid ",
                   uid, " gid ", gid, " and ", file,
                   "; make it readable by that user or group (e.g. chgrp ", gid,
                   " ", path, " && chmod 0640 ", path, ")"));
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          absl::string_view flag) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) return PermissionDenied(flag, path);
  if (fd < 0) return CannotRead(flag, path, std::strerror(errno));
  std::string text;
  absl::Status status;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    status = CannotRead(flag, path, std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status = CannotRead(flag, path, "not a regular file");
  } else {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = CannotRead(flag, path, std::strerror(errno));
        break;
      }
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxTokenFileBytes) {
        status = CannotRead(flag, path, "larger than 64 KiB, not a token");
        break;
      }
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  const absl::string_view token = absl::StripTrailingAsciiWhitespace(text);
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", path, "\" holds no token (it is empty)"));
  }
  for (const char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": \"", path,
                       "\" must hold the token alone on one line (found "
                       "whitespace or a control character inside it)"));
    }
  }
  return std::string(token);
}

}  // namespace driftscope
