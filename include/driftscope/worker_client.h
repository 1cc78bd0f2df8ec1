// driftscope/worker_client.h — run a job on a remote driftscope-worker.
//
// WorkerClient::Create(options) then Run(spec, profile): the same RunResult
// an in-process RunJob gives, streamed back in checked chunks; Describe()
// says what the worker is. LoadSpecJson / ParseSpecJson read a job spec in
// its JSON form (proto/driftscope/v1/job.proto).
//
// WorkerClient is safe for concurrent use. Needs the full build (not
// DRIFTSCOPE_ENGINE_ONLY); link driftscope::client.
#ifndef DRIFTSCOPE_PUBLIC_WORKER_CLIENT_H_
#define DRIFTSCOPE_PUBLIC_WORKER_CLIENT_H_

#include "client/lib/worker_client.h"
#include "proto/lib/spec_json.h"

#endif  // DRIFTSCOPE_PUBLIC_WORKER_CLIENT_H_
