#include "engine/reference/reference.h"

#include <cmath>

namespace driftscope {
namespace {

using Mat = std::vector<std::vector<double>>;

struct Args {
  const LayerSpec& spec;
  const ActivationShape& in;
  const RefWeights& w;
  const std::vector<double>& x;
  int batch;
  const std::vector<double>* dy;     // null: forward only
  const RefGateMasks* gm;            // null: no per-gate masks
  const std::vector<uint8_t>* keep;  // null: no timestep mask
};

// Gate g's input mask (rows of width n) of sample b, or null.
const double* GateMask(const std::vector<std::vector<double>>* masks, int g,
                       int b, int n) {
  if (masks == nullptr || masks->empty()) return nullptr;
  return &(*masks)[g][static_cast<size_t>(b) * n];
}
// out = v ⊙ m (or v when m is null); returns out.
const double* Masked(const double* v, const double* m, int n,
                     std::vector<double>* out) {
  if (m == nullptr) return v;
  out->resize(n);
  for (int i = 0; i < n; ++i) (*out)[i] = v[i] * m[i];
  return out->data();
}
// out[i] += Σ_j M[i·ld + col0 + j]·g[j] ⊙ m[i] (m may be null).
void AddMaskedMatVecT(const double* mat, int rows, int ld, int col0, int n,
                      const double* g, const double* m, double* out) {
  for (int i = 0; i < rows; ++i) {
    double s = 0.0;
    for (int j = 0; j < n; ++j)
      s += mat[static_cast<size_t>(i) * ld + col0 + j] * g[j];
    out[i] += m == nullptr ? s : s * m[i];
  }
}

struct Outputs {
  std::vector<double> y;
  std::vector<std::vector<double>> states;
  RefLayerGrads grads;
};

Mat Zeros(int rows, int cols) {
  return Mat(rows, std::vector<double>(cols, 0.0));
}

void PrepareGrads(const Args& a, Outputs* o) {
  if (a.dy == nullptr) return;
  for (const auto& shape : RefWeightShapes(a.spec, a.in)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    o->grads.dweights.emplace_back(n, 0.0);
  }
  o->grads.dx.assign(a.x.size(), 0.0);
}

// Shared time bookkeeping of the three RNN layers.
struct Seq {
  int T, D, U;
  bool backwards, ret_seq;
  const std::vector<uint8_t>* keep;  // timestep mask (batch, T), or null
  bool zero_output;                  // zero_output_for_mask
  // Input time index consumed at processing step k.
  int TimeOf(int k) const { return backwards ? T - 1 - k : k; }
  // Whether sample b's step k is used; a skipped step keeps the states and
  // outputs the previous output (zeros with zero_output).
  bool Kept(int b, int k) const {
    return keep == nullptr ||
           (*keep)[static_cast<size_t>(b) * T + TimeOf(k)] != 0;
  }
  const double* XAt(const std::vector<double>& x, int b, int k) const {
    return &x[(static_cast<size_t>(b) * T + TimeOf(k)) * D];
  }
  // Output gradient arriving at processing step k (0 when none).
  double DyAt(const std::vector<double>& dy, int b, int k, int u) const {
    if (zero_output && !Kept(b, k)) return 0.0;  // the output is a constant
    if (ret_seq) return dy[(static_cast<size_t>(b) * T + k) * U + u];
    return k == T - 1 ? dy[static_cast<size_t>(b) * U + u] : 0.0;
  }
  void WriteOut(std::vector<double>* y, int b, int k, const double* h) const {
    const std::vector<double> zeros(U, 0.0);
    if (zero_output && !Kept(b, k)) h = zeros.data();
    if (ret_seq) {
      for (int u = 0; u < U; ++u)
        (*y)[(static_cast<size_t>(b) * T + k) * U + u] = h[u];
    } else if (k == T - 1) {
      for (int u = 0; u < U; ++u) (*y)[static_cast<size_t>(b) * U + u] = h[u];
    }
  }
};

Seq MakeSeq(const Args& a) {
  return Seq{a.in.timesteps,
             a.in.dim,
             a.spec.units,
             a.spec.go_backwards,
             a.spec.return_sequences,
             a.keep,
             a.spec.zero_output_for_mask};
}

// Row vector times matrix: out[j] = Σ_i v[i]·M[i·ld + col0 + j], j < n.
void VecMat(const double* v, int rows, const double* m, int ld, int col0, int n,
            double* out) {
  for (int j = 0; j < n; ++j) {
    double s = 0.0;
    for (int i = 0; i < rows; ++i)
      s += v[i] * m[static_cast<size_t>(i) * ld + col0 + j];
    out[j] = s;
  }
}
// out[i] (+)= Σ_j M[i·ld + col0 + j]·g[j], i < rows (g times Mᵀ).
void MatVecT(const double* m, int rows, int ld, int col0, int n,
             const double* g, double* out, bool accumulate) {
  for (int i = 0; i < rows; ++i) {
    double s = 0.0;
    for (int j = 0; j < n; ++j)
      s += m[static_cast<size_t>(i) * ld + col0 + j] * g[j];
    out[i] = accumulate ? out[i] + s : s;
  }
}
// dM[i·ld + col0 + j] += v[i]·g[j].
void Outer(const double* v, int rows, const double* g, int n, double* dm,
           int ld, int col0) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < n; ++j)
      dm[static_cast<size_t>(i) * ld + col0 + j] += v[i] * g[j];
}

