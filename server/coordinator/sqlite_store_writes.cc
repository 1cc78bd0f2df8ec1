// SqliteStore's writes: each is one transaction that checks the state rules
// of store.h before it changes anything.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/lib/run_records.h"
#include "server/coordinator/sqlite_statement.h"
#include "server/coordinator/sqlite_store.h"

namespace driftscope::coordinator {
namespace {

constexpr int32_t kCodeCancelled =
    static_cast<int32_t>(absl::StatusCode::kCancelled);
constexpr int32_t kCodeUnavailable =
    static_cast<int32_t>(absl::StatusCode::kUnavailable);

absl::Status NotInFlight(absl::string_view run_id, int attempt,
                         v1::RunState state, int current_attempt) {
  return absl::FailedPreconditionError(absl::StrCat(
      "attempt ", attempt, " of run ", run_id, " is not in flight (the run is ",
      v1::RunState_Name(state), ", its current attempt ", current_attempt,
      "): a late result of a superseded attempt, or the run ended"));
}

}  // namespace

absl::StatusOr<CreateJobResult> SqliteStore::CreateJob(
    const JobRow& job, const std::vector<RunRow>& runs) {
  if (job.job_id.empty()) {
    return absl::InvalidArgumentError("CreateJob: job_id is empty");
  }
  if (job.state != v1::JOB_QUEUED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CreateJob: job ", job.job_id, " is ", v1::JobState_Name(job.state),
        "; a new job starts JOB_QUEUED"));
  }
  for (const RunRow& run : runs) {
    if (run.run_id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateJob: a run of job ", job.job_id, " has no id"));
    }
    if (!run.job_id.empty() && run.job_id != job.job_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateJob: run ", run.run_id, " names job ", run.job_id,
                       ", not ", job.job_id));
    }
    if (run.state != v1::RUN_QUEUED || run.current_attempt != 0 ||
        !run.attempts.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateJob: run ", run.run_id,
                       " must be RUN_QUEUED with no attempts"));
    }
  }
  // Blobs first, outside the lock: content-addressed, so a retry rewrites
  // nothing and a failed CreateJob leaves only unreferenced blobs.
  std::vector<std::string> weight_keys;
  for (const v1::Tensor& tensor : job.init_weights) {
    absl::StatusOr<std::string> key = blobs_->Put(tensor.data());
    if (!key.ok()) return key.status();
    weight_keys.push_back(*std::move(key));
  }

  CreateJobResult result;
  absl::Status s = InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        if (!job.client_request_id.empty()) {
          absl::StatusOr<SqliteStatement> existing = Prepare(
              "SELECT job_id, spec_digest FROM jobs WHERE client_request_id = "
              "?");
          if (!existing.ok()) return existing.status();
          existing->Bind(job.client_request_id);
          absl::StatusOr<bool> row = existing->Step();
          if (!row.ok()) return row.status();
          if (*row) {
            result.job_id = existing->Text(0);
            result.existing_spec_digest = existing->Text(1);
            return absl::OkStatus();
          }
        }
        absl::StatusOr<SqliteStatement> insert_job = Prepare(
            "INSERT INTO jobs (job_id, client_request_id, spec_digest, spec, "
            "placement, description, state, created_ms, finished_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)");
        if (!insert_job.ok()) return insert_job.status();
        const std::string spec = job.spec.SerializeAsString();
        const std::string placement = job.placement.SerializeAsString();
        insert_job->Bind(job.job_id, job.client_request_id, job.spec_digest,
                         SqliteBytes{spec}, SqliteBytes{placement},
                         job.description, int64_t{v1::JOB_QUEUED},
                         job.created_unix_ms);
        if (absl::Status s = insert_job->Run(); !s.ok()) {
          return absl::Status(
              s.code(), absl::StrCat("job ", job.job_id, ": ", s.message()));
        }
        for (size_t i = 0; i < job.init_weights.size(); ++i) {
          absl::StatusOr<SqliteStatement> insert_weight = Prepare(
              "INSERT INTO init_weights (job_id, position, tensor, sha256) "
              "VALUES (?, ?, ?, ?)");
          if (!insert_weight.ok()) return insert_weight.status();
          v1::Tensor meta = job.init_weights[i];
          meta.clear_data();
          const std::string bytes = meta.SerializeAsString();
          insert_weight->Bind(job.job_id, static_cast<int64_t>(i),
                              SqliteBytes{bytes}, weight_keys[i]);
          if (absl::Status s = insert_weight->Run(); !s.ok()) return s;
        }
        for (const RunRow& run : runs) {
          absl::StatusOr<SqliteStatement> insert_run = Prepare(
              "INSERT INTO runs (run_id, job_id, worker, profile, "
              "repeat_index, "
              "state, current_attempt) VALUES (?, ?, ?, ?, ?, ?, 0)");
          if (!insert_run.ok()) return insert_run.status();
          insert_run->Bind(run.run_id, job.job_id, run.worker, run.profile,
                           int64_t{run.repeat}, int64_t{v1::RUN_QUEUED});
          if (absl::Status s = insert_run->Run(); !s.ok()) {
            return absl::Status(
                s.code(), absl::StrCat("run ", run.run_id, ": ", s.message()));
          }
        }
        result.job_id = job.job_id;
        result.created = true;
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return result;
}

