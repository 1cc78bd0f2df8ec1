// How a report names its environments: the one naming rule of `driftscope
// run`, `driftscope report` and the coordinator's GetReport, so the same runs
// give the same report whichever path made it.
//
// A run's environment is its profile, written as a person reads it (a preset
// name when the profile is one). When one profile ran on several workers,
// the profile alone no longer tells the environments apart, and every run
// is named "WORKER/PROFILE" instead. Repeats share their name. Pure
// functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_REPORT_ENVIRONMENT_NAMES_H_
#define DRIFTSCOPE_ENGINE_REPORT_ENVIRONMENT_NAMES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace driftscope {

// The profile of a run as a person reads it: `requested` as written, or
// `ran` (the profile the run reported) when nothing was requested, shown as
// a preset name when it is one ("fp32,isa=x86-64,threads=1" ->
// "fp32-sse2"); "default" when both are empty.
std::string ProfileLabel(absl::string_view requested, absl::string_view ran);

// Where a run ran and under which profile label.
struct RunPlace {
  std::string worker;  // "" for runs in this process
  std::string profile_label;
};

// The environment name of every run, index-aligned with `runs`.
std::vector<std::string> EnvironmentNames(const std::vector<RunPlace>& runs);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_REPORT_ENVIRONMENT_NAMES_H_