// ---------------------------------------------------------------- LSTM §1,
// §9.1
void RunLstm(const Args& a, Outputs* o) {
  const Seq s = MakeSeq(a);
  const int T = s.T, D = s.D, U = s.U, G = 4 * U;
  const LayerSpec& sp = a.spec;
  const double* W = a.w[0].data();
  const double* R = a.w[1].data();
  const double* bias = sp.use_bias ? a.w[2].data() : nullptr;
  const Activation act = sp.activation, ract = sp.recurrent_activation;
  const RefGateMasks* gm = a.gm;
  // Keras computes implementation 1 whenever there are per-gate masks.
  const bool impl1 = sp.implementation == 1 || gm != nullptr;
  o->y.assign(static_cast<size_t>(a.batch) * (s.ret_seq ? T : 1) * U, 0.0);
  o->states.assign(2, std::vector<double>(static_cast<size_t>(a.batch) * U));
  PrepareGrads(a, o);
  for (int b = 0; b < a.batch; ++b) {
    Mat z = Zeros(T, G), gate = Zeros(T, G);
    Mat h = Zeros(T + 1, U), c = Zeros(T + 1, U);
    std::vector<double> zx(G), zh(G), xm, hm;
    const auto* im = gm != nullptr ? &gm->input : nullptr;
    const auto* rm = gm != nullptr ? &gm->recurrent : nullptr;
    for (int k = 0; k < T; ++k) {
      for (int g = 0; g < 4; ++g) {
        VecMat(Masked(s.XAt(a.x, b, k), GateMask(im, g, b, D), D, &xm), D, W, G,
               g * U, U, zx.data() + g * U);
        VecMat(Masked(h[k].data(), GateMask(rm, g, b, U), U, &hm), U, R, G,
               g * U, U, zh.data() + g * U);
      }
      for (int j = 0; j < G; ++j) {
        if (bias == nullptr) {
          z[k][j] = zx[j] + zh[j];
        } else if (impl1) {
          z[k][j] = (zx[j] + bias[j]) + zh[j];
        } else {
          z[k][j] = (zx[j] + zh[j]) + bias[j];
        }
        const bool cell = j >= 2 * U && j < 3 * U;
        gate[k][j] = RefActivation(cell ? act : ract, z[k][j]);
      }
      for (int u = 0; u < U; ++u) {
        const double i = gate[k][u], f = gate[k][U + u], g = gate[k][2 * U + u],
                     og = gate[k][3 * U + u];
        c[k + 1][u] = f * c[k][u] + i * g;
        h[k + 1][u] = og * RefActivation(act, c[k + 1][u]);
      }
      if (!s.Kept(b, k)) {
        h[k + 1] = h[k];
        c[k + 1] = c[k];
      }
      s.WriteOut(&o->y, b, k, h[k + 1].data());
    }
    for (int u = 0; u < U; ++u) {
      o->states[0][static_cast<size_t>(b) * U + u] = h[T][u];
      o->states[1][static_cast<size_t>(b) * U + u] = c[T][u];
    }
    if (a.dy == nullptr) continue;
    std::vector<double> dh(U, 0.0), dc(U, 0.0), dA(G);
    for (int k = T - 1; k >= 0; --k) {
      if (!s.Kept(b, k)) {  // h_k = h_{k-1}, c_k = c_{k-1}: pass δ through
        for (int u = 0; u < U; ++u) dh[u] += s.DyAt(*a.dy, b, k, u);
        continue;
      }
      for (int u = 0; u < U; ++u) {
        const double dht = dh[u] + s.DyAt(*a.dy, b, k, u);
        const double i = gate[k][u], f = gate[k][U + u], g = gate[k][2 * U + u],
                     og = gate[k][3 * U + u];
        const double tau = RefActivation(act, c[k + 1][u]);
        const double dct =
            dc[u] + dht * og * RefActivationDerivative(act, c[k + 1][u]);
        dA[u] = dct * g * RefActivationDerivative(ract, z[k][u]);
        dA[U + u] = dct * c[k][u] * RefActivationDerivative(ract, z[k][U + u]);
        dA[2 * U + u] = dct * i * RefActivationDerivative(act, z[k][2 * U + u]);
        dA[3 * U + u] =
            dht * tau * RefActivationDerivative(ract, z[k][3 * U + u]);
        dc[u] = dct * f;
      }
      const double* xt = s.XAt(a.x, b, k);
      double* dxt =
          &o->grads.dx[(static_cast<size_t>(b) * T + s.TimeOf(k)) * D];
      if (bias != nullptr)
        for (int j = 0; j < G; ++j) o->grads.dweights[2][j] += dA[j];
      if (gm == nullptr) {
        Outer(xt, D, dA.data(), G, o->grads.dweights[0].data(), G, 0);
        Outer(h[k].data(), U, dA.data(), G, o->grads.dweights[1].data(), G, 0);
        MatVecT(W, D, G, 0, G, dA.data(), dxt, /*accumulate=*/false);
        MatVecT(R, U, G, 0, G, dA.data(), dh.data(), /*accumulate=*/false);
        continue;
      }
      for (int i = 0; i < D; ++i) dxt[i] = 0.0;
      for (int u = 0; u < U; ++u) dh[u] = 0.0;
      for (int g = 0; g < 4; ++g) {
        const double* mx = GateMask(im, g, b, D);
        const double* mh = GateMask(rm, g, b, U);
        Outer(Masked(xt, mx, D, &xm), D, &dA[g * U], U,
              o->grads.dweights[0].data(), G, g * U);
        Outer(Masked(h[k].data(), mh, U, &hm), U, &dA[g * U], U,
              o->grads.dweights[1].data(), G, g * U);
        AddMaskedMatVecT(W, D, G, g * U, U, &dA[g * U], mx, dxt);
        AddMaskedMatVecT(R, U, G, g * U, U, &dA[g * U], mh, dh.data());
      }
    }
  }
}

