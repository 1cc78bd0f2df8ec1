#include "fuzz/fuzz_util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace driftscope::fuzz {

void Fail(absl::string_view what) {
  std::fprintf(stderr, "fuzz property broken: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

const std::string& ScratchDir() {
  static const std::string* const dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") +
                          "/driftscope-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      Fail("cannot make a scratch directory under $TMPDIR");
    }
    auto* d = new std::string(pattern);
    std::atexit([] { RemoveTree(ScratchDir()); });
    return d;
  }();
  return *dir;
}

void WriteFileOrDie(const std::string& path, absl::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) Fail("cannot create " + path);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) Fail("cannot write " + path);
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = ::opendir(path.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") RemoveTree(path + "/" + name);
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

}  // namespace driftscope::fuzz
