#include "engine/cuda/device_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cuda/device_layer.h"
#include "engine/layers/layer_internal.h"

namespace driftscope {

// The functor headers cannot include job_spec.h (nvcc never parses absl), so
// their codes mirror its enums; keep them equal.
static_assert(dev::kActTanh == static_cast<int>(Activation::kTanh));
static_assert(dev::kActSigmoid == static_cast<int>(Activation::kSigmoid));
static_assert(dev::kActHardSigmoidKeras2 ==
              static_cast<int>(Activation::kHardSigmoidKeras2));
static_assert(dev::kActHardSigmoidKeras3 ==
              static_cast<int>(Activation::kHardSigmoidKeras3));
static_assert(dev::kActRelu == static_cast<int>(Activation::kRelu));
static_assert(dev::kActLinear == static_cast<int>(Activation::kLinear));

absl::Status DeviceStatus(dev::DeviceOps& ops, dev::OpStatus s) {
  switch (s) {
    case dev::OpStatus::kOk:
      return absl::OkStatus();
    case dev::OpStatus::kOutOfMemory:
      return absl::ResourceExhaustedError(ops.last_error());
    case dev::OpStatus::kUnsupported:
      return absl::FailedPreconditionError(ops.last_error());
    case dev::OpStatus::kDeviceError:
      break;
  }
  return absl::InternalError(ops.last_error());
}

DeviceArena::~DeviceArena() {
  for (void* p : blocks_) ops_->Free(p);
}

absl::StatusOr<void*> DeviceArena::Bytes(size_t bytes) {
  void* p = nullptr;
  const dev::OpStatus s = ops_->Alloc(bytes, &p);
  if (s == dev::OpStatus::kOutOfMemory) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "device memory exhausted: ", ops_->last_error(), " (", bytes_,
        " bytes already held by this run, ", bytes, " more needed)"));
  }
  if (s != dev::OpStatus::kOk) return DeviceStatus(*ops_, s);
  blocks_.push_back(p);
  bytes_ += static_cast<int64_t>(bytes);
  return p;
}

absl::StatusOr<float*> DeviceArena::Floats(int64_t count) {
  absl::StatusOr<void*> p =
      Bytes(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float));
  if (!p.ok()) return p.status();
  return static_cast<float*>(*p);
}

absl::StatusOr<int32_t*> DeviceArena::Ints(int64_t count) {
  absl::StatusOr<void*> p =
      Bytes(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(int32_t));
  if (!p.ok()) return p.status();
  return static_cast<int32_t*>(*p);
}

namespace {

std::unique_ptr<DeviceLayer> NewDeviceLayer(dev::DeviceOps* ops,
                                            const LayerSpec& spec,
                                            const ActivationShape& in,
                                            bool tf32, bool cudnn) {
  if (cudnn &&
      (spec.kind == LayerKind::kLstm || spec.kind == LayerKind::kGru)) {
    return NewDeviceCudnnRnn(ops, spec, in, tf32);
  }
  switch (spec.kind) {
    case LayerKind::kLstm:
      return NewDeviceLstm(ops, spec, in, tf32);
    case LayerKind::kGru:
      return NewDeviceGru(ops, spec, in, tf32);
    case LayerKind::kSimpleRnn:
      return NewDeviceSimpleRnn(ops, spec, in, tf32);
    case LayerKind::kDense:
    case LayerKind::kEmbedding:  // refused before (CheckDeviceSupports)
      break;
  }
  return NewDeviceDense(ops, spec, in, tf32);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceModel>> DeviceModel::Create(
    dev::DeviceOps* ops, const ModelSpec& spec, int max_batch, bool tf32,
    bool cudnn) {
  if (max_batch < 1 || spec.layers.empty()) {
    return absl::InvalidArgumentError(
        "device model: needs max_batch >= 1 and at least one layer");
  }
  std::unique_ptr<DeviceModel> m(new DeviceModel(ops));
  ActivationShape in{true, spec.timesteps, spec.features};
  int64_t offset = 0, max_grad = 0;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    // The CPU layer's checks (and its weight shapes) are the one home of
    // what a layer accepts.
    absl::StatusOr<std::unique_ptr<Layer<float>>> cpu = MakeLayer<float>(
        spec.layers[i], in, absl::StrCat("model.layers[", i, "]"));
    if (!cpu.ok()) return cpu.status();
    m->offsets_.push_back(offset);
    offset += (*cpu)->num_params();
    if (i > 0) max_grad = std::max(max_grad, in.per_sample());
    std::unique_ptr<DeviceLayer> layer =
        NewDeviceLayer(ops, spec.layers[i], in, tf32, cudnn);
    if (absl::Status s = layer->Allocate(&m->arena_, max_batch); !s.ok()) {
      return s;
    }
    in = layer->output_shape();
    absl::StatusOr<float*> act = m->arena_.Floats(max_batch * in.per_sample());
    if (!act.ok()) return act.status();
    m->acts_.push_back(*act);
    m->layers_.push_back(std::move(layer));
  }
  m->num_params_ = offset;
  for (float** buf : {&m->params_, &m->grads_}) {
    absl::StatusOr<float*> p = m->arena_.Floats(offset);
    if (!p.ok()) return p.status();
    *buf = *p;
  }
  for (float*& d : m->dbuf_) {
    absl::StatusOr<float*> p = m->arena_.Floats(max_batch * max_grad);
    if (!p.ok()) return p.status();
    d = *p;
  }
  return m;
}

DeviceModel::DeviceModel(dev::DeviceOps* ops) : ops_(ops), arena_(ops) {}
DeviceModel::~DeviceModel() = default;

ActivationShape DeviceModel::input_shape() const {
  return layers_.front()->input_shape();
}
ActivationShape DeviceModel::output_shape() const {
  return layers_.back()->output_shape();
}

absl::Status DeviceModel::Forward(const float* x, int batch, const float** y) {
  const float* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    DS_RETURN_IF_ERROR(
        layers_[i]->Forward(params_ + offsets_[i], in, batch, acts_[i]));
    in = acts_[i];
  }
  *y = in;
  return absl::OkStatus();
}

absl::Status DeviceModel::Backward(const float* dy, float* dx_input) {
  const float* grad_out = dy;
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    float* dx = i > 0 ? dbuf_[i % 2] : dx_input;
    DS_RETURN_IF_ERROR(layers_[i]->Backward(params_ + offsets_[i], grad_out, dx,
                                            grads_ + offsets_[i]));
    grad_out = dx;
  }
  return absl::OkStatus();
}

std::vector<const float*> DeviceModel::final_states() const {
  return layers_.back()->final_states();
}

}  // namespace driftscope
