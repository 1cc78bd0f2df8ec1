// Shared by the libFuzzer targets: how a target reports a broken property
// (a crash, so libFuzzer saves the input) and a scratch directory for the
// targets that read files. One fuzzing process, one thread.
#ifndef DRIFTSCOPE_FUZZ_FUZZ_UTIL_H_
#define DRIFTSCOPE_FUZZ_FUZZ_UTIL_H_

#include <string>

#include "absl/strings/string_view.h"

namespace driftscope::fuzz {

// Prints `what` and aborts: libFuzzer records the input as a crash.
[[noreturn]] void Fail(absl::string_view what);

// A directory of this process's own under $TMPDIR (or /tmp), made on first
// use and removed at exit. Targets put their files there and remove them
// after each input.
const std::string& ScratchDir();

// Writes `bytes` to `path` (created or truncated); Fail()s when it cannot.
void WriteFileOrDie(const std::string& path, absl::string_view bytes);

// Removes `path` and everything below it (files and directories only).
void RemoveTree(const std::string& path);

}  // namespace driftscope::fuzz

#endif  // DRIFTSCOPE_FUZZ_FUZZ_UTIL_H_
