// Keras 3 Adam, SGD and RMSprop update steps (docs/numerics.md §7), op by op
// in the order of keras/src/optimizers/{adam,sgd,rmsprop}.py so that the
// bits match Keras' eager execution. Python-float hyper-parameters enter as
// Keras feeds them to TF: `1 − β` and `1 − ρ` are evaluated in double and
// then rounded to T; everything else is rounded to T first, except that
// Keras' ops.cast(python_float, dtype) converts the float to a float32
// tensor before casting (tf.convert_to_tensor's default), so Adam's β1, β2
// (inside pow) and SGD's momentum are float32 values even in float64 runs
// (KerasCast below). Under
// tf.function, grappler rewrites RMSprop's x / sqrt(y) into x · rsqrt(y);
// we keep the source formula (the difference is an ulp or two).
#include "engine/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/optim/clip.h"

namespace driftscope {
namespace {

template <typename T>
T MaxNan(T a, T b) {  // tf.maximum: NaN from either side wins
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
  return a < b ? b : a;
}

// ops.cast(python_float, T) in Keras' TF backend: through float32 first.
template <typename T>
T KerasCast(double x) {
  return static_cast<T>(static_cast<float>(x));
}

absl::Status Bad(absl::string_view field, absl::string_view rule,
                 double value) {
  return absl::InvalidArgumentError(
      absl::StrCat("optimizer.", field, " must be ", rule, ", got ", value));
}

absl::Status CheckPositive(absl::string_view field, double v) {
  if (!std::isfinite(v) || !(v > 0)) {
    return Bad(field, "a finite number > 0", v);
  }
  return absl::OkStatus();
}
absl::Status CheckUnitInterval(absl::string_view field, double v) {
  if (!(v >= 0 && v < 1)) return Bad(field, "in [0, 1)", v);
  return absl::OkStatus();
}
absl::Status CheckEpsilon(double v) {
  if (!std::isfinite(v) || !(v >= 0)) {
    return Bad("epsilon", "a finite number >= 0", v);
  }
  return absl::OkStatus();
}

absl::Status Validate(const OptimizerSpec& s,
                      const std::vector<VariableSlice>& variables) {
  if (absl::Status st = CheckPositive("learning_rate", s.learning_rate);
      !st.ok()) {
    return st;
  }
  switch (s.kind) {
    case OptimizerKind::kAdam:
      if (auto st = CheckUnitInterval("beta_1", s.beta_1); !st.ok()) return st;
      if (auto st = CheckUnitInterval("beta_2", s.beta_2); !st.ok()) return st;
      if (auto st = CheckEpsilon(s.epsilon); !st.ok()) return st;
      break;
    case OptimizerKind::kSgd:
      // Keras accepts nesterov=True with momentum 0 and then ignores it.
      if (auto st = CheckUnitInterval("momentum", s.momentum); !st.ok()) {
        return st;
      }
      break;
    case OptimizerKind::kRmsprop:
      if (auto st = CheckUnitInterval("rho", s.rho); !st.ok()) return st;
      if (auto st = CheckUnitInterval("momentum", s.momentum); !st.ok()) {
        return st;
      }
      if (auto st = CheckEpsilon(s.epsilon); !st.ok()) return st;
      break;
    default:
      return absl::InvalidArgumentError("optimizer.kind is not a known kind");
  }
  int clips = 0;
  std::string given;
  const std::pair<const char*, const std::optional<double>*> modes[] = {
      {"clipnorm", &s.clipnorm},
      {"global_clipnorm", &s.global_clipnorm},
      {"clipvalue", &s.clipvalue}};
  for (const auto& [name, value] : modes) {
    if (!value->has_value()) continue;
    if (auto st = CheckPositive(name, **value); !st.ok()) return st;
    absl::StrAppend(&given, clips++ ? " and " : "", name, "=", **value);
  }
  if (clips > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer: only one of clipnorm, global_clipnorm and clipvalue may "
        "be set (as in Keras), got ",
        given));
  }
  if (s.weight_decay.has_value() &&
      (!std::isfinite(*s.weight_decay) || *s.weight_decay < 0)) {
    return Bad("weight_decay", "a finite number >= 0", *s.weight_decay);
  }
  for (size_t i = 0; i < variables.size(); ++i) {
    if (variables[i].offset < 0 || variables[i].size < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer variables[", i,
                       "] must have offset >= 0 and size >= 0, "
                       "got offset ",
                       variables[i].offset, " and size ", variables[i].size));
    }
  }
  return absl::OkStatus();
}

int64_t Extent(const std::vector<VariableSlice>& variables) {
  int64_t n = 0;
  for (const VariableSlice& v : variables) n = std::max(n, v.offset + v.size);
  return n;
}