// ----------------------------------------------------------------- GRU §2,
// §9.2-3
void RunGru(const Args& a, Outputs* o) {
  const Seq s = MakeSeq(a);
  const int T = s.T, D = s.D, U = s.U, G = 3 * U;
  const LayerSpec& sp = a.spec;
  const bool ra = sp.reset_after;
  const double* W = a.w[0].data();
  const double* R = a.w[1].data();
  const double* bx = sp.use_bias ? a.w[2].data() : nullptr;
  const double* bh = (sp.use_bias && ra) ? a.w[2].data() + G : nullptr;
  const Activation act = sp.activation, ract = sp.recurrent_activation;
  const RefGateMasks* gm = a.gm;
  const auto* im = gm != nullptr ? &gm->input : nullptr;
  const auto* rm = gm != nullptr ? &gm->recurrent : nullptr;
  o->y.assign(static_cast<size_t>(a.batch) * (s.ret_seq ? T : 1) * U, 0.0);
  o->states.assign(1, std::vector<double>(static_cast<size_t>(a.batch) * U));
  PrepareGrads(a, o);
  for (int b = 0; b < a.batch; ++b) {
    std::vector<double> xm, hm;
    // pre[k] = pre-activations [z | r | h]; mh_h (reset_after) or q = r ⊙ h.
    Mat pre = Zeros(T, G), zrn = Zeros(T, G), mhh = Zeros(T, U),
        q = Zeros(T, U);
    Mat h = Zeros(T + 1, U);
    std::vector<double> mx(G), mh(G), qr(U);
    for (int k = 0; k < T; ++k) {
      for (int g = 0; g < 3; ++g)
        VecMat(Masked(s.XAt(a.x, b, k), GateMask(im, g, b, D), D, &xm), D, W, G,
               g * U, U, mx.data() + g * U);
      if (bx != nullptr)
        for (int j = 0; j < G; ++j) mx[j] = mx[j] + bx[j];
      const double* hp = h[k].data();
      for (int g = 0; g < (ra ? 3 : 2); ++g)
        VecMat(Masked(hp, GateMask(rm, g, b, U), U, &hm), U, R, G, g * U, U,
               mh.data() + g * U);
      if (bh != nullptr)
        for (int j = 0; j < G; ++j) mh[j] = mh[j] + bh[j];
      const double* hph = Masked(hp, GateMask(rm, 2, b, U), U, &hm);
      for (int j = 0; j < 2 * U; ++j) {
        pre[k][j] = mx[j] + mh[j];
        zrn[k][j] = RefActivation(ract, pre[k][j]);
      }
      for (int u = 0; u < U; ++u) {
        const double r = zrn[k][U + u];
        if (ra) {
          mhh[k][u] = mh[2 * U + u];
          pre[k][2 * U + u] = mx[2 * U + u] + r * mhh[k][u];
        } else {
          q[k][u] = r * hph[u];
        }
      }
      if (!ra) {
        VecMat(q[k].data(), U, R, G, 2 * U, U, qr.data());
        for (int u = 0; u < U; ++u) pre[k][2 * U + u] = mx[2 * U + u] + qr[u];
      }
      for (int u = 0; u < U; ++u) {
        const double n = RefActivation(act, pre[k][2 * U + u]);
        zrn[k][2 * U + u] = n;
        const double z = zrn[k][u];
        h[k + 1][u] = z * hp[u] + (1.0 - z) * n;
      }
      if (!s.Kept(b, k)) h[k + 1] = h[k];
      s.WriteOut(&o->y, b, k, h[k + 1].data());
    }
    for (int u = 0; u < U; ++u)
      o->states[0][static_cast<size_t>(b) * U + u] = h[T][u];
    if (a.dy == nullptr) continue;
    std::vector<double> dh(U, 0.0), dX(G), dHm(G), dq(U), dzr(U);
    for (int k = T - 1; k >= 0; --k) {
      if (!s.Kept(b, k)) {  // h_k = h_{k-1}: pass δh through
        for (int u = 0; u < U; ++u) dh[u] += s.DyAt(*a.dy, b, k, u);
        continue;
      }
      const double* hp = h[k].data();
      std::vector<double> dht(U);
      for (int u = 0; u < U; ++u) {
        dht[u] = dh[u] + s.DyAt(*a.dy, b, k, u);
        const double z = zrn[k][u], n = zrn[k][2 * U + u];
        dX[u] = dht[u] * (hp[u] - n) * RefActivationDerivative(ract, pre[k][u]);
        dX[2 * U + u] = dht[u] * (1.0 - z) *
                        RefActivationDerivative(act, pre[k][2 * U + u]);
      }
      if (ra) {
        for (int u = 0; u < U; ++u) {
          const double r = zrn[k][U + u];
          dX[U + u] = dX[2 * U + u] * mhh[k][u] *
                      RefActivationDerivative(ract, pre[k][U + u]);
          dHm[u] = dX[u];
          dHm[U + u] = dX[U + u];
          dHm[2 * U + u] = dX[2 * U + u] * r;
        }
      } else {
        const double* hph = Masked(hp, GateMask(rm, 2, b, U), U, &hm);
        MatVecT(R, U, G, 2 * U, U, &dX[2 * U], dq.data(), false);
        for (int u = 0; u < U; ++u)
          dX[U + u] =
              dq[u] * hph[u] * RefActivationDerivative(ract, pre[k][U + u]);
      }
      const double* xt = s.XAt(a.x, b, k);
      if (bx != nullptr)
        for (int j = 0; j < G; ++j) o->grads.dweights[2][j] += dX[j];
      double* dxt =
          &o->grads.dx[(static_cast<size_t>(b) * T + s.TimeOf(k)) * D];
      if (gm != nullptr) {
        // Per-gate masks: every product reads its gate's masked input.
        for (int i = 0; i < D; ++i) dxt[i] = 0.0;
        for (int g = 0; g < 3; ++g) {
          const double* mx = GateMask(im, g, b, D);
          Outer(Masked(xt, mx, D, &xm), D, &dX[g * U], U,
                o->grads.dweights[0].data(), G, g * U);
          AddMaskedMatVecT(W, D, G, g * U, U, &dX[g * U], mx, dxt);
        }
        const double* dr = ra ? dHm.data() : dX.data();
        for (int u = 0; u < U; ++u) dh[u] = dht[u] * zrn[k][u];
        for (int g = 0; g < (ra ? 3 : 2); ++g) {
          const double* mh = GateMask(rm, g, b, U);
          Outer(Masked(hp, mh, U, &hm), U, &dr[g * U], U,
                o->grads.dweights[1].data(), G, g * U);
          AddMaskedMatVecT(R, U, G, g * U, U, &dr[g * U], mh, dh.data());
        }
        if (bh != nullptr)
          for (int j = 0; j < G; ++j) o->grads.dweights[2][G + j] += dHm[j];
        if (!ra) {
          Outer(q[k].data(), U, &dX[2 * U], U, o->grads.dweights[1].data(), G,
                2 * U);
          const double* mh = GateMask(rm, 2, b, U);
          for (int u = 0; u < U; ++u)
            dh[u] += dq[u] * zrn[k][U + u] * (mh != nullptr ? mh[u] : 1.0);
        }
        continue;
      }
      Outer(xt, D, dX.data(), G, o->grads.dweights[0].data(), G, 0);
      MatVecT(W, D, G, 0, G, dX.data(), dxt, false);
      if (ra) {
        Outer(hp, U, dHm.data(), G, o->grads.dweights[1].data(), G, 0);
        if (bh != nullptr)
          for (int j = 0; j < G; ++j) o->grads.dweights[2][G + j] += dHm[j];
        MatVecT(R, U, G, 0, G, dHm.data(), dzr.data(), false);
        for (int u = 0; u < U; ++u) dh[u] = dht[u] * zrn[k][u] + dzr[u];
      } else {
        Outer(hp, U, dX.data(), 2 * U, o->grads.dweights[1].data(), G, 0);
        Outer(q[k].data(), U, &dX[2 * U], U, o->grads.dweights[1].data(), G,
              2 * U);
        MatVecT(R, U, G, 0, 2 * U, dX.data(), dzr.data(), false);
        for (int u = 0; u < U; ++u)
          dh[u] = dht[u] * zrn[k][u] + dzr[u] + dq[u] * zrn[k][U + u];
      }
    }
  }
}

