// A plain float64 host implementation of the cell equations as cuDNN
// documents them (cudnnRNNMode_t), over cuDNN's packed weight space: the
// oracle for the Keras -> cuDNN weight mapping. It knows nothing of Keras
// layout; it reads W_k, R_k, bW_k, bR_k only through CudnnWeightLayout's
// offsets, so feeding it the mapped Keras weights and comparing with the
// engine's Keras-layout reference checks the mapping, the gate order, the
// GRU z/r swap and the bias slots.
//
//   LSTM (ids 0 i, 1 f, 2 c, 3 o):  a_k = W_k x + R_k h + bW_k + bR_k
//     i = σ(a_0), f = σ(a_1), g = tanh(a_2), o = σ(a_3)
//     c' = f c + i g, h' = o tanh(c')
//   GRU (ids 0 r, 1 z, 2 h):
//     r = σ(W_0 x + bW_0 + R_0 h + bR_0), z = σ(W_1 x + bW_1 + R_1 h + bR_1)
//     n = tanh(W_2 x + bW_2 + r (R_2 h + bR_2)), h' = (1 - z) n + z h
//
// Like cuDNN it runs one unidirectional layer over (B, T, V) batch-major
// data from zero initial states and returns every step; the backward pass
// (full BPTT) fills every slot of the weight gradient, bW and bR alike.
#ifndef DRIFTSCOPE_TESTS_ENGINE_CUDA_CUDNN_HOST_RNN_H_
#define DRIFTSCOPE_TESTS_ENGINE_CUDA_CUDNN_HOST_RNN_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/cuda/cudnn_layout.h"

namespace driftscope {
namespace testing_util {

class CudnnHostRnn {
 public:
  CudnnHostRnn(const CudnnWeightLayout& layout, std::vector<double> w)
      : L_(layout), w_(std::move(w)) {}

  // y (B,T,U) for x (B,T,D); h_T and c_T (c only for LSTM) in *final.
  std::vector<double> Forward(const std::vector<double>& x, int batch,
                              int steps,
                              std::vector<std::vector<double>>* final) {
    const int G = L_.gates(), U = L_.hidden_size(), D = L_.input_size();
    batch_ = batch;
    steps_ = steps;
    x_ = x;
    const size_t per_step = static_cast<size_t>(G) * U;
    acts_.assign(static_cast<size_t>(batch) * steps * per_step, 0.0);
    q_.assign(static_cast<size_t>(batch) * steps * U, 0.0);
    hs_.assign(static_cast<size_t>(batch) * (steps + 1) * U, 0.0);
    cs_.assign(hs_.size(), 0.0);
    std::vector<double> y(static_cast<size_t>(batch) * steps * U);
    for (int b = 0; b < batch; ++b) {
      for (int t = 0; t < steps; ++t) {
        const double* xt = &x_[(static_cast<size_t>(b) * steps + t) * D];
        const double* hp = H(b, t);
        double* a = Act(b, t);
        for (int k = 0; k < G; ++k) {
          for (int u = 0; u < U; ++u) {
            const double wx = Dot(Mat(k) + int64_t{u} * D, xt, D) + BW(k)[u];
            const double rh =
                Dot(Mat(G + k) + int64_t{u} * U, hp, U) + BR(k)[u];
            if (!L_.lstm() && k == 2) {
              // n's pre-activation needs r: keep its parts apart.
              a[k * U + u] = wx;
              Q(b, t)[u] = rh;
            } else {
              a[k * U + u] = wx + rh;
            }
          }
        }
        double* h = H(b, t + 1);
        if (L_.lstm()) {
          const double* cp = C(b, t);
          double* c = C(b, t + 1);
          for (int u = 0; u < U; ++u) {
            const double i = Sigmoid(a[u]), f = Sigmoid(a[U + u]),
                         g = std::tanh(a[2 * U + u]), o = Sigmoid(a[3 * U + u]);
            a[u] = i;
            a[U + u] = f;
            a[2 * U + u] = g;
            a[3 * U + u] = o;
            c[u] = f * cp[u] + i * g;
            h[u] = o * std::tanh(c[u]);
          }
        } else {
          for (int u = 0; u < U; ++u) {
            const double r = Sigmoid(a[u]), z = Sigmoid(a[U + u]);
            const double n = std::tanh(a[2 * U + u] + r * Q(b, t)[u]);
            a[u] = r;
            a[U + u] = z;
            a[2 * U + u] = n;
            h[u] = (1.0 - z) * n + z * hp[u];
          }
        }
        for (int u = 0; u < U; ++u)
          y[(static_cast<size_t>(b) * steps + t) * U + u] = h[u];
      }
    }
    if (final != nullptr) {
      final->clear();
      std::vector<double> hT, cT;
      for (int b = 0; b < batch; ++b) {
        hT.insert(hT.end(), H(b, steps), H(b, steps) + U);
        cT.insert(cT.end(), C(b, steps), C(b, steps) + U);
      }
      final->push_back(hT);
      if (L_.lstm()) final->push_back(cT);
    }
    return y;
  }

