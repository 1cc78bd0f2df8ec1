// RunDeviceJob: RunJob (engine/train/trainer.h) for profiles with
// device=cuda or device=cuda-emu. RunJob dispatches here once, on
// profile.device.
//
// Same semantics as the CPU trainer: the same Philox data and initial weights
// made on the host (so step-0 fingerprints equal the CPU's), the same
// shuffling, losses, optimizers and clipping, and the same RunResult
// (outputs, per-step losses and fingerprints, epoch outputs, final weights
// and states), progress callback and cancel checked before every step.
// Parameters, optimizer slots and activations stay in device memory; per step
// only the batch indices go down and the loss and the weights (for the
// fingerprint) come back. Safe to call concurrently (each call owns its ops
// table and buffers); several calls on one GPU share its memory.
#ifndef DRIFTSCOPE_ENGINE_CUDA_DEVICE_TRAINER_H_
#define DRIFTSCOPE_ENGINE_CUDA_DEVICE_TRAINER_H_

#include "absl/status/statusor.h"
#include "engine/cuda/device_ops.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/run_result.h"
#include "engine/train/trainer.h"

namespace driftscope {

// Opens the backend the profile names (the host emulation, or the CUDA
// library through dlopen) and trains. Errors: FailedPrecondition naming why
// no device can run it ("no CUDA device: ..."); ResourceExhausted with the
// bytes when device memory runs out; Internal with the CUDA error text;
// plus RunJob's InvalidArgument and Cancelled.
absl::StatusOr<RunResult> RunDeviceJob(const JobSpec& spec,
                                       const Profile& profile,
                                       const RunOptions& options);

// The same on a given ops table (tests inject faults this way).
absl::StatusOr<RunResult> RunJobOnDeviceOps(const JobSpec& spec,
                                            const Profile& profile,
                                            const RunOptions& options,
                                            dev::DeviceOps* ops);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_TRAINER_H_