// ----------------------------------------------------------- SimpleRNN §3,
// §9.4
void RunSimpleRnn(const Args& a, Outputs* o) {
  const Seq s = MakeSeq(a);
  const int T = s.T, D = s.D, U = s.U;
  const double* W = a.w[0].data();
  const double* R = a.w[1].data();
  const double* bias = a.spec.use_bias ? a.w[2].data() : nullptr;
  const Activation act = a.spec.activation;
  const auto* im = a.gm != nullptr ? &a.gm->input : nullptr;
  const auto* rm = a.gm != nullptr ? &a.gm->recurrent : nullptr;
  o->y.assign(static_cast<size_t>(a.batch) * (s.ret_seq ? T : 1) * U, 0.0);
  o->states.assign(1, std::vector<double>(static_cast<size_t>(a.batch) * U));
  PrepareGrads(a, o);
  for (int b = 0; b < a.batch; ++b) {
    Mat pre = Zeros(T, U), h = Zeros(T + 1, U);
    std::vector<double> zx(U), zh(U), xm, hm;
    const double* mx = GateMask(im, 0, b, D);
    const double* mh = GateMask(rm, 0, b, U);
    for (int k = 0; k < T; ++k) {
      VecMat(Masked(s.XAt(a.x, b, k), mx, D, &xm), D, W, U, 0, U, zx.data());
      VecMat(Masked(h[k].data(), mh, U, &hm), U, R, U, 0, U, zh.data());
      for (int u = 0; u < U; ++u) {
        pre[k][u] = (zx[u] + (bias ? bias[u] : 0.0)) + zh[u];
        h[k + 1][u] = RefActivation(act, pre[k][u]);
      }
      if (!s.Kept(b, k)) h[k + 1] = h[k];
      s.WriteOut(&o->y, b, k, h[k + 1].data());
    }
    for (int u = 0; u < U; ++u)
      o->states[0][static_cast<size_t>(b) * U + u] = h[T][u];
    if (a.dy == nullptr) continue;
    std::vector<double> dh(U, 0.0), da(U);
    for (int k = T - 1; k >= 0; --k) {
      if (!s.Kept(b, k)) {  // h_k = h_{k-1}: pass δh through
        for (int u = 0; u < U; ++u) dh[u] += s.DyAt(*a.dy, b, k, u);
        continue;
      }
      for (int u = 0; u < U; ++u)
        da[u] = (dh[u] + s.DyAt(*a.dy, b, k, u)) *
                RefActivationDerivative(act, pre[k][u]);
      Outer(Masked(s.XAt(a.x, b, k), mx, D, &xm), D, da.data(), U,
            o->grads.dweights[0].data(), U, 0);
      Outer(Masked(h[k].data(), mh, U, &hm), U, da.data(), U,
            o->grads.dweights[1].data(), U, 0);
      if (bias != nullptr)
        for (int u = 0; u < U; ++u) o->grads.dweights[2][u] += da[u];
      double* dxt =
          &o->grads.dx[(static_cast<size_t>(b) * T + s.TimeOf(k)) * D];
      MatVecT(W, D, U, 0, U, da.data(), dxt, false);
      MatVecT(R, U, U, 0, U, da.data(), dh.data(), false);
      if (mx != nullptr)
        for (int i = 0; i < D; ++i) dxt[i] *= mx[i];
      if (mh != nullptr)
        for (int u = 0; u < U; ++u) dh[u] *= mh[u];
    }
  }
}