absl::Status SqliteStore::StartAttempt(absl::string_view run_id, int attempt,
                                       absl::string_view worker,
                                       int64_t now_unix_ms) {
  return InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<RunHead> run = LoadRunHead(run_id);
        if (!run.ok()) return run.status();
        if (IsTerminal(run->job_state)) {
          return absl::FailedPreconditionError(
              absl::StrCat("run ", run_id, ": its job ", run->job_id, " is ",
                           v1::JobState_Name(run->job_state)));
        }
        if (run->state != v1::RUN_QUEUED) {
          return absl::FailedPreconditionError(
              absl::StrCat("run ", run_id, " is ",
                           v1::RunState_Name(run->state), ", not RUN_QUEUED"));
        }
        if (attempt != run->current_attempt + 1) {
          return absl::FailedPreconditionError(
              absl::StrCat("run ", run_id, ": the next attempt is ",
                           run->current_attempt + 1, ", not ", attempt));
        }
        absl::StatusOr<SqliteStatement> insert = Prepare(
            "INSERT INTO attempts (run_id, attempt, worker, started_ms) "
            "VALUES (?, ?, ?, ?)");
        if (!insert.ok()) return insert.status();
        insert->Bind(run_id, int64_t{attempt}, worker, now_unix_ms);
        if (absl::Status s = insert->Run(); !s.ok()) return s;
        absl::StatusOr<SqliteStatement> update_run = Prepare(
            "UPDATE runs SET state = ?, current_attempt = ? WHERE run_id = ?");
        if (!update_run.ok()) return update_run.status();
        update_run->Bind(int64_t{v1::RUN_RUNNING}, int64_t{attempt}, run_id);
        if (absl::Status s = update_run->Run(); !s.ok()) return s;
        absl::StatusOr<SqliteStatement> update_job =
            Prepare("UPDATE jobs SET state = ? WHERE job_id = ? AND state = ?");
        if (!update_job.ok()) return update_job.status();
        update_job->Bind(int64_t{v1::JOB_RUNNING}, run->job_id,
                         int64_t{v1::JOB_QUEUED});
        return update_job->Run();
      });
}

absl::Status SqliteStore::EndAttempt(absl::string_view run_id, int attempt,
                                     absl::string_view outcome, int32_t code,
                                     absl::string_view message,
                                     int64_t now_unix_ms) {
  absl::StatusOr<SqliteStatement> stmt = Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = ?, code = ?, message = ? "
      "WHERE run_id = ? AND attempt = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(now_unix_ms, outcome, int64_t{code}, message, run_id,
             int64_t{attempt});
  return stmt->Run();
}