// Shared by the three optimizers: the variable list, the clipping step and
// slot buffers laid out like the parameters (same offsets).
template <typename T>
class KerasOptimizer : public Optimizer<T> {
 public:
  KerasOptimizer(const OptimizerSpec& spec, std::vector<VariableSlice> vars)
      : spec_(spec), vars_(std::move(vars)), extent_(Extent(vars_)) {}

  void Apply(T* params, T* grads) final {
    if (spec_.clipnorm) {
      ClipSparseByNorm(grads);
      ClipByNormPerVariable(dense_vars_, *spec_.clipnorm, grads);
    } else if (spec_.global_clipnorm) {
      ClipByGlobalNorm(vars_, *spec_.global_clipnorm, grads);
    } else if (spec_.clipvalue) {
      ClipByValue(vars_, *spec_.clipvalue, grads);
    }
    if (spec_.weight_decay) ApplyWeightDecay(params);
    BeginStep();
    for (size_t k = 0; k < vars_.size(); ++k) {
      sq_ = this->squares(k);
      Update(vars_[k].offset, vars_[k].size, params, grads);
    }
    sq_ = nullptr;
    ++this->iterations_;
  }

 protected:
  std::vector<T> Slot() const { return std::vector<T>(extent_, T(0)); }
  // Scalars that depend on the step (Adam's bias correction).
  virtual void BeginStep() {}
  virtual void Update(int64_t off, int64_t n, T* params, const T* g) = 0;
  // g², or for a variable with occurrence squares (SetOccurrenceSquares)
  // their sum Σ_k g_k², element i of the variable being updated.
  T Square(const T* g, int64_t i) const {
    return sq_ != nullptr ? sq_[i] : g[i] * g[i];
  }

  const OptimizerSpec spec_;

 private:
  // tf.clip_by_norm of an IndexedSlices: the norm of the occurrence rows,
  // each row scaled by c / max(norm, c); the dense sum and the squares
  // scale with it. Records the variables without squares for the dense
  // clip.
  void ClipSparseByNorm(T* grads) {
    dense_vars_.clear();
    const T c = static_cast<T>(*spec_.clipnorm);
    for (size_t k = 0; k < vars_.size(); ++k) {
      T* q = this->squares(k);
      if (q == nullptr) {
        dense_vars_.push_back(vars_[k]);
        continue;
      }
      const VariableSlice& v = vars_[k];
      T l2sum = T(0);
      for (int64_t i = 0; i < v.size; ++i) l2sum += q[i];
      const T l2norm = l2sum > T(0) ? std::sqrt(l2sum) : l2sum;
      const T denom = MaxNan(l2norm, c);
      const T f = c / denom;
      T* g = grads + v.offset;
      for (int64_t i = 0; i < v.size; ++i) {
        g[i] = (g[i] * c) / denom;
        q[i] = q[i] * f * f;
      }
    }
  }

  // Keras' TF backend: variable.assign_sub(variable * wd * lr), with wd cast
  // from the Python float (through float32) and lr the floatx variable.
  void ApplyWeightDecay(T* params) const {
    const T wd = KerasCast<T>(*spec_.weight_decay);
    const T lr = static_cast<T>(spec_.learning_rate);
    for (const VariableSlice& v : vars_) {
      T* p = params + v.offset;
      for (int64_t i = 0; i < v.size; ++i) p[i] = p[i] - (p[i] * wd) * lr;
    }
  }

  const std::vector<VariableSlice> vars_;
  std::vector<VariableSlice> dense_vars_;
  const int64_t extent_;
  const T* sq_ = nullptr;  // the squares of the variable being updated
};

template <typename T>
class Adam final : public KerasOptimizer<T> {
 public:
  Adam(const OptimizerSpec& s, std::vector<VariableSlice> vars)
      : KerasOptimizer<T>(s, std::move(vars)),
        lr_(static_cast<T>(s.learning_rate)),
        beta_1_(KerasCast<T>(s.beta_1)),
        beta_2_(KerasCast<T>(s.beta_2)),
        one_minus_beta_1_(static_cast<T>(1.0 - s.beta_1)),
        one_minus_beta_2_(static_cast<T>(1.0 - s.beta_2)),
        epsilon_(static_cast<T>(s.epsilon)),
        m_(this->Slot()),
        v_(this->Slot()),
        v_hat_(s.amsgrad ? this->Slot() : std::vector<T>()) {}

