// Keras LSTM on the device: one processing step of the forward and of the
// backward pass, one thread per (sample, unit). The GEMMs around them (x·W
// for all steps, h·R per step, the weight gradients) are the ops table's
// Gemm; device_trainer.cc strings them together as engine/layers/lstm.cc
// does. Gate order [i|f|c|o]; caches are time-major, processing order.
#ifndef DRIFTSCOPE_ENGINE_CUDA_LSTM_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_LSTM_KERNELS_H_

#include "engine/cuda/activations_kernels.h"

namespace driftscope {
namespace dev {

// z = (x·W + h·R) + b (mode 2; mode 1 has the bias in x·W already and
// passes bias = null); h·R is null at step 0, where a zero is added in its
// place. Gates are activated in place; c, τ = a(c) and h are written, and
// y's step (batch-major) when y is not null (return_sequences).
struct LstmForwardArgs {
  int batch = 0, units = 0, steps = 0, step = 0;
  float* gates = nullptr;       // (batch, 4U) of this step
  const float* hr = nullptr;    // (batch, 4U) h_{t-1}·R, or null
  const float* bias = nullptr;  // (4U) or null
  const float* c_prev = nullptr;
  float* c = nullptr;
  float* tau = nullptr;
  float* h = nullptr;
  float* y = nullptr;  // (batch, steps, U) or null
  int act = kActTanh, ract = kActSigmoid;

  DS_HD void operator()(int64_t e) const {
    const int U = units, G = 4 * units;
    const int64_t b = e / U;
    const int u = static_cast<int>(e % U);
    float* row = gates + b * G;
    float z[4];
    for (int g = 0; g < 4; ++g) {
      const int j = g * U + u;
      float v = Add(row[j], hr != nullptr ? hr[b * G + j] : 0.0f);
      if (bias != nullptr) v = Add(v, bias[j]);
      z[g] = v;
    }
    const float i = ActForward(ract, z[0]);
    const float f = ActForward(ract, z[1]);
    const float g = ActForward(act, z[2]);
    const float o = ActForward(ract, z[3]);
    row[u] = i;
    row[U + u] = f;
    row[2 * U + u] = g;
    row[3 * U + u] = o;
    const float cv = Add(Mul(f, c_prev[e]), Mul(i, g));
    c[e] = cv;
    const float t = ActForward(act, cv);
    tau[e] = t;
    const float hv = Mul(o, t);
    h[e] = hv;
    if (y != nullptr) y[(b * steps + step) * U + u] = hv;
  }
  int64_t size() const { return static_cast<int64_t>(batch) * units; }
};

// δh = (output gradient at this step, if any) + carried δh; then the gate
// gradients of rnn-math §9.1 into da (batch, 4U) and the carried δc ← δc⊙f.
struct LstmBackwardArgs {
  int batch = 0, units = 0, steps = 0, step = 0;
  bool return_sequences = false;
  const float* dy = nullptr;     // the layer's output gradient
  const float* dh = nullptr;     // carried δh (batch, U)
  float* dc = nullptr;           // carried δc (batch, U), updated
  const float* gates = nullptr;  // activated [i|f|g|o] of this step
  const float* c_prev = nullptr;
  const float* tau = nullptr;
  float* da = nullptr;  // (batch, 4U) of this step
  int act = kActTanh, ract = kActSigmoid;

  DS_HD void operator()(int64_t e) const {
    const int U = units, G = 4 * units;
    const int64_t b = e / U;
    const int u = static_cast<int>(e % U);
    float g_out = 0.0f;
    bool has_out = false;
    if (return_sequences) {
      g_out = dy[(b * steps + step) * U + u];
      has_out = true;
    } else if (step == steps - 1) {
      g_out = dy[b * U + u];
      has_out = true;
    }
    const float dht = has_out ? Add(g_out, dh[e]) : dh[e];
    const float* row = gates + b * G;
    const float i = row[u], f = row[U + u], g = row[2 * U + u],
                o = row[3 * U + u];
    const float t = tau[e];
    const float dct = Add(dc[e], ActBackward(act, t, Mul(dht, o)));
    float* drow = da + b * G;
    drow[u] = ActBackward(ract, i, Mul(dct, g));
    drow[U + u] = ActBackward(ract, f, Mul(dct, c_prev[e]));
    drow[2 * U + u] = ActBackward(act, g, Mul(dct, i));
    drow[3 * U + u] = ActBackward(ract, o, Mul(dht, t));
    dc[e] = Mul(dct, f);
  }
  int64_t size() const { return static_cast<int64_t>(batch) * units; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_LSTM_KERNELS_H_
