#include "client/cli/job_progress.h"

#include <sys/ioctl.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/job_records.h"
#include "client/lib/coordinator_client.h"
#include "engine/report/report_render.h"

namespace driftscope::cli {

namespace {

// Fraction done: finished runs are full whatever their last step said.
double Fraction(const v1::RunInfo& run) {
  if (run.state() == v1::RUN_SUCCEEDED) return 1.0;
  if (run.total_steps() <= 0) return 0.0;
  return std::clamp(static_cast<double>(run.step()) / run.total_steps(), 0.0,
                    1.0);
}

std::string StateWithReason(const v1::RunInfo& run) {
  std::string s = RunStateName(run.state());
  if (run.state() == v1::RUN_FAILED && !run.failure().message().empty()) {
    absl::StrAppend(&s, ": ", run.failure().message());
  }
  return s;
}

}  // namespace

std::string JobProgress::JobLine() const {
  int finished = 0, failed = 0;
  for (const v1::RunInfo& r : job_.runs()) {
    finished += IsTerminal(r.state()) ? 1 : 0;
    failed += r.state() == v1::RUN_FAILED ? 1 : 0;
  }
  std::string line =
      absl::StrCat("job ", job_.job_id(), ": ", JobStateName(job_.state()),
                   ", ", finished, " of ", job_.runs_size(), " runs finished");
  if (failed > 0) absl::StrAppend(&line, " (", failed, " failed)");
  if (!job_.description().empty()) {
    absl::StrAppend(&line, " - ", job_.description());
  }
  return line;
}

std::string JobProgress::RunLine(const v1::RunInfo& run) const {
  std::string line = absl::StrCat(DescribeRun(run), ": ", StateWithReason(run));
  if (run.total_steps() > 0 && run.state() == v1::RUN_RUNNING) {
    absl::StrAppend(&line, ", step ", run.step(), "/", run.total_steps());
  }
  return line;
}

std::vector<std::string> JobProgress::Apply(const v1::JobEvent& event) {
  std::vector<std::string> lines;
  switch (event.event_case()) {
    case v1::JobEvent::kSnapshot: {
      job_ = event.snapshot();
      has_snapshot_ = true;
      lines.push_back(JobLine());
      for (const v1::RunInfo& r : job_.runs()) {
        lines.push_back("  " + RunLine(r));
      }
      break;
    }
    case v1::JobEvent::kRunUpdate: {
      const v1::RunInfo& update = event.run_update();
      v1::RunInfo* slot = nullptr;
      for (v1::RunInfo& r : *job_.mutable_runs()) {
        if (r.run_id() == update.run_id()) slot = &r;
      }
      // A log gets state changes and progress in quarters: a coordinator
      // may report every training step.
      auto quarter = [](const v1::RunInfo& r) -> int64_t {
        return r.total_steps() > 0 ? 4 * r.step() / r.total_steps() : 0;
      };
      const bool changed = slot == nullptr || slot->state() != update.state() ||
                           slot->worker() != update.worker() ||
                           quarter(update) > quarter(*slot);
      if (slot == nullptr) slot = job_.add_runs();
      *slot = update;
      if (changed) lines.push_back("  " + RunLine(update));
      break;
    }
    case v1::JobEvent::kJobState:
      job_.set_state(event.job_state());
      lines.push_back(JobLine());
      break;
    default:
      break;
  }
  return lines;
}

std::vector<std::string> JobProgress::Frame(int bar_width) const {
  std::vector<std::vector<std::string>> rows;
  for (const v1::RunInfo& r : job_.runs()) {
    const double f = Fraction(r);
    const int fill = static_cast<int>(f * bar_width);
    std::string steps =
        r.total_steps() > 0 ? absl::StrCat(r.step(), "/", r.total_steps()) : "";
    rows.push_back(
        {r.run_id(), r.worker(), ProfileLabel(r), absl::StrCat("r", r.repeat()),
         absl::StrCat("[", std::string(fill, '#'),
                      std::string(bar_width - fill, '.'), "]"),
         absl::StrFormat("%.0f%%", 100 * f), steps, StateWithReason(r)});
  }
  std::vector<std::string> lines = {JobLine()};
  if (!rows.empty()) {
    for (absl::string_view l :
         absl::StrSplit(FormatTable(rows), '\n', absl::SkipEmpty())) {
      lines.push_back(absl::StrCat("  ", l));
    }
  }
  return lines;
}

void FrameWriter::Draw(const std::vector<std::string>& lines) {
  // A line wider than the terminal would wrap and break the cursor
  // arithmetic below: cut it.
  size_t width = 0;
  struct winsize ws;
  if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) {
    width = ws.ws_col - 1;
  }
  // Back to the first line of the previous frame, then overwrite; lines
  // left over from a longer frame are cleared.
  if (drawn_ > 0) std::fprintf(out_, "\r\033[%zuA", drawn_);
  for (const std::string& l : lines) {
    const std::string shown =
        width > 0 && l.size() > width ? l.substr(0, width) : l;
    std::fprintf(out_, "\r\033[K%s\n", shown.c_str());
  }
  for (size_t i = lines.size(); i < drawn_; ++i)
    std::fprintf(out_, "\r\033[K\n");
  if (drawn_ > lines.size()) {
    std::fprintf(out_, "\033[%zuA", drawn_ - lines.size());
  }
  drawn_ = lines.size();
  std::fflush(out_);
}

}  // namespace driftscope::cli