absl::Status SqliteStore::FailAttempt(absl::string_view run_id, int attempt,
                                      int32_t code, absl::string_view message,
                                      bool retry, int64_t now_unix_ms) {
  return InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<RunHead> run = LoadRunHead(run_id);
        if (!run.ok()) return run.status();
        if (run->state != v1::RUN_RUNNING || run->current_attempt != attempt) {
          return NotInFlight(run_id, attempt, run->state, run->current_attempt);
        }
        if (absl::Status s = EndAttempt(run_id, attempt, "failed", code,
                                        message, now_unix_ms);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<SqliteStatement> update = Prepare(
            "UPDATE runs SET state = ?, failure_code = ?, failure_message = ? "
            "WHERE run_id = ?");
        if (!update.ok()) return update.status();
        if (retry) {
          update->Bind(int64_t{v1::RUN_QUEUED}, int64_t{0}, "", run_id);
        } else {
          update->Bind(int64_t{v1::RUN_FAILED}, int64_t{code}, message, run_id);
        }
        return update->Run();
      });
}

absl::Status SqliteStore::CompleteRun(absl::string_view run_id, int attempt,
                                      const v1::RunSummary& summary,
                                      int64_t now_unix_ms) {
  // Blobs are never deleted, so checking before the transaction is enough.
  for (const v1::TensorInfo& tensor : summary.tensors()) {
    if (!blobs_->Has(tensor.sha256())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, ": tensor '", tensor.name(), "' (sha256 '",
          tensor.sha256(), "') is not in the blob store; Put it first"));
    }
  }
  // The fingerprints apart; the summary keeps the first and the last.
  v1::FingerprintBatch all;
  *all.mutable_fingerprints() = summary.fingerprints();
  const std::string fingerprints = all.SerializeAsString();
  v1::RunSummary trimmed = summary;
  KeepFirstAndLastFingerprints(&trimmed);
  const std::string bytes = trimmed.SerializeAsString();
  return InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<RunHead> run = LoadRunHead(run_id);
        if (!run.ok()) return run.status();
        if (IsTerminal(run->job_state)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "run ", run_id, ": its job ", run->job_id, " is ",
              v1::JobState_Name(run->job_state), "; the result is discarded"));
        }
        if (run->state != v1::RUN_RUNNING || run->current_attempt != attempt) {
          return NotInFlight(run_id, attempt, run->state, run->current_attempt);
        }
        if (absl::Status s =
                EndAttempt(run_id, attempt, "succeeded", 0, "", now_unix_ms);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<SqliteStatement> update =
            Prepare("UPDATE runs SET state = ?, summary = ? WHERE run_id = ?");
        if (!update.ok()) return update.status();
        update->Bind(int64_t{v1::RUN_SUCCEEDED}, SqliteBytes{bytes}, run_id);
        if (absl::Status s = update->Run(); !s.ok()) return s;
        absl::StatusOr<SqliteStatement> insert = Prepare(
            "INSERT OR REPLACE INTO run_fingerprints (run_id, batch) "
            "VALUES (?, ?)");
        if (!insert.ok()) return insert.status();
        insert->Bind(run_id, SqliteBytes{fingerprints});
        return insert->Run();
      });
}

absl::Status SqliteStore::CancelJob(absl::string_view job_id,
                                    int64_t now_unix_ms) {
  return InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<v1::JobState> state = JobState(job_id);
        if (!state.ok()) return state.status();
        if (IsTerminal(*state)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job ", job_id, " is already ", v1::JobState_Name(*state)));
        }
        constexpr absl::string_view kWhy = "the job was cancelled";
        absl::StatusOr<SqliteStatement> attempts = Prepare(
            "UPDATE attempts SET ended_ms = ?, outcome = 'cancelled', code = "
            "?, "
            "message = ? WHERE outcome = '' AND run_id IN "
            "(SELECT run_id FROM runs WHERE job_id = ?)");
        if (!attempts.ok()) return attempts.status();
        attempts->Bind(now_unix_ms, int64_t{kCodeCancelled}, kWhy, job_id);
        if (absl::Status s = attempts->Run(); !s.ok()) return s;
        absl::StatusOr<SqliteStatement> runs = Prepare(
            "UPDATE runs SET state = ?, failure_code = ?, failure_message = ? "
            "WHERE job_id = ? AND state IN (?, ?)");
        if (!runs.ok()) return runs.status();
        runs->Bind(int64_t{v1::RUN_CANCELLED}, int64_t{kCodeCancelled}, kWhy,
                   job_id, int64_t{v1::RUN_QUEUED}, int64_t{v1::RUN_RUNNING});
        if (absl::Status s = runs->Run(); !s.ok()) return s;
        return SetJobState(job_id, v1::JOB_CANCELLED, now_unix_ms);
      });
}

