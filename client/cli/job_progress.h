// The live view of a coordinator job that `watch` and `submit --wait` draw:
// the job as the last WatchJob events left it, a progress bar per run for a
// terminal (redrawn in place), and one line per change for a log. One
// thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_JOB_PROGRESS_H_
#define DRIFTSCOPE_CLIENT_CLI_JOB_PROGRESS_H_

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "driftscope/v1/coordinator.pb.h"

namespace driftscope::cli {

class JobProgress {
 public:
  JobProgress() = default;
  JobProgress(const JobProgress&) = delete;
  JobProgress& operator=(const JobProgress&) = delete;

  // Takes one WatchJob event; returns the lines a log gets for it: the
  // snapshot in full, a run's state changes, its progress each time it
  // passes a quarter of its steps, and the job's state.
  std::vector<std::string> Apply(const v1::JobEvent& event);

  // The whole view: the job line, then one aligned line per run with a bar
  // `bar_width` characters wide.
  std::vector<std::string> Frame(int bar_width = 24) const;

  const v1::Job& job() const { return job_; }
  bool has_snapshot() const { return has_snapshot_; }

 private:
  std::string JobLine() const;
  std::string RunLine(const v1::RunInfo& run) const;

  v1::Job job_;
  bool has_snapshot_ = false;
};

// Draws JobProgress frames on a terminal, each over the previous one.
class FrameWriter {
 public:
  explicit FrameWriter(std::FILE* out) : out_(out) {}
  void Draw(const std::vector<std::string>& lines);

 private:
  std::FILE* out_;
  size_t drawn_ = 0;  // lines of the last frame
};

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_JOB_PROGRESS_H_
