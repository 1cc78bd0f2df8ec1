// SqliteStore's reads: jobs, runs with their attempts, listings.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/coordinator/sqlite_statement.h"
#include "server/coordinator/sqlite_store.h"

namespace driftscope::coordinator {
namespace {

// Page tokens are opaque to clients: a keyset (created_ms, seq) of the last
// job listed, versioned so the format can change.
std::string EncodePageToken(int64_t created_ms, int64_t seq) {
  return absl::WebSafeBase64Escape(absl::StrCat("j1:", created_ms, ":", seq));
}

bool DecodePageToken(absl::string_view token, int64_t* created_ms,
                     int64_t* seq) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, ':');
  return parts.size() == 3 && parts[0] == "j1" &&
         absl::SimpleAtoi(parts[1], created_ms) &&
         absl::SimpleAtoi(parts[2], seq);
}

constexpr absl::string_view kJobColumns =
    "job_id, client_request_id, spec_digest, spec, placement, description, "
    "state, created_ms, finished_ms, seq";
constexpr absl::string_view kRunColumns =
    "run_id, job_id, worker, profile, repeat_index, state, current_attempt, "
    "summary, failure_code, failure_message";

// A row of kJobColumns; init_weights are loaded separately.
absl::StatusOr<JobRow> JobFromRow(SqliteStatement& row) {
  JobRow job;
  job.job_id = row.Text(0);
  job.client_request_id = row.Text(1);
  job.spec_digest = row.Text(2);
  if (!job.spec.ParseFromString(row.Blob(3)) ||
      !job.placement.ParseFromString(row.Blob(4))) {
    return absl::DataLossError(absl::StrCat(
        "job ", job.job_id, ": stored spec or placement unreadable"));
  }
  job.description = row.Text(5);
  job.state = static_cast<v1::JobState>(row.Int(6));
  job.created_unix_ms = row.Int(7);
  job.finished_unix_ms = row.Int(8);
  return job;
}

}  // namespace

absl::StatusOr<JobRow> SqliteStore::LoadJob(
    absl::string_view job_id, std::vector<std::string>* weight_keys) {
  absl::StatusOr<SqliteStatement> stmt = Prepare(
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE job_id = ?"));
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(job_id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  absl::StatusOr<JobRow> job = JobFromRow(*stmt);
  if (!job.ok()) return job;

  absl::StatusOr<SqliteStatement> weights = Prepare(
      "SELECT tensor, sha256 FROM init_weights WHERE job_id = ? "
      "ORDER BY position");
  if (!weights.ok()) return weights.status();
  weights->Bind(job_id);
  for (;;) {
    absl::StatusOr<bool> next = weights->Step();
    if (!next.ok()) return next.status();
    if (!*next) break;
    if (!job->init_weights.emplace_back().ParseFromString(weights->Blob(0))) {
      return absl::DataLossError(
          absl::StrCat("job ", job_id, ": stored init weight unreadable"));
    }
    weight_keys->push_back(weights->Text(1));
  }
  return job;
}

absl::StatusOr<std::vector<RunRow>> SqliteStore::LoadRuns(
    bool by_job, absl::string_view id) {
  absl::StatusOr<SqliteStatement> stmt =
      Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE ",
                           by_job ? "job_id" : "run_id", " = ? ORDER BY seq"));
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(id);
  std::vector<RunRow> runs;
  for (;;) {
    absl::StatusOr<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    RunRow& run = runs.emplace_back();
    run.run_id = stmt->Text(0);
    run.job_id = stmt->Text(1);
    run.worker = stmt->Text(2);
    run.profile = stmt->Text(3);
    run.repeat = static_cast<int>(stmt->Int(4));
    run.state = static_cast<v1::RunState>(stmt->Int(5));
    run.current_attempt = static_cast<int>(stmt->Int(6));
    if (!stmt->IsNull(7) && !run.summary.ParseFromString(stmt->Blob(7))) {
      return absl::DataLossError(
          absl::StrCat("run ", run.run_id, ": stored summary unreadable"));
    }
    if (run.state == v1::RUN_FAILED || run.state == v1::RUN_CANCELLED) {
      run.failure.set_code(static_cast<int32_t>(stmt->Int(8)));
      run.failure.set_message(stmt->Text(9));
    }
  }
  absl::StatusOr<SqliteStatement> attempts = Prepare(
      "SELECT attempt, worker, started_ms, ended_ms, outcome, code, message "
      "FROM attempts WHERE run_id = ? ORDER BY attempt");
  if (!attempts.ok()) return attempts.status();
  for (RunRow& run : runs) {
    attempts->Bind(run.run_id);
    for (;;) {
      absl::StatusOr<bool> row = attempts->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      AttemptRow& a = run.attempts.emplace_back();
      a.attempt = static_cast<int>(attempts->Int(0));
      a.worker = attempts->Text(1);
      a.started_unix_ms = attempts->Int(2);
      a.ended_unix_ms = attempts->Int(3);
      a.outcome = attempts->Text(4);
      a.code = static_cast<int32_t>(attempts->Int(5));
      a.message = attempts->Text(6);
    }
    attempts->Reset();
  }
  return runs;
}

