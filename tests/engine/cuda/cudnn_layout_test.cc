// The Keras -> cuDNN weight mapping (engine/cuda/cudnn_layout.h), checked on
// the host: the layout itself, then cuDNN's documented cell equations fed the
// mapped weights against the engine's float64 Keras-layout reference and the
// engine's Layer<double>.
#include "engine/cuda/cudnn_layout.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/layers/layer.h"
#include "engine/numerics/context.h"
#include "engine/reference/reference.h"
#include "gtest/gtest.h"
#include "tests/engine/cuda/cudnn_host_rnn.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using testing_util::CudnnHostRnn;
using testing_util::Flatten;
using testing_util::HostLayerRun;
using testing_util::Lcg;
using testing_util::RandomWeights;
using testing_util::RunKerasLayerThroughCudnnEquations;

LayerSpec Rnn(LayerKind kind, int units, bool seq = true, bool back = false) {
  LayerSpec s;
  s.kind = kind;
  s.units = units;
  s.return_sequences = seq;
  s.go_backwards = back;
  return s;
}

ActivationShape Seq(int steps, int dim) {
  ActivationShape in;
  in.sequence = true;
  in.timesteps = steps;
  in.dim = dim;
  return in;
}

CudnnWeightLayout LayoutOf(const LayerSpec& spec, const ActivationShape& in) {
  absl::StatusOr<CudnnWeightLayout> layout = CudnnWeightLayout::For(spec, in);
  EXPECT_TRUE(layout.ok()) << layout.status();
  return *layout;
}

TEST(CudnnLayoutTest, RegionsTileTheWeightSpaceInCudnnOrder) {
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru}) {
    const CudnnWeightLayout L = LayoutOf(Rnn(kind, 4), Seq(5, 3));
    const int G = kind == LayerKind::kLstm ? 4 : 3;
    ASSERT_EQ(L.gates(), G);
    EXPECT_EQ(L.size(), G * (4 * 3 + 4 * 4 + 2 * 4));
    int64_t next = 0;
    for (int id = 0; id < 2 * G; ++id) {
      EXPECT_EQ(L.MatrixOffset(id), next) << "matrix " << id;
      EXPECT_EQ(L.MatrixSize(id), id < G ? 4 * 3 : 4 * 4);
      next += L.MatrixSize(id);
    }
    for (int id = 0; id < 2 * G; ++id) {
      EXPECT_EQ(L.BiasOffset(id), next) << "bias " << id;
      next += L.BiasSize();
    }
    EXPECT_EQ(next, L.size());
    // The Keras block: kernel, recurrent_kernel, bias (2 rows for GRU).
    EXPECT_EQ(L.keras_size(), 3 * G * 4 + 4 * G * 4 +
                                  (kind == LayerKind::kGru ? 2 : 1) * G * 4);
  }
}

TEST(CudnnLayoutTest, EveryKerasParameterIsPackedExactlyOnce) {
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru}) {
    const CudnnWeightLayout L = LayoutOf(Rnn(kind, 5), Seq(2, 3));
    const std::vector<int32_t> src = CudnnPackSource(L);
    ASSERT_EQ(static_cast<int64_t>(src.size()), L.size());
    std::vector<int> seen(static_cast<size_t>(L.keras_size()), 0);
    int64_t zeros = 0;
    for (int32_t s : src) {
      if (s < 0) {
        ++zeros;
        continue;
      }
      ASSERT_LT(s, L.keras_size());
      ++seen[static_cast<size_t>(s)];
    }
    for (size_t j = 0; j < seen.size(); ++j)
      EXPECT_EQ(seen[j], 1) << "Keras parameter " << j;
    // Only LSTM's input-bias slots are constant zeros.
    EXPECT_EQ(zeros, kind == LayerKind::kLstm ? 4 * 5 : 0);
    const std::vector<int32_t> grad = CudnnGradientSource(L);
    ASSERT_EQ(static_cast<int64_t>(grad.size()), L.keras_size());
    for (size_t j = 0; j < grad.size(); ++j)
      EXPECT_EQ(src[static_cast<size_t>(grad[j])], static_cast<int32_t>(j));
  }
}

