// Keras GRU on the device (reset_after true and false, rnn-math §2 and
// §9.2-§9.3): the per-step element work, one thread per (sample, unit), in
// phases split where the step needs a GEMM in between. Gate order [z|r|h];
// gates rows hold x·W + b_x on entry and the activated [z|r|n] on exit.
#ifndef DRIFTSCOPE_ENGINE_CUDA_GRU_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_GRU_KERNELS_H_

#include "engine/cuda/activations_kernels.h"

namespace driftscope {
namespace dev {

enum GruForwardPhase : int {
  kGruAll = 0,        // reset_after: the whole step
  kGruGates = 1,      // reset_before: z, r and q = r ⊙ h_{t-1} (into aux)
  kGruCandidate = 2,  // reset_before: n = a(mx_h + q·R_h), then h
};

struct GruForwardArgs {
  int phase = kGruAll;
  int batch = 0, units = 0, steps = 0, step = 0;
  float* gates = nullptr;     // (batch, 3U) of this step
  const float* mh = nullptr;  // h_{t-1}·R (batch, 3U; z,r part for
                              // reset_before), null at step 0
  const float* bh = nullptr;  // recurrent bias (3U), reset_after only
  const float* qr = nullptr;  // q·R_h (batch, U), kGruCandidate, or null
  const float* h_prev = nullptr;
  float* aux = nullptr;  // mh_h (reset_after) or q (batch, U)
  float* h = nullptr;
  float* y = nullptr;  // (batch, steps, U) or null
  int act = kActTanh, ract = kActSigmoid;

  DS_HD float Mh(int64_t b, int j) const {
    float v = mh != nullptr ? mh[b * 3 * units + j] : 0.0f;
    return bh != nullptr ? Add(v, bh[j]) : v;
  }
  DS_HD void Finish(int64_t b, int u, float* row, float n) const {
    const int U = units;
    const int64_t e = b * U + u;
    row[2 * U + u] = n;
    const float z = row[u];
    const float hv = Add(Mul(z, h_prev[e]), Mul(Sub(1.0f, z), n));
    h[e] = hv;
    if (y != nullptr) y[(b * steps + step) * U + u] = hv;
  }
  DS_HD void operator()(int64_t e) const {
    const int U = units;
    const int64_t b = e / U;
    const int u = static_cast<int>(e % U);
    float* row = gates + b * 3 * U;
    if (phase == kGruCandidate) {
      const float q = qr != nullptr ? qr[e] : 0.0f;
      Finish(b, u, row, ActForward(act, Add(row[2 * U + u], q)));
      return;
    }
    const float z = ActForward(ract, Add(row[u], Mh(b, u)));
    const float r = ActForward(ract, Add(row[U + u], Mh(b, U + u)));
    row[u] = z;
    row[U + u] = r;
    if (phase == kGruGates) {
      aux[e] = Mul(r, h_prev[e]);
      return;
    }
    const float mhh = Mh(b, 2 * U + u);
    aux[e] = mhh;
    Finish(b, u, row, ActForward(act, Add(row[2 * U + u], Mul(r, mhh))));
  }
  int64_t size() const { return static_cast<int64_t>(batch) * units; }
};

enum GruBackwardPhase : int {
  kGruOut = 0,        // δh, δa_z, δa_n (and, reset_after, δa_r and δHm)
  kGruResetGrad = 1,  // reset_before: δa_r from δq = δa_n·R_hᵀ
  kGruCarry = 2,      // the carried δh_{t-1}
};

struct GruBackwardArgs {
  int phase = kGruOut;
  bool reset_after = true;
  int batch = 0, units = 0, steps = 0, step = 0;
  bool return_sequences = false;
  const float* dy = nullptr;
  float* dh = nullptr;           // carried δh (batch, U); written by kGruCarry
  float* dht = nullptr;          // δh at this step (batch, U), kGruOut writes
  const float* gates = nullptr;  // activated [z|r|n]
  const float* h_prev = nullptr;
  const float* aux = nullptr;  // mh_h (reset_after) or q
  float* dxg = nullptr;        // (batch, 3U) [δa_z|δa_r|δa_n]
  float* dhm = nullptr;  // (batch, 3U) reset_after: [δa_z|δa_r|δa_n⊙r]
  const float* dq = nullptr;   // reset_before: δa_n·R_hᵀ (batch, U)
  const float* tmp = nullptr;  // kGruCarry: [..]·Rᵀ (batch, U)
  int act = kActTanh, ract = kActSigmoid;

  DS_HD void operator()(int64_t e) const {
    const int U = units, G = 3 * units;
    const int64_t b = e / U;
    const int u = static_cast<int>(e % U);
    const float* row = gates + b * G;
    float* drow = dxg + b * G;
    const float z = row[u], r = row[U + u], n = row[2 * U + u];
    if (phase == kGruOut) {
      float g_out = 0.0f;
      bool has_out = false;
      if (return_sequences) {
        g_out = dy[(b * steps + step) * U + u];
        has_out = true;
      } else if (step == steps - 1) {
        g_out = dy[b * U + u];
        has_out = true;
      }
      const float d = has_out ? Add(g_out, dh[e]) : dh[e];
      dht[e] = d;
      drow[u] = ActBackward(ract, z, Mul(d, Sub(h_prev[e], n)));
      const float dan = ActBackward(act, n, Mul(d, Sub(1.0f, z)));
      drow[2 * U + u] = dan;
      if (reset_after) {
        const float dar = ActBackward(ract, r, Mul(dan, aux[e]));
        drow[U + u] = dar;
        float* hrow = dhm + b * G;
        hrow[u] = drow[u];
        hrow[U + u] = dar;
        hrow[2 * U + u] = Mul(dan, r);
      }
    } else if (phase == kGruResetGrad) {
      drow[U + u] = ActBackward(ract, r, Mul(dq[e], h_prev[e]));
    } else {
      const float carried = Add(Mul(dht[e], z), tmp[e]);
      dh[e] = reset_after ? carried : Add(carried, Mul(dq[e], r));
    }
  }
  int64_t size() const { return static_cast<int64_t>(batch) * units; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_GRU_KERNELS_H_