// ------------------------------------------------------------------- Dense §5
void RunDense(const Args& a, Outputs* o) {
  const int D = a.in.dim, U = a.spec.units;
  const int rows = a.batch * (a.in.sequence ? a.in.timesteps : 1);
  const double* W = a.w[0].data();
  const double* bias = a.spec.use_bias ? a.w[1].data() : nullptr;
  o->y.assign(static_cast<size_t>(rows) * U, 0.0);
  PrepareGrads(a, o);
  std::vector<double> z(U), dz(U);
  for (int row = 0; row < rows; ++row) {
    const double* xr = &a.x[static_cast<size_t>(row) * D];
    VecMat(xr, D, W, U, 0, U, z.data());
    for (int u = 0; u < U; ++u) {
      if (bias != nullptr) z[u] += bias[u];
      o->y[static_cast<size_t>(row) * U + u] =
          RefActivation(a.spec.activation, z[u]);
    }
    if (a.dy == nullptr) continue;
    for (int u = 0; u < U; ++u)
      dz[u] = (*a.dy)[static_cast<size_t>(row) * U + u] *
              RefActivationDerivative(a.spec.activation, z[u]);
    Outer(xr, D, dz.data(), U, o->grads.dweights[0].data(), U, 0);
    if (bias != nullptr)
      for (int u = 0; u < U; ++u) o->grads.dweights[1][u] += dz[u];
    MatVecT(W, D, U, 0, U, dz.data(),
            &o->grads.dx[static_cast<size_t>(row) * D], false);
  }
}

// Embedding (ops.take): one row of the table per (sample, timestep); its
// gradient adds dy into the row of each id. No gradient w.r.t. the ids.
void RunEmbedding(const Args& a, Outputs* o) {
  PrepareGrads(a, o);
  const int U = a.spec.units;
  const int rows = a.batch * a.in.timesteps;
  const std::vector<double>& table = a.w[0];
  o->y.assign(static_cast<size_t>(rows) * U, 0.0);
  for (int r = 0; r < rows; ++r) {
    const size_t id = static_cast<size_t>(a.x[r]);
    for (int u = 0; u < U; ++u) {
      o->y[static_cast<size_t>(r) * U + u] = table[id * U + u];
      if (a.dy != nullptr)
        o->grads.dweights[0][id * U + u] +=
            (*a.dy)[static_cast<size_t>(r) * U + u];
    }
  }
}

Outputs Run(const Args& a) {
  Outputs o;
  switch (a.spec.kind) {
    case LayerKind::kLstm:
      RunLstm(a, &o);
      break;
    case LayerKind::kGru:
      RunGru(a, &o);
      break;
    case LayerKind::kSimpleRnn:
      RunSimpleRnn(a, &o);
      break;
    case LayerKind::kDense:
      RunDense(a, &o);
      break;
    case LayerKind::kEmbedding:
      RunEmbedding(a, &o);
      break;
  }
  return o;
}

}  // namespace

