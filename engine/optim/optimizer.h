// Keras optimizers (docs/numerics.md §7): Adam (amsgrad), SGD (momentum,
// nesterov), RMSprop (rho, momentum, centered), with clipnorm (per
// variable), global_clipnorm or clipvalue applied first, then decoupled
// weight decay. One thread at a
// time; the optimizer owns its slot variables.
#ifndef DRIFTSCOPE_ENGINE_OPTIM_OPTIMIZER_H_
#define DRIFTSCOPE_ENGINE_OPTIM_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <utility>
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

  // One Keras step over all variables: clip `grads` in place, decay
  // `params` (weight_decay), then update them; afterwards iterations() has
  // grown by one. Scalars derived from hyper-parameters follow Keras' rounding
  // (e.g. 1−β in double, then to T).
  virtual void Apply(T* params, T* grads) = 0;
  int64_t iterations() const { return iterations_; }

  // Keras hands its optimizers an Embedding's gradient as IndexedSlices:
  // one row per token occurrence. Linear uses sum the rows (the dense
  // gradient in `grads`), but squares are taken per occurrence: Adam's and
  // RMSprop's second moments add Σ_k g_k², and clipnorm's norm is
  // sqrt(Σ_k ‖g_k‖²). squares[v], when not null, holds that Σ_k g_k² per
  // element of variable v (the layer writes it in Backward) and is used,
  // and scaled with the gradient by clipnorm, in the next Apply. Set once;
  // the buffers must outlive the optimizer's use of them.
  void SetOccurrenceSquares(std::vector<T*> squares) {
    squares_ = std::move(squares);
  }

 protected:
  // The occurrence squares of variable v, or null.
  T* squares(size_t v) const {
    return v < squares_.size() ? squares_[v] : nullptr;
  }

  int64_t iterations_ = 0;

 private:
  std::vector<T*> squares_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_OPTIM_OPTIMIZER_H_
