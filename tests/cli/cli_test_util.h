// Helpers for tests that run the real `driftscope` binary: spawn it with
// arguments, capture stdout/stderr and the exit code; fresh directories.
#ifndef DRIFTSCOPE_TESTS_CLI_CLI_TEST_UTIL_H_
#define DRIFTSCOPE_TESTS_CLI_CLI_TEST_UTIL_H_

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

extern char** environ;

namespace driftscope {
namespace {

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Entries of `dir` whose names start with `prefix`.
inline std::vector<std::string> ListDir(const std::string& dir,
                                 const std::string& prefix) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const struct dirent* e = ::readdir(d)) {
    if (std::string(e->d_name).rfind(prefix, 0) == 0) {
      names.push_back(e->d_name);
    }
  }
  ::closedir(d);
  return names;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// A fresh directory per test (TempDir is shared by the whole binary).
inline std::string FreshDir() {
  const ::testing::TestInfo* t =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = absl::StrCat(t->test_suite_name(), "_", t->name());
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  const std::string dir = ::testing::TempDir() + "/cli_" + name;
  std::system(("rm -rf '" + dir + "'").c_str());
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

inline CliResult RunCli(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string base = absl::StrCat(::testing::TempDir(), "/cli_io_",
                                        ::getpid(), "_", counter++);
  const std::string out_path = base + ".out", err_path = base + ".err";
  std::vector<std::string> argv_s = {DRIFTSCOPE_BINARY_DIR
                                     "/client/driftscope"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  CliResult r;
  const int rc =
      posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0] << ": " << std::strerror(rc);
  if (rc != 0) return r;
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return r;
}

}  // namespace
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_CLI_CLI_TEST_UTIL_H_