  // Given dy (B,T,U) for the last Forward: the weight-space gradient (every
  // slot) and dx (B,T,D).
  void Backward(const std::vector<double>& dy, std::vector<double>* dw,
                std::vector<double>* dx) {
    const int G = L_.gates(), U = L_.hidden_size(), D = L_.input_size();
    dw->assign(static_cast<size_t>(L_.size()), 0.0);
    dx->assign(x_.size(), 0.0);
    std::vector<double> da(static_cast<size_t>(G) * U), dq(U), dh(U), dc(U),
        dh_next(U), dc_next(U);
    for (int b = 0; b < batch_; ++b) {
      std::fill(dh_next.begin(), dh_next.end(), 0.0);
      std::fill(dc_next.begin(), dc_next.end(), 0.0);
      for (int t = steps_ - 1; t >= 0; --t) {
        const size_t row = static_cast<size_t>(b) * steps_ + t;
        const double* a = Act(b, t);
        const double* hp = H(b, t);
        for (int u = 0; u < U; ++u) dh[u] = dy[row * U + u] + dh_next[u];
        if (L_.lstm()) {
          const double* cp = C(b, t);
          const double* c = C(b, t + 1);
          for (int u = 0; u < U; ++u) {
            const double i = a[u], f = a[U + u], g = a[2 * U + u],
                         o = a[3 * U + u], tc = std::tanh(c[u]);
            dc[u] = dc_next[u] + dh[u] * o * (1.0 - tc * tc);
            da[u] = dc[u] * g * i * (1.0 - i);
            da[U + u] = dc[u] * cp[u] * f * (1.0 - f);
            da[2 * U + u] = dc[u] * i * (1.0 - g * g);
            da[3 * U + u] = dh[u] * tc * o * (1.0 - o);
            dc_next[u] = dc[u] * f;
          }
        } else {
          for (int u = 0; u < U; ++u) {
            const double r = a[u], z = a[U + u], n = a[2 * U + u];
            const double dn = dh[u] * (1.0 - z) * (1.0 - n * n);
            const double dr = dn * Q(b, t)[u];
            da[u] = dr * r * (1.0 - r);
            da[U + u] = dh[u] * (hp[u] - n) * z * (1.0 - z);
            da[2 * U + u] = dn;
            dq[u] = dn * r;
          }
        }
        // Recurrent-side gradients: for GRU's gate h the recurrent part
        // sees r ⊙ (R h + bR), so its gradient is dq, not da.
        const double* xt = &x_[row * D];
        for (int k = 0; k < G; ++k) {
          const double* dak = &da[static_cast<size_t>(k) * U];
          const double* drk = (!L_.lstm() && k == 2) ? dq.data() : dak;
          double* dW = dw->data() + L_.MatrixOffset(k);
          double* dR = dw->data() + L_.MatrixOffset(G + k);
          double* dbW = dw->data() + L_.BiasOffset(k);
          double* dbR = dw->data() + L_.BiasOffset(G + k);
          for (int u = 0; u < U; ++u) {
            for (int d = 0; d < D; ++d)
              dW[int64_t{u} * D + d] += dak[u] * xt[d];
            for (int v = 0; v < U; ++v)
              dR[int64_t{u} * U + v] += drk[u] * hp[v];
            dbW[u] += dak[u];
            dbR[u] += drk[u];
          }
        }
        double* dxt = dx->data() + row * D;
        for (int v = 0; v < U; ++v)
          dh_next[v] = L_.lstm() ? 0.0 : dh[v] * a[U + v];  // z carries h
        for (int k = 0; k < G; ++k) {
          const double* dak = &da[static_cast<size_t>(k) * U];
          const double* drk = (!L_.lstm() && k == 2) ? dq.data() : dak;
          const double* W = Mat(k);
          const double* R = Mat(G + k);
          for (int u = 0; u < U; ++u) {
            for (int d = 0; d < D; ++d)
              dxt[d] += W[int64_t{u} * D + d] * dak[u];
            for (int v = 0; v < U; ++v)
              dh_next[v] += R[int64_t{u} * U + v] * drk[u];
          }
        }
      }
    }
  }