double RefActivation(Activation a, double x) {
  switch (a) {
    case Activation::kTanh:
      return std::tanh(x);
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case Activation::kHardSigmoidKeras2:
      return std::fmin(1.0, std::fmax(0.0, 0.2 * x + 0.5));
    case Activation::kHardSigmoidKeras3:
      return std::fmin(6.0, std::fmax(0.0, x + 3.0)) / 6.0;
    case Activation::kRelu:
      return x > 0.0 ? x : 0.0;
    case Activation::kLinear:
      break;
  }
  return x;
}

double RefActivationDerivative(Activation a, double x) {
  switch (a) {
    case Activation::kTanh: {
      const double t = std::tanh(x);
      return 1.0 - t * t;
    }
    case Activation::kSigmoid: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 - s);
    }
    case Activation::kHardSigmoidKeras2:
      return (x > -2.5 && x < 2.5) ? 0.2 : 0.0;
    case Activation::kHardSigmoidKeras3:
      return (x > -3.0 && x < 3.0) ? 1.0 / 6.0 : 0.0;
    case Activation::kRelu:
      return x > 0.0 ? 1.0 : 0.0;
    case Activation::kLinear:
      break;
  }
  return 1.0;
}

std::vector<std::vector<int64_t>> RefWeightShapes(const LayerSpec& spec,
                                                  const ActivationShape& in) {
  if (spec.bidirectional) {
    std::vector<std::vector<int64_t>> s =
        RefWeightShapes(DirectionSpec(spec, false), in);
    const auto b = RefWeightShapes(DirectionSpec(spec, true), in);
    s.insert(s.end(), b.begin(), b.end());
    return s;
  }
  const int64_t D = in.dim, U = spec.units;
  switch (spec.kind) {
    case LayerKind::kEmbedding:
      return {{spec.input_dim, U}};
    case LayerKind::kLstm: {
      std::vector<std::vector<int64_t>> s = {{D, 4 * U}, {U, 4 * U}};
      if (spec.use_bias) s.push_back({4 * U});
      return s;
    }
    case LayerKind::kGru: {
      std::vector<std::vector<int64_t>> s = {{D, 3 * U}, {U, 3 * U}};
      if (spec.use_bias)
        s.push_back(spec.reset_after ? std::vector<int64_t>{2, 3 * U}
                                     : std::vector<int64_t>{3 * U});
      return s;
    }
    case LayerKind::kSimpleRnn: {
      std::vector<std::vector<int64_t>> s = {{D, U}, {U, U}};
      if (spec.use_bias) s.push_back({U});
      return s;
    }
    case LayerKind::kDense:
      break;
  }
  std::vector<std::vector<int64_t>> s = {{D, U}};
  if (spec.use_bias) s.push_back({U});
  return s;
}

ActivationShape RefOutputShape(const LayerSpec& spec,
                               const ActivationShape& in) {
  ActivationShape out;
  out.dim = spec.bidirectional && (spec.merge_mode == MergeMode::kConcat ||
                                   spec.merge_mode == MergeMode::kNone)
                ? 2 * spec.units
                : spec.units;
  if (!IsRecurrentKind(spec.kind)) {
    out.sequence = in.sequence;
    out.timesteps = in.sequence ? in.timesteps : 1;
  } else {
    out.sequence = spec.return_sequences;
    out.timesteps = spec.return_sequences ? in.timesteps : 1;
  }
  return out;
}