// Hand-placed values: Keras element (row, column) of each weight lands where
// cuDNN's documentation puts that gate's element.
TEST(CudnnLayoutTest, LstmGatesKeepKerasOrderAndTheBiasGoesToTheRecurrentSlot) {
  const int D = 2, U = 3, G = 4;
  const CudnnWeightLayout L = LayoutOf(Rnn(LayerKind::kLstm, U), Seq(4, D));
  std::vector<double> keras(static_cast<size_t>(L.keras_size()));
  for (size_t j = 0; j < keras.size(); ++j) keras[j] = 1.0 + double(j);
  std::vector<double> packed(static_cast<size_t>(L.size()), -7.0);
  PackKerasToCudnn(L, keras.data(), packed.data());
  const double* kernel = keras.data();
  const double* recurrent = kernel + D * G * U;
  const double* bias = recurrent + U * G * U;
  for (int g = 0; g < G; ++g) {
    for (int u = 0; u < U; ++u) {
      for (int d = 0; d < D; ++d)
        EXPECT_EQ(packed[L.MatrixOffset(g) + u * D + d],
                  kernel[d * G * U + g * U + u]);
      for (int v = 0; v < U; ++v)
        EXPECT_EQ(packed[L.MatrixOffset(G + g) + u * U + v],
                  recurrent[v * G * U + g * U + u]);
      EXPECT_EQ(packed[L.BiasOffset(g) + u], 0.0) << "input bias, gate " << g;
      EXPECT_EQ(packed[L.BiasOffset(G + g) + u], bias[g * U + u]);
    }
  }
}

TEST(CudnnLayoutTest, GruSwapsUpdateAndResetAndKeepsBothBiasRows) {
  const int D = 2, U = 3, G = 3;
  const CudnnWeightLayout L = LayoutOf(Rnn(LayerKind::kGru, U), Seq(4, D));
  std::vector<double> keras(static_cast<size_t>(L.keras_size()));
  for (size_t j = 0; j < keras.size(); ++j) keras[j] = 1.0 + double(j);
  std::vector<double> packed(static_cast<size_t>(L.size()), -7.0);
  PackKerasToCudnn(L, keras.data(), packed.data());
  const double* kernel = keras.data();
  const double* recurrent = kernel + D * G * U;
  const double* bias = recurrent + U * G * U;  // (2, 3U)
  // cuDNN id -> Keras block: r (0) is Keras' second block, z (1) its first.
  const int keras_block[3] = {1, 0, 2};
  for (int k = 0; k < G; ++k) {
    const int kb = keras_block[k];
    EXPECT_EQ(L.KerasBlock(k), kb);
    for (int u = 0; u < U; ++u) {
      for (int d = 0; d < D; ++d)
        EXPECT_EQ(packed[L.MatrixOffset(k) + u * D + d],
                  kernel[d * G * U + kb * U + u]);
      for (int v = 0; v < U; ++v)
        EXPECT_EQ(packed[L.MatrixOffset(G + k) + u * U + v],
                  recurrent[v * G * U + kb * U + u]);
      EXPECT_EQ(packed[L.BiasOffset(k) + u], bias[kb * U + u]);
      EXPECT_EQ(packed[L.BiasOffset(G + k) + u], bias[G * U + kb * U + u]);
    }
  }
}

TEST(CudnnLayoutTest, LstmBiasGradientIsTheRecurrentSlotNotTheSum) {
  const int U = 3, G = 4;
  const CudnnWeightLayout L = LayoutOf(Rnn(LayerKind::kLstm, U), Seq(2, 2));
  std::vector<double> dpacked(static_cast<size_t>(L.size()));
  for (size_t i = 0; i < dpacked.size(); ++i) dpacked[i] = double(i);
  std::vector<double> dkeras(static_cast<size_t>(L.keras_size()), -1.0);
  CudnnGradientsToKeras(L, dpacked.data(), dkeras.data());
  const double* dbias = dkeras.data() + dkeras.size() - G * U;
  for (int g = 0; g < G; ++g)
    for (int u = 0; u < U; ++u)
      EXPECT_EQ(dbias[g * U + u], dpacked[L.BiasOffset(G + g) + u]);
}