 private:
  void BeginStep() override {
    const T t = static_cast<T>(this->iterations_ + 1);
    // std::pow(float, float) is powf: float32 pow, as TF's Pow kernel.
    const T p1 = std::pow(beta_1_, t);
    const T p2 = std::pow(beta_2_, t);
    alpha_ = lr_ * std::sqrt(T(1) - p2) / (T(1) - p1);
  }
  void Update(int64_t off, int64_t n, T* params, const T* g) override {
    T* m = m_.data() + off;
    T* v = v_.data() + off;
    T* v_hat = this->spec_.amsgrad ? v_hat_.data() + off : nullptr;
    T* p = params + off;
    g += off;
    for (int64_t i = 0; i < n; ++i) {
      m[i] = m[i] + (g[i] - m[i]) * one_minus_beta_1_;
      v[i] = v[i] + (this->Square(g, i) - v[i]) * one_minus_beta_2_;
      T vi = v[i];
      if (v_hat != nullptr) vi = v_hat[i] = MaxNan(v_hat[i], v[i]);
      p[i] = p[i] - (m[i] * alpha_) / (std::sqrt(vi) + epsilon_);
    }
  }

  const T lr_, beta_1_, beta_2_, one_minus_beta_1_, one_minus_beta_2_, epsilon_;
  T alpha_ = T(0);
  std::vector<T> m_, v_, v_hat_;
};

template <typename T>
class Sgd final : public KerasOptimizer<T> {
 public:
  Sgd(const OptimizerSpec& s, std::vector<VariableSlice> vars)
      : KerasOptimizer<T>(s, std::move(vars)),
        lr_(static_cast<T>(s.learning_rate)),
        momentum_(KerasCast<T>(s.momentum)),
        m_(s.momentum != 0 ? this->Slot() : std::vector<T>()) {}

 private:
  void Update(int64_t off, int64_t n, T* params, const T* g) override {
    T* p = params + off;
    g += off;
    if (m_.empty()) {  // Keras tests `self.momentum != 0` on the Python float
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] - g[i] * lr_;
      return;
    }
    T* m = m_.data() + off;
    for (int64_t i = 0; i < n; ++i) {
      m[i] = m[i] * momentum_ - g[i] * lr_;
      if (this->spec_.nesterov) {
        p[i] = p[i] + (m[i] * momentum_ - g[i] * lr_);
      } else {
        p[i] = p[i] + m[i];
      }
    }
  }

  const T lr_, momentum_;
  std::vector<T> m_;
};

template <typename T>
class Rmsprop final : public KerasOptimizer<T> {
 public:
  Rmsprop(const OptimizerSpec& s, std::vector<VariableSlice> vars)
      : KerasOptimizer<T>(s, std::move(vars)),
        lr_(static_cast<T>(s.learning_rate)),
        rho_(static_cast<T>(s.rho)),
        one_minus_rho_(static_cast<T>(1.0 - s.rho)),
        momentum_(static_cast<T>(s.momentum)),
        epsilon_(static_cast<T>(s.epsilon)),
        velocity_(this->Slot()),
        average_(s.centered ? this->Slot() : std::vector<T>()),
        mom_(s.momentum > 0 ? this->Slot() : std::vector<T>()) {}

 private:
  void Update(int64_t off, int64_t n, T* params, const T* g) override {
    T* vel = velocity_.data() + off;
    T* avg = average_.empty() ? nullptr : average_.data() + off;
    T* mom = mom_.empty() ? nullptr : mom_.data() + off;
    T* p = params + off;
    g += off;
    for (int64_t i = 0; i < n; ++i) {
      vel[i] = rho_ * vel[i] + one_minus_rho_ * this->Square(g, i);
      T denom;
      if (avg != nullptr) {
        avg[i] = rho_ * avg[i] + one_minus_rho_ * g[i];
        denom = vel[i] - avg[i] * avg[i] + epsilon_;
      } else {
        denom = vel[i] + epsilon_;
      }
      const T increment = (lr_ * g[i]) / std::sqrt(denom);
      if (mom != nullptr) {
        mom[i] = momentum_ * mom[i] + increment;
        p[i] = p[i] - mom[i];
      } else {
        p[i] = p[i] - increment;
      }
    }
  }

  const T lr_, rho_, one_minus_rho_, momentum_, epsilon_;
  std::vector<T> velocity_, average_, mom_;
};

}  // namespace

template <typename T>
absl::StatusOr<std::unique_ptr<Optimizer<T>>> Optimizer<T>::Create(
    const OptimizerSpec& spec, std::vector<VariableSlice> variables) {
  if (absl::Status st = Validate(spec, variables); !st.ok()) return st;
  switch (spec.kind) {
    case OptimizerKind::kAdam:
      return std::unique_ptr<Optimizer<T>>(
          new Adam<T>(spec, std::move(variables)));
    case OptimizerKind::kSgd:
      return std::unique_ptr<Optimizer<T>>(
          new Sgd<T>(spec, std::move(variables)));
    case OptimizerKind::kRmsprop:
      return std::unique_ptr<Optimizer<T>>(
          new Rmsprop<T>(spec, std::move(variables)));
  }
  return absl::InvalidArgumentError("optimizer.kind is not a known kind");
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace driftscope
