// DeviceModel: the model stack of engine/train/model.h on a DeviceOps
// backend. Parameters, gradients and every activation cache live in device
// memory, allocated once for batches of at most max_batch; Forward and
// Backward only queue ops (the GEMMs and the *_kernels.h functors), in the
// order engine/layers/*.cc compute on the CPU: time-major caches in
// processing order, x·W for all steps in one GEMM, h·R per step, weight
// gradients as single GEMMs over all steps, bias gradients "batch, then time".
// One thread at a time; the model owns its device buffers, the caller owns
// the ops table and keeps it alive longer than the model.
#ifndef DRIFTSCOPE_ENGINE_CUDA_DEVICE_MODEL_H_
#define DRIFTSCOPE_ENGINE_CUDA_DEVICE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/cuda/device_ops.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"

namespace driftscope {

// OpStatus -> absl::Status: kOutOfMemory is ResourceExhausted, kDeviceError
// Internal, kUnsupported FailedPrecondition, each with the backend's message.
absl::Status DeviceStatus(dev::DeviceOps& ops, dev::OpStatus s);

// Device memory owned by one object; freed by the destructor.
class DeviceArena {
 public:
  explicit DeviceArena(dev::DeviceOps* ops) : ops_(ops) {}
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // count floats (or ints). ResourceExhausted names the bytes.
  absl::StatusOr<float*> Floats(int64_t count);
  absl::StatusOr<int32_t*> Ints(int64_t count);
  int64_t bytes() const { return bytes_; }

 private:
  absl::StatusOr<void*> Bytes(size_t bytes);
  dev::DeviceOps* ops_;
  std::vector<void*> blocks_;
  int64_t bytes_ = 0;
};

class DeviceLayer;

class DeviceModel {
 public:
  // The layers of `spec` (with `implementation` forced on the RNNs when not
  // 0, as the CPU trainer does) over device buffers for max_batch samples.
  // InvalidArgument from the layers' checks; ResourceExhausted with the
  // bytes when device memory runs out.
  static absl::StatusOr<std::unique_ptr<DeviceModel>> Create(
      dev::DeviceOps* ops, const ModelSpec& spec, int max_batch, bool tf32);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  int64_t num_params() const { return num_params_; }
  float* params() { return params_; }
  float* grads() { return grads_; }
  ActivationShape input_shape() const;
  ActivationShape output_shape() const;
  int64_t device_bytes() const { return arena_.bytes(); }

  // Queues the forward pass of `batch` samples of device x (which must stay
  // unchanged until Backward); *y receives the output's device pointer.
  absl::Status Forward(const float* x, int batch, const float** y);
  // Queues back-propagation of device dy; overwrites grads().
  absl::Status Backward(const float* dy);
  // After Forward: the last layer's final states (device pointers, each
  // (batch, U)); empty for Dense.
  std::vector<const float*> final_states() const;

 private:
  explicit DeviceModel(dev::DeviceOps* ops);

  dev::DeviceOps* ops_;
  DeviceArena arena_;
  std::vector<std::unique_ptr<DeviceLayer>> layers_;
  std::vector<int64_t> offsets_;
  std::vector<float*> acts_;
  float* dbuf_[2] = {nullptr, nullptr};
  float* params_ = nullptr;
  float* grads_ = nullptr;
  int64_t num_params_ = 0;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_DEVICE_MODEL_H_
