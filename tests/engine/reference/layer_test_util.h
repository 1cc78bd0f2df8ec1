// Test helpers shared by the layer and reference tests: a tiny deterministic
// LCG (independent of engine/rng), random weights in Keras layout, and the
// list of layer configurations every check runs over.
#ifndef DRIFTSCOPE_TESTS_ENGINE_REFERENCE_LAYER_TEST_UTIL_H_
#define DRIFTSCOPE_TESTS_ENGINE_REFERENCE_LAYER_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/job/job_spec.h"
#include "engine/numerics/activations.h"
#include "engine/reference/reference.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace testing_util {

// Layer specs the tests build models from: an RNN layer (LSTM, GRU,
// SimpleRNN), a Dense layer with a linear activation, and an RNN layer
// wrapped in Bidirectional with `mode` merging its copies.
inline LayerSpec Rnn(LayerKind kind, int units, bool sequences = true) {
  LayerSpec l;
  l.kind = kind;
  l.units = units;
  l.return_sequences = sequences;
  return l;
}

inline LayerSpec Dense(int units) {
  LayerSpec l;
  l.kind = LayerKind::kDense;
  l.units = units;
  l.activation = Activation::kLinear;
  return l;
}

// actual[i] within tol of want[i] for every i of `actual`; failures name
// what[i]. Scaled: within tol · max(1, |want[i]|).
template <typename A, typename W>
void ExpectNearEach(const A& actual, const W& want, double tol,
                    const std::string& what) {
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], want[i], tol) << what << "[" << i << "]";
}

template <typename A, typename W>
void ExpectNearEachScaled(const A& actual, const W& want, double tol,
                          const std::string& what) {
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], want[i], tol * std::max(1.0, std::fabs(want[i])))
        << what << "[" << i << "]";
}

inline LayerSpec Bi(LayerKind kind, int units, MergeMode mode, bool sequences) {
  LayerSpec l = Rnn(kind, units, sequences);
  l.bidirectional = true;
  l.merge_mode = mode;
  return l;
}

class Lcg {
 public:
  explicit Lcg(uint64_t seed) : s_(seed * 6364136223846793005ULL + 1) {}
  // Uniform in [-scale, scale), 53 bits from the high end of the state.
  double Next(double scale = 1.0) {
    s_ = s_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const double u = static_cast<double>(s_ >> 11) * 0x1.0p-53;
    return (2.0 * u - 1.0) * scale;
  }
  std::vector<double> Vec(int64_t n, double scale) {
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = Next(scale);
    return v;
  }

 private:
  uint64_t s_;
};

inline RefWeights RandomWeights(const LayerSpec& spec,
                                const ActivationShape& in, Lcg* rng,
                                double scale) {
  RefWeights w;
  for (const auto& shape : RefWeightShapes(spec, in)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    w.push_back(rng->Vec(n, scale));
  }
  return w;
}

inline std::vector<double> Flatten(const RefWeights& w) {
  std::vector<double> out;
  for (const auto& v : w) out.insert(out.end(), v.begin(), v.end());
  return out;
}

inline std::string Describe(const LayerSpec& s) {
  std::string k = s.kind == LayerKind::kLstm        ? "lstm"
                  : s.kind == LayerKind::kGru       ? "gru"
                  : s.kind == LayerKind::kSimpleRnn ? "simple_rnn"
                                                    : "dense";
  return k + " units=" + std::to_string(s.units) +
         " return_sequences=" + std::to_string(s.return_sequences) +
         " go_backwards=" + std::to_string(s.go_backwards) +
         " implementation=" + std::to_string(s.implementation) +
         " use_bias=" + std::to_string(s.use_bias) +
         " reset_after=" + std::to_string(s.reset_after) +
         " activation=" + ActivationName(s.activation) +
         " recurrent_activation=" + ActivationName(s.recurrent_activation);
}