 private:
  static double Sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
  static double Dot(const double* a, const double* b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
  }
  const double* Mat(int id) const { return w_.data() + L_.MatrixOffset(id); }
  const double* BW(int k) const { return w_.data() + L_.BiasOffset(k); }
  const double* BR(int k) const {
    return w_.data() + L_.BiasOffset(L_.gates() + k);
  }
  // Per (sample, step): the activated gates, GRU's R_h h + bR_h, and the
  // states with block 0 = the zero initial state.
  double* Act(int b, int t) {
    return &acts_[(static_cast<size_t>(b) * steps_ + t) * L_.gates() *
                  L_.hidden_size()];
  }
  double* Q(int b, int t) {
    return &q_[(static_cast<size_t>(b) * steps_ + t) * L_.hidden_size()];
  }
  double* H(int b, int t) {
    return &hs_[(static_cast<size_t>(b) * (steps_ + 1) + t) * L_.hidden_size()];
  }
  double* C(int b, int t) {
    return &cs_[(static_cast<size_t>(b) * (steps_ + 1) + t) * L_.hidden_size()];
  }

  const CudnnWeightLayout L_;
  const std::vector<double> w_;
  int batch_ = 0, steps_ = 0;
  std::vector<double> x_, acts_, q_, hs_, cs_;
};

// The Keras layer semantics around a cuDNN call, as cudnn_rnn.cu implements
// them: go_backwards reverses the time axis of x before the call (and of dx
// after it); without return_sequences the output is the last step and the
// gradient enters the last step of an otherwise zero dy.
inline std::vector<double> ReverseTime(const std::vector<double>& v, int batch,
                                       int steps) {
  const size_t width = v.size() / (static_cast<size_t>(batch) * steps);
  std::vector<double> out(v.size());
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < steps; ++t)
      std::copy_n(
          &v[(static_cast<size_t>(b) * steps + t) * width], width,
          &out[(static_cast<size_t>(b) * steps + (steps - 1 - t)) * width]);
  return out;
}

// One Keras layer (`keras` = its parameter block in get_weights() layout)
// run through the cuDNN equations on the mapped weights: the output in
// Keras' shape, the final states, dx and the gradients mapped back.
struct HostLayerRun {
  std::vector<double> y, dx, dkeras;
  std::vector<std::vector<double>> final_states;
};

inline HostLayerRun RunKerasLayerThroughCudnnEquations(
    const LayerSpec& spec, const ActivationShape& in, int batch,
    const std::vector<double>& keras, const std::vector<double>& x,
    const std::vector<double>& dy) {
  const CudnnWeightLayout L = *CudnnWeightLayout::For(spec, in);
  const int steps = in.timesteps, U = spec.units;
  std::vector<double> packed(static_cast<size_t>(L.size()));
  PackKerasToCudnn(L, keras.data(), packed.data());
  CudnnHostRnn rnn(L, packed);
  HostLayerRun r;
  const std::vector<double> xs =
      spec.go_backwards ? ReverseTime(x, batch, steps) : x;
  const std::vector<double> yfull =
      rnn.Forward(xs, batch, steps, &r.final_states);
  std::vector<double> dyfull;
  if (spec.return_sequences) {
    r.y = yfull;
    dyfull = dy;
  } else {
    dyfull.assign(yfull.size(), 0.0);
    for (int b = 0; b < batch; ++b)
      for (int u = 0; u < U; ++u) {
        const size_t last =
            (static_cast<size_t>(b) * steps + steps - 1) * U + u;
        r.y.push_back(yfull[last]);
        dyfull[last] = dy[static_cast<size_t>(b) * U + u];
      }
  }
  std::vector<double> dw, dxs;
  rnn.Backward(dyfull, &dw, &dxs);
  r.dx = spec.go_backwards ? ReverseTime(dxs, batch, steps) : dxs;
  r.dkeras.assign(static_cast<size_t>(L.keras_size()), 0.0);
  CudnnGradientsToKeras(L, dw.data(), r.dkeras.data());
  return r;
}

}  // namespace testing_util
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_ENGINE_CUDA_CUDNN_HOST_RNN_H_
