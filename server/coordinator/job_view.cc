#include "server/coordinator/job_view.h"

namespace driftscope::coordinator {

v1::RunInfo RunInfoFromRow(const RunRow& row,
                           const std::optional<RunProgress>& progress,
                           bool with_summary) {
  v1::RunInfo info;
  info.set_run_id(row.run_id);
  info.set_worker(row.worker);
  info.set_profile(row.profile);
  info.set_repeat(row.repeat);
  info.set_state(row.state);
  if (row.state == v1::RUN_SUCCEEDED) {
    info.set_step(row.summary.steps());
    info.set_total_steps(row.summary.steps());
    if (with_summary) {
      *info.mutable_summary() = row.summary;
      // Runs stored before schema 2 still hold every fingerprint.
      KeepFirstAndLastFingerprints(info.mutable_summary());
    }
  } else if (progress.has_value() && row.state == v1::RUN_RUNNING) {
    info.set_step(progress->step);
    info.set_total_steps(progress->total_steps);
  }
  if (row.state == v1::RUN_FAILED || row.state == v1::RUN_CANCELLED) {
    *info.mutable_failure() = row.failure;
  }
  for (const AttemptRow& a : row.attempts) {
    v1::RunAttempt* out = info.add_attempts();
    out->set_attempt(a.attempt);
    out->set_worker(a.worker);
    out->set_started_unix_ms(a.started_unix_ms);
    out->set_ended_unix_ms(a.ended_unix_ms);
    out->set_outcome(a.outcome);
    out->set_code(a.code);
    out->set_message(a.message);
  }
  return info;
}

v1::Job JobFromRows(const JobRow& job, const std::vector<RunRow>& runs,
                    const ProgressLookup& progress, bool with_details) {
  v1::Job out;
  out.set_job_id(job.job_id);
  out.set_client_request_id(job.client_request_id);
  out.set_spec_digest(job.spec_digest);
  if (with_details) *out.mutable_spec() = job.spec;
  *out.mutable_placement() = job.placement;
  out.set_description(job.description);
  out.set_state(job.state);
  out.set_created_unix_ms(job.created_unix_ms);
  out.set_finished_unix_ms(job.finished_unix_ms);
  for (const RunRow& r : runs) {
    std::optional<RunProgress> p;
    if (progress && r.state == v1::RUN_RUNNING) p = progress(r.run_id);
    *out.add_runs() = RunInfoFromRow(r, p, with_details);
  }
  return out;
}

}  // namespace driftscope::coordinator
