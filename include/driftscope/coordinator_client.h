// driftscope/coordinator_client.h — submit jobs to a driftscope-coordinator.
//
// CoordinatorClient: SubmitJob (idempotent on a request id), GetJob,
// ListJobs, WatchJob, CancelJob, GetReport, FetchResult. CollectJobRecords
// (with a RunSource) turns a job's runs into the RunRecords AnalyzeRuns
// takes, named as every report names them.
//
// CoordinatorClient is safe for concurrent use. Needs the full build (not
// DRIFTSCOPE_ENGINE_ONLY); link driftscope::client.
#ifndef DRIFTSCOPE_PUBLIC_COORDINATOR_CLIENT_H_
#define DRIFTSCOPE_PUBLIC_COORDINATOR_CLIENT_H_

#include "client/lib/coordinator_client.h"
#include "proto/lib/run_records.h"

#endif  // DRIFTSCOPE_PUBLIC_COORDINATOR_CLIENT_H_
