// driftscope/job_spec.h — the job: everything that defines one computation.
//
// JobSpec (model, optimizer, loss, data, training loop, seed), with Keras'
// defaults made explicit; DefaultJobSpec() is the built-in job of `make
// demo`; ValidateJobSpec names the offending field and value; SpecDigest is
// the SHA-256 of CanonicalText: two runs with the same digest claim to
// compute the same thing. Reading a spec from its JSON form needs the
// client library (driftscope/worker_client.h pulls it in).
//
// Values; thread-compatible.
#ifndef DRIFTSCOPE_PUBLIC_JOB_SPEC_H_
#define DRIFTSCOPE_PUBLIC_JOB_SPEC_H_

#include "engine/job/job_spec.h"

#endif  // DRIFTSCOPE_PUBLIC_JOB_SPEC_H_
