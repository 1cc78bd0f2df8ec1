// Keras optimizers (docs/numerics.md §7): Adam (amsgrad), SGD (momentum,
// nesterov), RMSprop (rho, momentum, centered), with clipnorm (per
// variable), global_clipnorm or clipvalue applied first. One thread at a
// time; the optimizer owns its slot variables.
#ifndef DRIFTSCOPE_ENGINE_OPTIM_OPTIMIZER_H_
#define DRIFTSCOPE_ENGINE_OPTIM_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"

namespace driftscope {

// One trainable variable (one Keras weight) inside the flat buffers, in
// Keras trainable_variables order.
struct VariableSlice {
  int64_t offset = 0;
  int64_t size = 0;
};

template <typename T>
class Optimizer {
 public:
  // InvalidArgument naming "optimizer.<field>" for bad hyper-parameters.
  static absl::StatusOr<std::unique_ptr<Optimizer<T>>> Create(
      const OptimizerSpec& spec, std::vector<VariableSlice> variables);
  virtual ~Optimizer() = default;

  // One Keras step over all variables: clip `grads` in place, then update
  // `params`; afterwards iterations() has grown by one. Scalars derived from
  // hyper-parameters follow Keras' rounding (e.g. 1−β in double, then to T).
  virtual void Apply(T* params, T* grads) = 0;
  int64_t iterations() const { return iterations_; }

 protected:
  int64_t iterations_ = 0;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_OPTIM_OPTIMIZER_H_