absl::StatusOr<std::optional<JobRow>> SqliteStore::FindJobByRequestId(
    absl::string_view client_request_id) {
  if (client_request_id.empty()) {
    return absl::InvalidArgumentError(
        "FindJobByRequestId: client_request_id is empty");
  }
  std::optional<JobRow> found;
  absl::Status s = InTransaction(
      false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<SqliteStatement> stmt = Prepare(absl::StrCat(
            "SELECT ", kJobColumns, " FROM jobs WHERE client_request_id = ?"));
        if (!stmt.ok()) return stmt.status();
        stmt->Bind(client_request_id);
        absl::StatusOr<bool> row = stmt->Step();
        if (!row.ok()) return row.status();
        if (!*row) return absl::OkStatus();
        absl::StatusOr<JobRow> job = JobFromRow(*stmt);
        if (!job.ok()) return job.status();
        found = *std::move(job);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return found;
}

absl::StatusOr<JobRow> SqliteStore::GetJob(absl::string_view job_id) {
  absl::StatusOr<JobRow> job;
  std::vector<std::string> weight_keys;
  absl::Status s =
      InTransaction(false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        job = LoadJob(job_id, &weight_keys);
        return job.status();
      });
  if (!s.ok()) return s;
  // Blobs are immutable, so their (possibly large) reads need no lock.
  for (size_t i = 0; i < weight_keys.size(); ++i) {
    absl::StatusOr<std::string> data = blobs_->Get(weight_keys[i]);
    if (!data.ok()) {
      return absl::DataLossError(absl::StrCat(
          "job ", job_id, ": init weight ", i, ": ", data.status().message()));
    }
    *job->init_weights[i].mutable_data() = *std::move(data);
  }
  return job;
}

absl::StatusOr<std::vector<RunRow>> SqliteStore::GetRuns(
    absl::string_view job_id) {
  absl::StatusOr<std::vector<RunRow>> runs;
  absl::Status s = InTransaction(
      false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        // An unknown job is NotFound, not an empty list.
        if (absl::StatusOr<v1::JobState> state = JobState(job_id);
            !state.ok()) {
          return state.status();
        }
        runs = LoadRuns(/*by_job=*/true, job_id);
        return runs.status();
      });
  if (!s.ok()) return s;
  return runs;
}

absl::StatusOr<RunRow> SqliteStore::GetRun(absl::string_view run_id) {
  absl::StatusOr<std::vector<RunRow>> runs;
  absl::Status s =
      InTransaction(false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        runs = LoadRuns(/*by_job=*/false, run_id);
        return runs.status();
      });
  if (!s.ok()) return s;
  if (runs->empty()) {
    return absl::NotFoundError(absl::StrCat("no run '", run_id, "'"));
  }
  return std::move(runs->front());
}