absl::Status SqliteStore::SetJobState(absl::string_view job_id,
                                      v1::JobState state, int64_t now_unix_ms) {
  absl::StatusOr<SqliteStatement> stmt =
      Prepare("UPDATE jobs SET state = ?, finished_ms = ? WHERE job_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(int64_t{state}, now_unix_ms, job_id);
  return stmt->Run();
}

absl::Status SqliteStore::FinishJob(absl::string_view job_id,
                                    v1::JobState state, int64_t now_unix_ms) {
  if (state != v1::JOB_SUCCEEDED && state != v1::JOB_FAILED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FinishJob: job ", job_id, ": state ", v1::JobState_Name(state),
        " is not JOB_SUCCEEDED or JOB_FAILED (use CancelJob)"));
  }
  return InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<v1::JobState> current = JobState(job_id);
        if (!current.ok()) return current.status();
        if (IsTerminal(*current)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job ", job_id, " is already ", v1::JobState_Name(*current)));
        }
        absl::StatusOr<SqliteStatement> open_runs = Prepare(
            "SELECT COUNT(*) FROM runs WHERE job_id = ? AND state IN (?, ?)");
        if (!open_runs.ok()) return open_runs.status();
        open_runs->Bind(job_id, int64_t{v1::RUN_QUEUED},
                        int64_t{v1::RUN_RUNNING});
        absl::StatusOr<bool> row = open_runs->Step();
        if (!row.ok()) return row.status();
        if (const int64_t n = *row ? open_runs->Int(0) : 0; n > 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job ", job_id, " still has ", n, " unfinished run(s)"));
        }
        return SetJobState(job_id, state, now_unix_ms);
      });
}

absl::StatusOr<std::vector<std::string>> SqliteStore::RecoverUnfinished(
    int64_t now_unix_ms) {
  std::vector<std::string> job_ids;
  absl::Status s = InTransaction(
      true, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<SqliteStatement> attempts = Prepare(
            "UPDATE attempts SET ended_ms = ?, outcome = 'interrupted', code = "
            "?, "
            "message = 'the coordinator restarted while this attempt was in "
            "flight' WHERE outcome = ''");
        if (!attempts.ok()) return attempts.status();
        attempts->Bind(now_unix_ms, int64_t{kCodeUnavailable});
        if (absl::Status s = attempts->Run(); !s.ok()) return s;
        absl::StatusOr<SqliteStatement> runs =
            Prepare("UPDATE runs SET state = ? WHERE state = ?");
        if (!runs.ok()) return runs.status();
        runs->Bind(int64_t{v1::RUN_QUEUED}, int64_t{v1::RUN_RUNNING});
        if (absl::Status s = runs->Run(); !s.ok()) return s;
        absl::StatusOr<SqliteStatement> jobs = Prepare(
            "SELECT job_id FROM jobs WHERE state IN (?, ?) "
            "ORDER BY created_ms, seq");
        if (!jobs.ok()) return jobs.status();
        jobs->Bind(int64_t{v1::JOB_QUEUED}, int64_t{v1::JOB_RUNNING});
        for (;;) {
          absl::StatusOr<bool> row = jobs->Step();
          if (!row.ok()) return row.status();
          if (!*row) return absl::OkStatus();
          job_ids.push_back(jobs->Text(0));
        }
      });
  if (!s.ok()) return s;
  return job_ids;
}

}  // namespace driftscope::coordinator
