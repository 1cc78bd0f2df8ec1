#include "engine/cuda/device_optimizer.h"

#include <cmath>
#include <utility>

#include "engine/cuda/device_layer.h"

namespace driftscope {

absl::Status DeviceOptimizer::Allocate(DeviceArena* arena, int64_t n) {
  n_ = n;
  auto slot = [&](bool want, float** out) -> absl::Status {
    if (!want) return absl::OkStatus();
    absl::StatusOr<float*> p = arena->Floats(n);
    if (!p.ok()) return p.status();
    *out = *p;
    return DeviceStatus(*ops_, ops_->Zero(*out, n * sizeof(float)));
  };
  switch (spec_.kind) {
    case OptimizerKind::kAdam:
      DS_RETURN_IF_ERROR(slot(true, &a_));
      DS_RETURN_IF_ERROR(slot(true, &b_));
      return slot(spec_.amsgrad, &c_);
    case OptimizerKind::kSgd:
      return slot(spec_.momentum != 0, &a_);
    case OptimizerKind::kRmsprop:
      DS_RETURN_IF_ERROR(slot(true, &a_));
      DS_RETURN_IF_ERROR(slot(spec_.centered, &b_));
      return slot(spec_.momentum > 0, &c_);
  }
  return absl::InvalidArgumentError("optimizer.kind is not a known kind");
}

absl::Status DeviceOptimizer::Step(float* params, const float* grads) {
  // Keras' ops.cast(python_float): through float32 (optimizer.cc).
  auto keras_cast = [](double x) {
    return static_cast<float>(static_cast<float>(x));
  };
  const float lr = static_cast<float>(spec_.learning_rate);
  // Keras' decoupled weight decay, after clipping (the caller clips first)
  // and before the update, inside the update's functor.
  dev::WeightDecay decay;
  if (spec_.weight_decay.has_value()) {
    decay.on = true;
    decay.wd = keras_cast(*spec_.weight_decay);
    decay.lr = lr;
  }
  dev::OpStatus s = dev::OpStatus::kOk;
  if (spec_.kind == OptimizerKind::kAdam) {
    const float t = static_cast<float>(iterations_ + 1);
    const float p1 = std::pow(keras_cast(spec_.beta_1), t);
    const float p2 = std::pow(keras_cast(spec_.beta_2), t);
    dev::AdamArgs a;
    a.p = params;
    a.g = grads;
    a.m = a_;
    a.v = b_;
    a.v_hat = c_;
    a.n = n_;
    a.alpha = lr * std::sqrt(1.0f - p2) / (1.0f - p1);
    a.one_minus_beta_1 = static_cast<float>(1.0 - spec_.beta_1);
    a.one_minus_beta_2 = static_cast<float>(1.0 - spec_.beta_2);
    a.epsilon = static_cast<float>(spec_.epsilon);
    a.decay = decay;
    s = ops_->Run(a);
  } else if (spec_.kind == OptimizerKind::kSgd) {
    dev::SgdArgs a;
    a.p = params;
    a.g = grads;
    a.m = a_;
    a.n = n_;
    a.lr = lr;
    a.momentum = keras_cast(spec_.momentum);
    a.nesterov = spec_.nesterov;
    a.decay = decay;
    s = ops_->Run(a);
  } else {
    dev::RmspropArgs a;
    a.p = params;
    a.g = grads;
    a.velocity = a_;
    a.average = b_;
    a.momentums = c_;
    a.n = n_;
    a.lr = lr;
    a.rho = static_cast<float>(spec_.rho);
    a.one_minus_rho = static_cast<float>(1.0 - spec_.rho);
    a.momentum = static_cast<float>(spec_.momentum);
    a.epsilon = static_cast<float>(spec_.epsilon);
    a.decay = decay;
    s = ops_->Run(a);
  }
  ++iterations_;
  return DeviceStatus(*ops_, s);
}

absl::Status DeviceClipper::Allocate(DeviceArena* arena) {
  int64_t chunks = 0;
  for (const VariableSlice& v : vars_) {
    chunk_base_.push_back(chunks);
    chunks += dev::NormChunks(v.size);
  }
  absl::StatusOr<float*> p = arena->Floats(chunks);
  if (!p.ok()) return p.status();
  partial_ = *p;
  total_chunks_ = chunks;
  absl::StatusOr<float*> f =
      arena->Floats(static_cast<int64_t>(vars_.size()) + 1);
  if (!f.ok()) return f.status();
  factor_ = *f;
  return absl::OkStatus();
}

absl::Status DeviceClipper::Apply(float* grads, int64_t n) {
  if (spec_.clipvalue) {
    dev::ClipApplyArgs a;
    a.mode = dev::kClipValue;
    a.g = grads;
    a.n = n;
    a.c = static_cast<float>(*spec_.clipvalue);
    return Run(a);
  }
  if (!spec_.clipnorm && !spec_.global_clipnorm) return absl::OkStatus();
  for (size_t i = 0; i < vars_.size(); ++i) {
    dev::SquaresArgs a;
    a.g = grads + vars_[i].offset;
    a.n = vars_[i].size;
    a.partial = partial_ + chunk_base_[i];
    DS_RETURN_IF_ERROR(Run(a));
  }
  if (spec_.global_clipnorm) {
    dev::ClipFactorArgs f;
    f.mode = dev::kClipGlobalNorm;
    f.partial = partial_;
    f.chunks = total_chunks_;
    f.c = static_cast<float>(*spec_.global_clipnorm);
    f.inv_c = static_cast<float>(1.0 / *spec_.global_clipnorm);
    f.out = factor_;
    DS_RETURN_IF_ERROR(Run(f));
    dev::ClipApplyArgs a;
    a.mode = dev::kClipGlobalNorm;
    a.g = grads;
    a.n = n;
    a.factor = factor_;
    return Run(a);
  }
  const float c = static_cast<float>(*spec_.clipnorm);
  for (size_t i = 0; i < vars_.size(); ++i) {
    dev::ClipFactorArgs f;
    f.mode = dev::kClipNorm;
    f.partial = partial_ + chunk_base_[i];
    f.chunks = dev::NormChunks(vars_[i].size);
    f.c = c;
    f.out = factor_ + i;
    DS_RETURN_IF_ERROR(Run(f));
    dev::ClipApplyArgs a;
    a.mode = dev::kClipNorm;
    a.g = grads + vars_[i].offset;
    a.n = vars_[i].size;
    a.factor = factor_ + i;
    a.c = c;
    DS_RETURN_IF_ERROR(Run(a));
  }
  return absl::OkStatus();
}

}  // namespace driftscope