// ---- cuDNN's equations on the mapped weights vs. the Keras reference ----

struct Case {
  LayerKind kind;
  int batch, steps, dim, units;
  bool seq, back;
};

std::string Name(const Case& c) {
  return std::string(c.kind == LayerKind::kLstm ? "lstm" : "gru") +
         " B=" + std::to_string(c.batch) + " T=" + std::to_string(c.steps) +
         " D=" + std::to_string(c.dim) + " U=" + std::to_string(c.units) +
         " return_sequences=" + std::to_string(c.seq) +
         " go_backwards=" + std::to_string(c.back);
}

std::vector<Case> Cases() {
  std::vector<Case> out;
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru})
    for (bool seq : {true, false})
      for (bool back : {false, true}) {
        out.push_back({kind, 2, 3, 3, 4, seq, back});
        out.push_back({kind, 3, 7, 1, 2, seq, back});
        out.push_back({kind, 1, 5, 6, 5, seq, back});
      }
  return out;
}

void ExpectClose(const std::vector<double>& got,
                 const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err =
        std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i]));
    if (err > worst) worst = err, at = i;
  }
  EXPECT_LE(worst, 1e-12) << what << ": element " << at << " is " << got[at]
                          << ", reference " << want[at];
}

TEST(CudnnEquationsTest, MappedWeightsReproduceTheKerasReference) {
  Lcg rng(11);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Name(c));
    const LayerSpec spec = Rnn(c.kind, c.units, c.seq, c.back);
    const ActivationShape in = Seq(c.steps, c.dim);
    const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
    const std::vector<double> x =
        rng.Vec(int64_t{c.batch} * c.steps * c.dim, 1.0);
    const std::vector<double> dy =
        rng.Vec(int64_t{c.batch} * (c.seq ? c.steps : 1) * c.units, 1.0);

    std::vector<std::vector<double>> ref_final;
    const std::vector<double> ref_y =
        RefForward(spec, in, w, x, c.batch, &ref_final);
    const RefLayerGrads ref = RefBackward(spec, in, w, x, c.batch, dy);

    const HostLayerRun got = RunKerasLayerThroughCudnnEquations(
        spec, in, c.batch, Flatten(w), x, dy);
    ExpectClose(got.y, ref_y, "y");
    ASSERT_EQ(got.final_states.size(), ref_final.size());
    for (size_t s = 0; s < ref_final.size(); ++s)
      ExpectClose(got.final_states[s], ref_final[s], "final state");
    ExpectClose(got.dkeras, Flatten(ref.dweights), "dweights");
    ExpectClose(got.dx, ref.dx, "dx");
  }
}

// The same against the engine's own layers (Layer<double>, a different code
// path from the reference loops).
TEST(CudnnEquationsTest, MappedWeightsReproduceTheEngineFloat64Layers) {
  Profile profile;
  profile.precision = Precision::kFp64;
  profile.threads = 1;
  const Context ctx(profile);
  Lcg rng(23);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Name(c));
    const LayerSpec spec = Rnn(c.kind, c.units, c.seq, c.back);
    const ActivationShape in = Seq(c.steps, c.dim);
    const std::vector<double> keras =
        Flatten(RandomWeights(spec, in, &rng, 0.6));
    const std::vector<double> x =
        rng.Vec(int64_t{c.batch} * c.steps * c.dim, 1.0);
    const std::vector<double> dy =
        rng.Vec(int64_t{c.batch} * (c.seq ? c.steps : 1) * c.units, 1.0);

    auto layer = MakeLayer<double>(spec, in, "layer");
    ASSERT_TRUE(layer.ok()) << layer.status();
    std::vector<double> y(dy.size()), dx(x.size()), dkeras(keras.size());
    (*layer)->Forward(ctx, keras.data(), x.data(), c.batch, y.data());
    std::vector<std::vector<double>> final;
    for (const double* s : (*layer)->final_states())
      final.emplace_back(s, s + c.batch * c.units);
    (*layer)->Backward(ctx, keras.data(), dy.data(), dx.data(), dkeras.data());

    const HostLayerRun got =
        RunKerasLayerThroughCudnnEquations(spec, in, c.batch, keras, x, dy);
    ExpectClose(got.y, y, "y");
    ASSERT_EQ(got.final_states.size(), final.size());
    for (size_t s = 0; s < final.size(); ++s)
      ExpectClose(got.final_states[s], final[s], "final state");
    ExpectClose(got.dkeras, dkeras, "dweights");
    ExpectClose(got.dx, dx, "dx");
  }
}

