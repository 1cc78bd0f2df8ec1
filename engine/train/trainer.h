// RunJob: trains a JobSpec under a Profile and captures a RunResult.
//
// Deterministic: the same spec, profile and build give bit-identical results
// (DESIGN §5) whatever the thread count or load. Safe to call concurrently
// from several threads (each call owns all of its state).
#ifndef DRIFTSCOPE_ENGINE_TRAIN_TRAINER_H_
#define DRIFTSCOPE_ENGINE_TRAIN_TRAINER_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/run_result.h"

namespace driftscope {

struct ProgressEvent {
  int epoch = 0;     // 0-based
  int64_t step = 0;  // 1-based global step just completed
  int64_t total_steps = 0;
  double loss = 0;  // that step's batch loss
};

struct RunOptions {
  // Keras get_weights() order: for each layer i, its weights in
  // Layer::weights() order. Any dtype; converted to the run precision.
  std::optional<std::vector<NdArray>> init_weights;
  // Supplied data replaces the spec's generator: x (N,T,F), y shaped like
  // the model output; eval_x defaults to x.
  std::optional<NdArray> x, y, eval_x;
  std::function<void(const ProgressEvent&)> on_progress;  // may be empty
  const std::atomic<bool>* cancel = nullptr;  // checked before every step
};

// What CheckRunInputs' errors call the supplied tensors: the CLI's flags by
// default (RunJob's own errors use these), a request's fields for a worker.
struct RunInputNames {
  std::string x = "--x", y = "--y", eval_x = "--eval-x";
  std::string init_weights = "init weights";
};

// The checks RunJob makes on options' supplied tensors, without running
// anything: x and y together, their shapes against the spec's model, the
// initial weights' count and shapes (Keras get_weights() order), all values
// finite. InvalidArgument naming the tensor as `names` says.
absl::Status CheckRunInputs(const JobSpec& spec, const RunOptions& options,
                            const RunInputNames& names = {});

// For a model that starts with an Embedding: every value of x (N, T, 1) is
// an integer token id in [0, input_dim); InvalidArgument naming `name`, the
// sample, the timestep and the value otherwise. OK for other models.
absl::Status CheckTokenIds(const std::string& name, const NdArray& x,
                           const ModelSpec& model);

// InvalidArgument (naming the field) for a bad spec or bad supplied tensors;
// Cancelled when *cancel became true. Never partially fills a result.
absl::StatusOr<RunResult> RunJob(const JobSpec& spec, const Profile& profile,
                                 const RunOptions& options = {});

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_TRAINER_H_