namespace {

// Bidirectional (§ keras Bidirectional.call): both copies on the same input,
// the backward copy's sequence flipped to time order, then merged.
struct BiParts {
  LayerSpec fwd, bwd;
  RefWeights wf, wb;
  int steps;  // output steps (1 without return_sequences)
};

BiParts SplitBidirectional(const LayerSpec& spec, const ActivationShape& in,
                           const RefWeights& w) {
  BiParts p{DirectionSpec(spec, false), DirectionSpec(spec, true), {}, {}, 1};
  const size_t half = w.size() / 2;
  p.wf.assign(w.begin(), w.begin() + half);
  p.wb.assign(w.begin() + half, w.end());
  p.steps = spec.return_sequences ? in.timesteps : 1;
  return p;
}

// Reverses the time axis of (batch, steps, U).
std::vector<double> FlipTime(const std::vector<double>& a, int batch, int steps,
                             int U) {
  std::vector<double> b(a.size());
  for (int n = 0; n < batch; ++n)
    for (int t = 0; t < steps; ++t)
      for (int u = 0; u < U; ++u)
        b[(static_cast<size_t>(n) * steps + t) * U + u] =
            a[(static_cast<size_t>(n) * steps + (steps - 1 - t)) * U + u];
  return b;
}

// Each copy's masks of a Bidirectional layer's RefGateMasks (empty: none).
struct BiMasks {
  RefGateMasks fwd, bwd;
  const RefGateMasks* Of(bool backward) const {
    const RefGateMasks& m = backward ? bwd : fwd;
    return m.input.empty() && m.recurrent.empty() ? nullptr : &m;
  }
};

BiMasks SplitMasks(const RefGateMasks* gm) {
  BiMasks m;
  if (gm == nullptr) return m;
  m.fwd.input = gm->input;
  m.fwd.recurrent = gm->recurrent;
  m.bwd.input = gm->backward_input;
  m.bwd.recurrent = gm->backward_recurrent;
  return m;
}

std::vector<double> BiForward(const LayerSpec& spec, const ActivationShape& in,
                              const RefWeights& w, const std::vector<double>& x,
                              int batch, std::vector<double>* yf_out,
                              std::vector<double>* yb_out,
                              std::vector<std::vector<double>>* states,
                              const RefGateMasks* gate_masks,
                              const std::vector<uint8_t>* keep) {
  const BiParts p = SplitBidirectional(spec, in, w);
  const BiMasks m = SplitMasks(gate_masks);
  const int U = spec.units;
  std::vector<std::vector<double>> sf, sb;
  const std::vector<double> yf =
      RefForward(p.fwd, in, p.wf, x, batch, &sf, m.Of(false), keep);
  const std::vector<double> yb =
      FlipTime(RefForward(p.bwd, in, p.wb, x, batch, &sb, m.Of(true), keep),
               batch, p.steps, U);
  if (states != nullptr) {
    *states = sf;
    states->insert(states->end(), sb.begin(), sb.end());
  }
  const size_t rows = static_cast<size_t>(batch) * p.steps;
  std::vector<double> y;
  if (spec.merge_mode == MergeMode::kConcat ||
      spec.merge_mode == MergeMode::kNone) {
    y.resize(rows * 2 * U);
    for (size_t r = 0; r < rows; ++r)
      for (int u = 0; u < U; ++u) {
        y[r * 2 * U + u] = yf[r * U + u];
        y[r * 2 * U + U + u] = yb[r * U + u];
      }
  } else {
    y.resize(yf.size());
    for (size_t i = 0; i < y.size(); ++i) {
      switch (spec.merge_mode) {
        case MergeMode::kSum:
          y[i] = yf[i] + yb[i];
          break;
        case MergeMode::kMul:
          y[i] = yf[i] * yb[i];
          break;
        default:  // kAve
          y[i] = (yf[i] + yb[i]) / 2.0;
          break;
      }
    }
  }
  if (yf_out != nullptr) *yf_out = yf;
  if (yb_out != nullptr) *yb_out = yb;
  return y;
}

RefLayerGrads BiBackward(const LayerSpec& spec, const ActivationShape& in,
                         const RefWeights& w, const std::vector<double>& x,
                         int batch, const std::vector<double>& dy,
                         const RefGateMasks* gate_masks,
                         const std::vector<uint8_t>* keep) {
  const BiParts p = SplitBidirectional(spec, in, w);
  const BiMasks m = SplitMasks(gate_masks);
  const int U = spec.units;
  std::vector<double> yf, yb;
  BiForward(spec, in, w, x, batch, &yf, &yb, nullptr, gate_masks, keep);
  std::vector<double> df(yf.size()), db(yf.size());
  for (size_t r = 0; r < yf.size() / U; ++r)
    for (int u = 0; u < U; ++u) {
      const size_t i = r * U + u;
      switch (spec.merge_mode) {
        case MergeMode::kConcat:
        case MergeMode::kNone:
          df[i] = dy[r * 2 * U + u];
          db[i] = dy[r * 2 * U + U + u];
          break;
        case MergeMode::kSum:
          df[i] = db[i] = dy[i];
          break;
        case MergeMode::kMul:
          df[i] = dy[i] * yb[i];
          db[i] = dy[i] * yf[i];
          break;
        case MergeMode::kAve:
          df[i] = db[i] = dy[i] / 2.0;
          break;
      }
    }
  RefLayerGrads g =
      RefBackward(p.fwd, in, p.wf, x, batch, df, m.Of(false), keep);
  const RefLayerGrads gb =
      RefBackward(p.bwd, in, p.wb, x, batch, FlipTime(db, batch, p.steps, U),
                  m.Of(true), keep);
  g.dweights.insert(g.dweights.end(), gb.dweights.begin(), gb.dweights.end());
  for (size_t i = 0; i < g.dx.size(); ++i) g.dx[i] += gb.dx[i];
  return g;
}

}  // namespace

std::vector<double> RefForward(const LayerSpec& spec, const ActivationShape& in,
                               const RefWeights& weights,
                               const std::vector<double>& x, int batch,
                               std::vector<std::vector<double>>* final_states,
                               const RefGateMasks* gate_masks,
                               const std::vector<uint8_t>* keep) {
  if (spec.bidirectional)
    return BiForward(spec, in, weights, x, batch, nullptr, nullptr,
                     final_states, gate_masks, keep);
  Outputs o = Run(Args{spec, in, weights, x, batch, nullptr, gate_masks, keep});
  if (final_states != nullptr) *final_states = std::move(o.states);
  return o.y;
}

RefLayerGrads RefBackward(const LayerSpec& spec, const ActivationShape& in,
                          const RefWeights& weights,
                          const std::vector<double>& x, int batch,
                          const std::vector<double>& dy,
                          const RefGateMasks* gate_masks,
                          const std::vector<uint8_t>* keep) {
  if (spec.bidirectional)
    return BiBackward(spec, in, weights, x, batch, dy, gate_masks, keep);
  return Run(Args{spec, in, weights, x, batch, &dy, gate_masks, keep}).grads;
}

