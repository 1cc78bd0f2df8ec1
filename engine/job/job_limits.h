// Job size limits (DESIGN §10): the checks a worker makes before any work,
// and the coordinator makes at submission with the same values, so a job
// over a worker's limits is refused before it is queued. Pure functions,
// safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_JOB_JOB_LIMITS_H_
#define DRIFTSCOPE_ENGINE_JOB_JOB_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "engine/job/job_spec.h"

namespace driftscope {

// Job sizes a worker accepts (DESIGN §10); checked before any work.
struct JobLimits {
  int max_units = 4096;  // of any layer
  int max_timesteps = 100000;
  int64_t max_samples = 10000000;  // training and eval samples, each
  int max_epochs = 100000;
  double max_flops = 1e15;  // EstimateJobFlops; 0: no limit
};

// Floating-point operations of the job's GEMMs: forward over every training
// sample for every epoch ×3 (forward + backward), plus the forward passes of
// the evaluations. Elementwise work is left out: it is a lower bound, close
// for the widths that make a job expensive.
double EstimateJobFlops(const JobSpec& spec, int64_t train_samples,
                        int64_t eval_samples);

// ResourceExhausted naming the limit and the job's value, or OK.
absl::Status CheckJobLimits(const JobSpec& spec, int64_t train_samples,
                            int64_t eval_samples, const JobLimits& limits);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_JOB_JOB_LIMITS_H_
