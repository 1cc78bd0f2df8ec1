// Job specs shared by the worker daemon tests. Pure functions.
#ifndef DRIFTSCOPE_TESTS_SERVER_WORKER_TEST_SPECS_H_
#define DRIFTSCOPE_TESTS_SERVER_WORKER_TEST_SPECS_H_

#include "engine/job/job_spec.h"

namespace driftscope::testing {

// The default model on 64 samples, one epoch: well under a second.
inline JobSpec SmallSpec() {
  JobSpec s = DefaultJobSpec();
  s.data.samples = 64;
  s.data.eval_samples = 16;
  s.training.epochs = 1;
  return s;
}

// Trains for minutes unless cancelled or killed.
inline JobSpec LongWorkerSpec() {
  JobSpec s = SmallSpec();
  s.training.epochs = 100000;
  return s;
}

// Large outputs for almost no compute, no training: Dense(256, linear) over
// 100 timesteps, 102,400 bytes of float32 outputs per eval sample.
inline JobSpec LargeOutputSpec(int eval_samples) {
  JobSpec s = DefaultJobSpec();
  s.model.timesteps = 100;
  s.model.layers.assign(1, LayerSpec{});
  s.model.layers[0].kind = LayerKind::kDense;
  s.model.layers[0].units = 256;
  s.model.layers[0].activation = Activation::kLinear;
  s.data.eval_samples = eval_samples;
  s.training.epochs = 0;
  return s;
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_WORKER_TEST_SPECS_H_