absl::StatusOr<std::vector<v1::Fingerprint>> SqliteStore::GetFingerprints(
    absl::string_view run_id) {
  std::optional<std::string> batch;
  std::optional<RunRow> run;
  absl::Status s =
      InTransaction(false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        absl::StatusOr<SqliteStatement> stmt =
            Prepare("SELECT batch FROM run_fingerprints WHERE run_id = ?");
        if (!stmt.ok()) return stmt.status();
        stmt->Bind(run_id);
        absl::StatusOr<bool> row = stmt->Step();
        if (!row.ok()) return row.status();
        if (*row) {
          batch = std::string(stmt->Blob(0));
          return absl::OkStatus();
        }
        // Stored before schema 2 (or no result): the summary has them all.
        absl::StatusOr<std::vector<RunRow>> runs =
            LoadRuns(/*by_job=*/false, run_id);
        if (!runs.ok()) return runs.status();
        if (!runs->empty()) run = std::move(runs->front());
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (batch.has_value()) {
    v1::FingerprintBatch parsed;
    if (!parsed.ParseFromString(*batch)) {
      return absl::DataLossError(
          absl::StrCat("run ", run_id, ": stored fingerprints unreadable"));
    }
    return std::vector<v1::Fingerprint>(parsed.fingerprints().begin(),
                                        parsed.fingerprints().end());
  }
  if (!run.has_value()) {
    return absl::NotFoundError(absl::StrCat("no run '", run_id, "'"));
  }
  return std::vector<v1::Fingerprint>(run->summary.fingerprints().begin(),
                                      run->summary.fingerprints().end());
}

absl::StatusOr<ListJobsPage> SqliteStore::ListJobs(const ListJobsQuery& query) {
  constexpr int kDefaultPageSize = 50;
  constexpr int kMaxPageSize = 1000;
  if (query.page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", query.page_size, " is negative; use 0 for the default"));
  }
  const int page_size = query.page_size == 0
                            ? kDefaultPageSize
                            : std::min(query.page_size, kMaxPageSize);
  int64_t after_created_ms = 0;
  int64_t after_seq = 0;
  const bool has_token = !query.page_token.empty();
  if (has_token &&
      !DecodePageToken(query.page_token, &after_created_ms, &after_seq)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token '", query.page_token,
        "' is not one this coordinator issued: pass the previous page's "
        "next_page_token, or none for the first page"));
  }
  std::vector<int> states;
  for (v1::JobState state : query.states) {
    if (state == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(state)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job state filter ", static_cast<int>(state), " is not a job state"));
    }
    states.push_back(static_cast<int>(state));
  }
  // Sorted and unique, so equal filters share one cached statement.
  std::sort(states.begin(), states.end());
  states.erase(std::unique(states.begin(), states.end()), states.end());

  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE 1");
  if (!states.empty()) {
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(states, ","), ")");
  }
  if (has_token) absl::StrAppend(&sql, " AND (created_ms, seq) < (?, ?)");
  absl::StrAppend(&sql, " ORDER BY created_ms DESC, seq DESC LIMIT ?");

  ListJobsPage page;
  absl::Status s = InTransaction(
      false, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        absl::StatusOr<SqliteStatement> stmt = Prepare(sql);
        if (!stmt.ok()) return stmt.status();
        // One extra row says whether another page follows.
        if (has_token) {
          stmt->Bind(after_created_ms, after_seq, int64_t{page_size} + 1);
        } else {
          stmt->Bind(int64_t{page_size} + 1);
        }
        int64_t last_created_ms = 0;
        int64_t last_seq = 0;
        for (;;) {
          absl::StatusOr<bool> row = stmt->Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          if (static_cast<int>(page.jobs.size()) == page_size) {
            page.next_page_token = EncodePageToken(last_created_ms, last_seq);
            break;
          }
          absl::StatusOr<JobRow> job = JobFromRow(*stmt);
          if (!job.ok()) return job.status();
          last_created_ms = job->created_unix_ms;
          last_seq = stmt->Int(9);
          page.jobs.push_back(*std::move(job));
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return page;
}

absl::StatusOr<v1::JobState> SqliteStore::JobState(absl::string_view job_id) {
  absl::StatusOr<SqliteStatement> stmt =
      Prepare("SELECT state FROM jobs WHERE job_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(job_id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return static_cast<v1::JobState>(stmt->Int(0));
}

absl::StatusOr<SqliteStore::RunHead> SqliteStore::LoadRunHead(
    absl::string_view run_id) {
  absl::StatusOr<SqliteStatement> stmt = Prepare(
      "SELECT r.job_id, r.state, r.current_attempt, j.state FROM runs r "
      "JOIN jobs j USING (job_id) WHERE r.run_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(run_id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no run '", run_id, "'"));
  RunHead head;
  head.job_id = stmt->Text(0);
  head.state = static_cast<v1::RunState>(stmt->Int(1));
  head.current_attempt = static_cast<int>(stmt->Int(2));
  head.job_state = static_cast<v1::JobState>(stmt->Int(3));
  return head;
}

}  // namespace driftscope::coordinator