// Every recurrent configuration: {LSTM, GRU reset_after, GRU not, SimpleRNN}
// × return_sequences × go_backwards × implementation 1/2 × use_bias ×
// recurrent activation {sigmoid, hard_sigmoid K2, K3} × activation
// {tanh, sigmoid, relu, linear}, plus Dense × every activation × bias.
// SimpleRNN has no implementation or recurrent activation argument.
inline std::vector<LayerSpec> AllLayerConfigs(int units) {
  const Activation acts[] = {Activation::kTanh, Activation::kSigmoid,
                             Activation::kRelu, Activation::kLinear};
  const Activation racts[] = {Activation::kSigmoid,
                              Activation::kHardSigmoidKeras2,
                              Activation::kHardSigmoidKeras3};
  std::vector<LayerSpec> out;
  for (int kind = 0; kind < 4; ++kind) {
    for (int rs = 0; rs < 2; ++rs) {
      for (int gb = 0; gb < 2; ++gb) {
        for (int impl = 1; impl <= 2; ++impl) {
          for (int bias = 0; bias < 2; ++bias) {
            for (Activation ra : racts) {
              for (Activation a : acts) {
                LayerSpec s;
                s.units = units;
                s.return_sequences = rs;
                s.go_backwards = gb;
                s.implementation = impl;
                s.use_bias = bias;
                s.activation = a;
                s.recurrent_activation = ra;
                if (kind == 0) s.kind = LayerKind::kLstm;
                if (kind == 1 || kind == 2) {
                  s.kind = LayerKind::kGru;
                  s.reset_after = kind == 1;
                }
                if (kind == 3) {
                  if (impl == 1 || ra != Activation::kSigmoid) continue;
                  s.kind = LayerKind::kSimpleRnn;
                }
                out.push_back(s);
              }
            }
          }
        }
      }
    }
  }
  const Activation dense_acts[] = {Activation::kTanh,
                                   Activation::kSigmoid,
                                   Activation::kHardSigmoidKeras2,
                                   Activation::kHardSigmoidKeras3,
                                   Activation::kRelu,
                                   Activation::kLinear};
  for (Activation a : dense_acts) {
    for (int bias = 0; bias < 2; ++bias) {
      LayerSpec s;
      s.kind = LayerKind::kDense;
      s.units = units;
      s.activation = a;
      s.use_bias = bias;
      out.push_back(s);
    }
  }
  return out;
}

// Expects the reference gradients g (of loss(w, x) with respect to every
// weight and input element) to equal central finite differences with step
// 1e-6, within 1e-7 relative (absolute below 1).
template <typename Loss>
void ExpectGradientsMatchFiniteDifferences(const RefWeights& w,
                                           const std::vector<double>& x,
                                           const RefLayerGrads& g,
                                           const Loss& loss) {
  const double h = 1e-6;
  for (size_t k = 0; k < w.size(); ++k) {
    for (size_t i = 0; i < w[k].size(); ++i) {
      RefWeights wp = w, wm = w;
      wp[k][i] += h;
      wm[k][i] -= h;
      const double fd = (loss(wp, x) - loss(wm, x)) / (2 * h);
      EXPECT_NEAR(g.dweights[k][i], fd, 1e-7 * std::max(1.0, std::fabs(fd)))
          << "weight " << k << "[" << i << "]";
    }
  }
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<double> xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (loss(w, xp) - loss(w, xm)) / (2 * h);
    EXPECT_NEAR(g.dx[i], fd, 1e-7 * std::max(1.0, std::fabs(fd))) << "x" << i;
  }
}

// Random weights (RandomWeights) for each layer of a model whose input is
// `in`, layer by layer in the order the rng draws them.
inline std::vector<RefWeights> RandomModelWeights(
    const std::vector<LayerSpec>& layers, const ActivationShape& in, Lcg* rng,
    double scale) {
  std::vector<RefWeights> w;
  ActivationShape shape = in;
  for (const LayerSpec& l : layers) {
    w.push_back(RandomWeights(l, shape, rng, scale));
    shape = RefOutputShape(l, shape);
  }
  return w;
}

// Every layer's weight gradients g[k].dweights against central differences
// (h = 1e-6) of loss(weights): within 1e-7 · max(1, |fd|); failures start
// with `what`.
template <typename Loss>
void ExpectModelGradientsMatchFiniteDifferences(
    const std::vector<RefWeights>& w, const std::vector<RefLayerGrads>& g,
    const Loss& loss, const std::string& what) {
  const double h = 1e-6;
  for (size_t k = 0; k < w.size(); ++k) {
    for (size_t j = 0; j < w[k].size(); ++j) {
      for (size_t i = 0; i < w[k][j].size(); ++i) {
        std::vector<RefWeights> wp = w, wm = w;
        wp[k][j][i] += h;
        wm[k][j][i] -= h;
        const double fd = (loss(wp) - loss(wm)) / (2 * h);
        EXPECT_NEAR(g[k].dweights[j][i], fd,
                    1e-7 * std::max(1.0, std::fabs(fd)))
            << what << "layer " << k << " weight " << j << "[" << i << "]";
      }
    }
  }
}

}  // namespace testing_util
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_ENGINE_REFERENCE_LAYER_TEST_UTIL_H_
