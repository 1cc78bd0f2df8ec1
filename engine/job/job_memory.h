// Peak memory of one run, computed from the spec before any work (issue:
// a valid job whose eval outputs alone need terabytes must be refused, not
// started). Mirrors what RunJob allocates: the flat parameter, gradient and
// optimizer buffers, each layer's activation caches for one batch, the
// training and eval data in run precision, the result tensors (outputs,
// epoch outputs, final weights and states, losses), the per-step weight
// fingerprints, and the buffers that carry a result off the machine. An
// upper bound by design: tests hold it above the measured peak RSS and
// within a stated margin of it. Pure functions, safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_JOB_JOB_MEMORY_H_
#define DRIFTSCOPE_ENGINE_JOB_JOB_MEMORY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"

namespace driftscope {

// Bytes by what they hold. All fields are ≥ 0; saturate at INT64_MAX/8 so
// absurd specs still compare correctly.
struct JobMemory {
  int64_t weights = 0;        // parameters, gradients, final weights, packing
  int64_t optimizer = 0;      // Adam / momentum / RMSprop slots
  int64_t activations = 0;    // layer caches and GEMM scratch for one batch
  int64_t data = 0;           // training and eval inputs and targets
  int64_t generator = 0;      // float32 data before conversion (early only)
  int64_t outputs = 0;        // final eval outputs, states and losses
  int64_t epoch_outputs = 0;  // eval outputs after every epoch (if captured)
  int64_t fingerprints = 0;   // two SHA-256 per step, digests and hex text
  int64_t transfer = 0;       // the wire buffers of a worker or the CLI

  // The peak: the data, the transfer buffers, and the larger of the
  // generator output (made before the model exists) and everything else.
  int64_t total() const;
  // What stays alive after the run: the RunResult (outputs, epoch outputs,
  // losses, final weights, fingerprints). The CLI holds one per run.
  int64_t result = 0;
};

// The peak of one run of `spec` under `profile` with the given sample
// counts (the generator's, or the rows of supplied tensors).
JobMemory EstimateJobMemory(const JobSpec& spec, const Profile& profile,
                            int64_t train_samples, int64_t eval_samples);

// "1.5 GiB", "12.0 MiB", "512 B".
std::string FormatBytes(int64_t bytes);

// ResourceExhausted when `needed` is above `limit_bytes` (0: no limit),
// naming both, the biggest part of the estimate, and `limit_name` (the
// flag or the worker the limit comes from). The message says nothing was
// started.
absl::Status CheckJobMemory(const JobMemory& needed, int64_t limit_bytes,
                            absl::string_view limit_name);

// The memory this process may use: the smaller of the machine's physical
// memory and the cgroup limit (v2 memory.max, v1 memory.limit_in_bytes),
// or 0 when neither can be read.
int64_t AvailableMemoryBytes();

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_JOB_JOB_MEMORY_H_
