// Keras 3 Adam, SGD and RMSprop updates on the device, op by op as
// engine/optim/optimizer.cc. The step's scalars (Adam's alpha, the
// hyper-parameters rounded as Keras rounds them) are computed on the host
// once per step and passed in, so the device and the emulation share them.
// One thread per parameter. Keras' decoupled weight decay (the base
// optimizer's, so every kind) is part of the same thread's work: it happens
// after clipping and before the update, as in optimizer.cc.
#ifndef DRIFTSCOPE_ENGINE_CUDA_OPTIMIZER_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_OPTIMIZER_KERNELS_H_

#include "engine/cuda/ds_hd.h"

namespace driftscope {
namespace dev {

// Keras' weight decay: var - (var * wd) * lr, each operation rounded, with
// wd and lr the float32 scalars optimizer.cc uses. Off: var unchanged (not
// var - 0, which would turn -0 into +0 and inf into NaN).
struct WeightDecay {
  bool on = false;
  float wd = 0, lr = 0;
  DS_HD float operator()(float var) const {
    return on ? Sub(var, Mul(Mul(var, wd), lr)) : var;
  }
};

struct AdamArgs {
  float* p = nullptr;
  const float* g = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  float* v_hat = nullptr;  // amsgrad only
  int64_t n = 0;
  float alpha = 0, one_minus_beta_1 = 0, one_minus_beta_2 = 0, epsilon = 0;
  WeightDecay decay;
  DS_HD void operator()(int64_t i) const {
    const float pi = decay(p[i]);
    const float gi = g[i];
    const float mi = Add(m[i], Mul(Sub(gi, m[i]), one_minus_beta_1));
    const float vi = Add(v[i], Mul(Sub(Mul(gi, gi), v[i]), one_minus_beta_2));
    m[i] = mi;
    v[i] = vi;
    float vu = vi;
    if (v_hat != nullptr) vu = v_hat[i] = MaxNan(v_hat[i], vi);
    p[i] = Sub(pi, Div(Mul(mi, alpha), Add(Sqrt(vu), epsilon)));
  }
  int64_t size() const { return n; }
};

struct SgdArgs {
  float* p = nullptr;
  const float* g = nullptr;
  float* m = nullptr;  // null when momentum == 0
  int64_t n = 0;
  float lr = 0, momentum = 0;
  bool nesterov = false;
  WeightDecay decay;
  DS_HD void operator()(int64_t i) const {
    const float pi = decay(p[i]);
    const float step = Mul(g[i], lr);
    if (m == nullptr) {
      p[i] = Sub(pi, step);
      return;
    }
    const float mi = Sub(Mul(m[i], momentum), step);
    m[i] = mi;
    p[i] = Add(pi, nesterov ? Sub(Mul(mi, momentum), step) : mi);
  }
  int64_t size() const { return n; }
};

struct RmspropArgs {
  float* p = nullptr;
  const float* g = nullptr;
  float* velocity = nullptr;
  float* average = nullptr;    // centered only
  float* momentums = nullptr;  // momentum > 0 only
  int64_t n = 0;
  float lr = 0, rho = 0, one_minus_rho = 0, momentum = 0, epsilon = 0;
  WeightDecay decay;
  DS_HD void operator()(int64_t i) const {
    const float pi = decay(p[i]);
    const float gi = g[i];
    const float vel =
        Add(Mul(rho, velocity[i]), Mul(one_minus_rho, Mul(gi, gi)));
    velocity[i] = vel;
    float denom;
    if (average != nullptr) {
      const float avg = Add(Mul(rho, average[i]), Mul(one_minus_rho, gi));
      average[i] = avg;
      denom = Add(Sub(vel, Mul(avg, avg)), epsilon);
    } else {
      denom = Add(vel, epsilon);
    }
    const float inc = Div(Mul(lr, gi), Sqrt(denom));
    if (momentums != nullptr) {
      const float mo = Add(Mul(momentum, momentums[i]), inc);
      momentums[i] = mo;
      p[i] = Sub(pi, mo);
    } else {
      p[i] = Sub(pi, inc);
    }
  }
  int64_t size() const { return n; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_OPTIMIZER_KERNELS_H_
