// driftscope/train.h — train a job under a profile, in this process.
//
// RunJob(spec, profile, options) -> RunResult: eval outputs, loss per step,
// a fingerprint of the weights after every step, per-epoch snapshots, final
// weights and states. Same spec + same build + same profile gives the same
// bits, every time (unless the profile asks for nondeterminism).
// RunProfiles trains one job under many profiles on a few threads;
// SweepKnobs ranks the knobs that tell two profiles apart by the drift
// each causes alone.
//
// RunJob is safe for concurrent use (each call owns its run).
#ifndef DRIFTSCOPE_PUBLIC_TRAIN_H_
#define DRIFTSCOPE_PUBLIC_TRAIN_H_

#include "engine/report/profile_runs.h"
#include "engine/train/run_result.h"
#include "engine/train/trainer.h"

#endif  // DRIFTSCOPE_PUBLIC_TRAIN_H_