// The comparison above is sharp enough to see a wrong map: packing GRU
// without the z/r swap, or summing LSTM's two bias gradients, is caught.
TEST(CudnnEquationsTest, AWrongMapIsDetected) {
  Lcg rng(5);
  const Case c{LayerKind::kGru, 2, 4, 3, 3, true, false};
  const LayerSpec spec = Rnn(c.kind, c.units);
  const ActivationShape in = Seq(c.steps, c.dim);
  const RefWeights w = RandomWeights(spec, in, &rng, 0.6);
  const std::vector<double> x = rng.Vec(c.batch * c.steps * c.dim, 1.0);
  const CudnnWeightLayout L = LayoutOf(spec, in);
  std::vector<double> packed(static_cast<size_t>(L.size()));
  PackKerasToCudnn(L, Flatten(w).data(), packed.data());
  // Swap the r and z regions back: Keras' block order taken as cuDNN's.
  for (int side : {0, 3}) {
    std::swap_ranges(packed.begin() + L.MatrixOffset(side),
                     packed.begin() + L.MatrixOffset(side + 1),
                     packed.begin() + L.MatrixOffset(side + 1));
    std::swap_ranges(packed.begin() + L.BiasOffset(side),
                     packed.begin() + L.BiasOffset(side) + c.units,
                     packed.begin() + L.BiasOffset(side + 1));
  }
  CudnnHostRnn rnn(L, packed);
  const std::vector<double> y = rnn.Forward(x, c.batch, c.steps, nullptr);
  const std::vector<double> ref = RefForward(spec, in, w, x, c.batch);
  double worst = 0.0;
  for (size_t i = 0; i < y.size(); ++i)
    worst = std::max(worst, std::abs(y[i] - ref[i]));
  EXPECT_GT(worst, 1e-3);

  // LSTM: cuDNN's dbW equals dbR, so their sum is twice Keras' gradient.
  const Case l{LayerKind::kLstm, 2, 4, 3, 3, true, false};
  const LayerSpec lspec = Rnn(l.kind, l.units);
  const RefWeights lw = RandomWeights(lspec, in, &rng, 0.6);
  const CudnnWeightLayout LL = LayoutOf(lspec, in);
  std::vector<double> lpacked(static_cast<size_t>(LL.size()));
  PackKerasToCudnn(LL, Flatten(lw).data(), lpacked.data());
  CudnnHostRnn lrnn(LL, lpacked);
  lrnn.Forward(x, l.batch, l.steps, nullptr);
  const std::vector<double> dy = rng.Vec(l.batch * l.steps * l.units, 1.0);
  std::vector<double> dw, dx;
  lrnn.Backward(dy, &dw, &dx);
  const RefLayerGrads lref = RefBackward(lspec, in, lw, x, l.batch, dy);
  const std::vector<double>& dbias = lref.dweights[2];
  for (int g = 0; g < 4; ++g)
    for (int u = 0; u < l.units; ++u) {
      const double dbw = dw[LL.BiasOffset(g) + u];
      const double dbr = dw[LL.BiasOffset(4 + g) + u];
      EXPECT_NEAR(dbw, dbr, 1e-12);
      EXPECT_NEAR(dbr, dbias[g * l.units + u], 1e-12);
      EXPECT_GT(std::abs(dbw + dbr - dbias[g * l.units + u]), 1e-6);
    }
}

}  // namespace
}  // namespace driftscope
