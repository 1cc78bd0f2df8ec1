// One job under several profiles in this process, and the knob sweep: what
// `driftscope run` computes before it analyses and reports, as a library.
//
// RunProfiles trains every run on a few threads (each run owns its Context,
// so results are those of one run alone: the determinism contract holds
// whatever the parallelism). SweepKnobs flips the knobs that tell two
// profiles apart one at a time and ranks them by the drift each explains
// alone. Both are called from one thread; the runs inside use their own.
#ifndef DRIFTSCOPE_ENGINE_REPORT_PROFILE_RUNS_H_
#define DRIFTSCOPE_ENGINE_REPORT_PROFILE_RUNS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/drift/analysis.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/run_result.h"

namespace driftscope {

// `text` as a profile this build and CPU can run; InvalidArgument with the
// parser's or Context::Check's message otherwise.
absl::StatusOr<Profile> ParseRunnableProfile(const std::string& text);

// One run of the job: an environment name, its profile and repeat, and,
// after RunProfiles, its result. `step`/`total` follow its progress.
struct ProfileRun {
  ProfileRun(std::string n, Profile p, int r)
      : name(std::move(n)), profile(std::move(p)), repeat(r) {}
  std::string name;  // environment name; repeats share it
  Profile profile;
  int repeat = 0;
  absl::StatusOr<RunResult> result = absl::UnknownError("not run");
  std::atomic<int64_t> step{0}, total{0};
};

// Progress over all runs, for a progress bar.
struct RunsProgress {
  int64_t steps = 0, total_steps = 0;
  int runs_done = 0, runs = 0;
};
// Called on the calling thread about ten times a second while runs are
// going; may be empty.
using RunsProgressFn = std::function<void(const RunsProgress&)>;

// Runs every entry of `runs` on up to `parallel` threads and stores each
// result (or error) in it. `init_weights` (Keras layout, checked by the
// caller): every run's initial weights instead of the seeded ones.
void RunProfiles(const JobSpec& spec,
                 std::vector<std::unique_ptr<ProfileRun>>& runs, int parallel,
                 const RunsProgressFn& on_progress = {},
                 const std::optional<std::vector<NdArray>>& init_weights = {});

// A RunRecord (engine/drift/analysis.h) from an in-process result; the
// environment is this machine's (ProbeEnvironment).
RunRecord RecordFromResult(const std::string& name, int repeat,
                           const RunResult& r);

// One knob of a sweep from profile A towards B.
struct KnobSweepRow {
  std::string knob;           // "matmul=tf32"
  std::string alone_profile;  // A with only this knob from B
  // Relative L2 of the eval outputs against A's: with this knob alone, and
  // cumulatively, with this knob and the knobs before it in the order
  // ProfileDifferences lists them (A -> A+k1 -> A+k1+k2 -> ... -> B).
  std::optional<double> alone_rel_l2, chain_rel_l2;
  std::string note;  // why a value is missing
};

// Every knob in which `b` differs from `a`, ranked by alone_rel_l2 (largest
// first; knobs not valid alone on A last). Runs 1 + up to 2 per knob.
absl::StatusOr<std::vector<KnobSweepRow>> SweepKnobs(
    const JobSpec& spec, const Profile& a, const Profile& b, int parallel,
    const RunsProgressFn& on_progress = {},
    const std::optional<std::vector<NdArray>>& init_weights = {});

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_REPORT_PROFILE_RUNS_H_
