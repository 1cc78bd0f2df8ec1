// The optimizer step and gradient clipping of a device run: Keras' Adam,
// SGD and RMSprop (and the decoupled weight_decay of all three) with their
// slots in device memory, and clipnorm,
// global_clipnorm or clipvalue, as engine/optim/ computes them, through the
// optimizer_kernels.h and clip_kernels.h functors. The per-step scalars are
// computed on the host in float exactly as engine/optim/optimizer.cc does.
// One thread at a time; the caller owns the ops table and the arena.
#ifndef DRIFTSCOPE_ENGINE_CUDA_DEVICE_OPTIMIZER_H_
#define DRIFTSCOPE_ENGINE_CUDA_DEVICE_OPTIMIZER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/cuda/device_model.h"
#include "engine/cuda/device_ops.h"
#include "engine/job/job_spec.h"
#include "engine/optim/optimizer.h"

namespace driftscope {

// The optimizer's slots and its per-step scalars, computed on the host
// exactly as engine/optim/optimizer.cc computes them in float.
class DeviceOptimizer {
 public:
  DeviceOptimizer(dev::DeviceOps* ops, const OptimizerSpec& spec)
      : ops_(ops), spec_(spec) {}

  absl::Status Allocate(DeviceArena* arena, int64_t n);

  absl::Status Step(float* params, const float* grads);

 private:
  dev::DeviceOps* ops_;
  const OptimizerSpec spec_;
  int64_t n_ = 0;
  int64_t iterations_ = 0;
  float *a_ = nullptr, *b_ = nullptr, *c_ = nullptr;
};

// Keras clipping (exactly one mode, or none) over the model's variables.
class DeviceClipper {
 public:
  DeviceClipper(dev::DeviceOps* ops, const OptimizerSpec& spec,
                std::vector<VariableSlice> vars)
      : ops_(ops), spec_(spec), vars_(std::move(vars)) {}

  absl::Status Allocate(DeviceArena* arena);

  absl::Status Apply(float* grads, int64_t n);

 private:
  template <typename Args>
  absl::Status Run(const Args& a) {
    if (a.size() == 0) return absl::OkStatus();
    return DeviceStatus(*ops_, ops_->Run(a));
  }
  dev::DeviceOps* ops_;
  const OptimizerSpec spec_;
  const std::vector<VariableSlice> vars_;
  std::vector<int64_t> chunk_base_;
  float* partial_ = nullptr;
  float* factor_ = nullptr;
  int64_t total_chunks_ = 0;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_OPTIMIZER_H_