std::vector<uint8_t> RefMaskingKeep(const std::vector<double>& x, int batch,
                                    int steps, int dim, double mask_value) {
  std::vector<uint8_t> keep(static_cast<size_t>(batch) * steps, 0);
  for (size_t r = 0; r < keep.size(); ++r)
    for (int d = 0; d < dim; ++d)
      if (x[r * dim + d] != mask_value) keep[r] = 1;
  return keep;
}

std::vector<uint8_t> RefMaskZeroKeep(const std::vector<double>& ids) {
  std::vector<uint8_t> keep(ids.size(), 0);
  for (size_t r = 0; r < ids.size(); ++r) keep[r] = ids[r] != 0.0 ? 1 : 0;
  return keep;
}

namespace {

// Multiplies every timestep of sample b, feature d, by mask[b, d] (no-op for
// an empty mask).
void RefApplyMask(const ActivationShape& shape, int batch,
                  const std::vector<double>& mask, std::vector<double>* a) {
  if (mask.empty()) return;
  const int steps = shape.sequence ? shape.timesteps : 1;
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < steps; ++t) {
      for (int d = 0; d < shape.dim; ++d) {
        (*a)[(static_cast<size_t>(b) * steps + t) * shape.dim + d] *=
            mask[static_cast<size_t>(b) * shape.dim + d];
      }
    }
  }
}

const std::vector<double>& MaskOf(const RefMasks* masks, size_t i) {
  static const std::vector<double> kNone;
  return masks != nullptr && i < masks->size() ? (*masks)[i] : kNone;
}

const RefGateMasks* GateMasksOf(const std::vector<RefGateMasks>* masks,
                                size_t i) {
  if (masks == nullptr || i >= masks->size()) return nullptr;
  const RefGateMasks& m = (*masks)[i];
  return m.input.empty() && m.recurrent.empty() && m.backward_input.empty() &&
                 m.backward_recurrent.empty()
             ? nullptr
             : &m;
}

// Masking's output: steps the mask skips become zeros (no-op without one).
// An embedding first makes the mask itself (mask_zero) and outputs row 0 at
// the skipped steps: its ids stay as they are.
void RefZeroSkipped(const std::vector<LayerSpec>& layers,
                    const std::vector<uint8_t>* keep, int dim,
                    std::vector<double>* a) {
  if (keep == nullptr || layers.front().kind == LayerKind::kEmbedding) return;
  for (size_t r = 0; r < keep->size(); ++r)
    if ((*keep)[r] == 0)
      for (int d = 0; d < dim; ++d) (*a)[r * dim + d] = 0.0;
}

// The mask reaches a layer while the activations are sequences.
const std::vector<uint8_t>* KeepFor(const std::vector<uint8_t>* keep,
                                    const ActivationShape& shape) {
  return shape.sequence ? keep : nullptr;
}

}  // namespace

std::vector<double> RefModelForward(const std::vector<LayerSpec>& layers,
                                    const ActivationShape& in,
                                    const std::vector<RefWeights>& weights,
                                    const std::vector<double>& x, int batch,
                                    const RefMasks* masks,
                                    const std::vector<RefGateMasks>* gates,
                                    const std::vector<uint8_t>* keep) {
  std::vector<double> act = x;
  ActivationShape shape = in;
  RefZeroSkipped(layers, keep, in.dim, &act);
  for (size_t i = 0; i < layers.size(); ++i) {
    RefApplyMask(shape, batch, MaskOf(masks, i), &act);
    act = RefForward(layers[i], shape, weights[i], act, batch, nullptr,
                     GateMasksOf(gates, i), KeepFor(keep, shape));
    shape = RefOutputShape(layers[i], shape);
  }
  return act;
}

std::vector<RefLayerGrads> RefModelBackward(
    const std::vector<LayerSpec>& layers, const ActivationShape& in,
    const std::vector<RefWeights>& weights, const std::vector<double>& x,
    int batch, const std::vector<double>& dy, const RefMasks* masks,
    const std::vector<RefGateMasks>* gates, const std::vector<uint8_t>* keep) {
  // inputs[i]: what layer i sees, after its mask.
  std::vector<std::vector<double>> inputs = {x};
  std::vector<ActivationShape> shapes = {in};
  RefZeroSkipped(layers, keep, in.dim, &inputs[0]);
  RefApplyMask(in, batch, MaskOf(masks, 0), &inputs[0]);
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    inputs.push_back(RefForward(layers[i], shapes[i], weights[i], inputs[i],
                                batch, nullptr, GateMasksOf(gates, i),
                                KeepFor(keep, shapes[i])));
    shapes.push_back(RefOutputShape(layers[i], shapes[i]));
    RefApplyMask(shapes[i + 1], batch, MaskOf(masks, i + 1), &inputs[i + 1]);
  }
  std::vector<RefLayerGrads> grads(layers.size());
  std::vector<double> g = dy;
  for (size_t i = layers.size(); i-- > 0;) {
    grads[i] = RefBackward(layers[i], shapes[i], weights[i], inputs[i], batch,
                           g, GateMasksOf(gates, i), KeepFor(keep, shapes[i]));
    // d(x·m)/dx = m: the gradient w.r.t. the unmasked input.
    RefApplyMask(shapes[i], batch, MaskOf(masks, i), &grads[i].dx);
    g = grads[i].dx;
  }
  return grads;
}

}  // namespace driftscope
