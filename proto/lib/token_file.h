// Bearer tokens read from a file (--auth_token_file on the daemons,
// --token-file on the CLI): a token on a command line is visible to every
// user through ps and /proc, a file can be readable by its owner only.
// Pure function, safe for concurrent use.
#ifndef DRIFTSCOPE_PROTO_LIB_TOKEN_FILE_H_
#define DRIFTSCOPE_PROTO_LIB_TOKEN_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace driftscope {

// The token in `path`: the file's text without trailing whitespace (the
// newline editors and `echo` add). InvalidArgument naming `flag` and the
// path when the file cannot be read, is empty, or holds more than one line
// or any other whitespace or control character (a token never does);
// PermissionDenied naming the path, this process' uid and gid, and the
// file's owner and mode when they do not let this process read it.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          absl::string_view flag);

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_TOKEN_FILE_H_
