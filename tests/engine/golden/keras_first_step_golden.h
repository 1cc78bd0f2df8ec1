// The Keras model-golden checks shared by the Bidirectional, Masking,
// Embedding and recurrent-dropout tests: the cases' shape (a name and a
// JobSpec) and the gtest names they give, seed_mode KERAS's initial weights
// against the golden's f32/w*, and the first training step's gradients of
// the engine's model and of the float64 reference against Keras float64's
// GradientTape (f64/grads0_w*). A golden case directory is laid out as
// keras_training_golden.h says.
// Not thread-safe (plain functions over test data).
#ifndef DRIFTSCOPE_TESTS_ENGINE_GOLDEN_KERAS_FIRST_STEP_GOLDEN_H_
#define DRIFTSCOPE_TESTS_ENGINE_GOLDEN_KERAS_FIRST_STEP_GOLDEN_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/job/job_spec.h"
#include "engine/layers/layer.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"
#include "engine/reference/reference.h"
#include "engine/train/dropout.h"
#include "engine/train/model.h"
#include "engine/train/trainer.h"
#include "gtest/gtest.h"
#include "tests/engine/golden/golden_util.h"
#include "tests/engine/golden/keras_training_golden.h"

namespace driftscope {
namespace golden {

// One golden case: its directory name and the JobSpec that mirrors the
// generator's model.
struct KerasCase {
  std::string name;
  JobSpec spec;
};

inline void PrintTo(const KerasCase& c, std::ostream* os) { *os << c.name; }

// gtest parameter names: the case's name, and name_f64 / name_f32 for the
// (case, fp64) pairs of the training goldens.
struct KerasCaseName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return info.param.name;
  }
};
struct KerasCasePrecisionName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return std::get<0>(info.param).name +
           (std::get<1>(info.param) ? "_f64" : "_f32");
  }
};

// A training golden's parameters: a case, and fp64 (true) or fp32.
class KerasTrainingGoldenTest
    : public ::testing::TestWithParam<std::tuple<KerasCase, bool>> {
 protected:
  // ExpectTrainingMatchesKeras for this case under golden_dir + its name.
  void ExpectTrainingMatchesKeras(const std::string& golden_dir,
                                  bool check_initial_outputs) {
    const KerasCase& tc = std::get<0>(GetParam());
    golden::ExpectTrainingMatchesKeras(tc.name, golden_dir + tc.name, tc.spec,
                                       std::get<1>(GetParam()),
                                       check_initial_outputs);
  }
};

// Every case, under fp64 and fp32.
inline auto KerasTrainingParams(const std::vector<KerasCase>& cases) {
  return ::testing::Combine(::testing::ValuesIn(cases), ::testing::Bool());
}

// What the generators' cases share: seed_mode KERAS, MSE, 2 epochs of
// batches of 4 in order, Adam at 2^-5; the model's input is (timesteps,
// features) and its layers are the case's.
inline JobSpec KerasGoldenBaseSpec(int timesteps, int features) {
  JobSpec base;
  base.seed_mode = SeedMode::kKeras;
  base.model.timesteps = timesteps;
  base.model.features = features;
  base.loss = LossKind::kMse;
  base.training.epochs = 2;
  base.training.batch_size = 4;
  base.training.shuffle = false;
  base.optimizer.kind = OptimizerKind::kAdam;
  base.optimizer.learning_rate = 0x1p-5;
  return base;
}

// Runs `spec` for 0 epochs on fp32 into *run and expects its weights within
// 1e-6 of Keras' (f32_dir + "w0.npy", ...); with bit_exact_except_recurrent,
// every weight but the recurrent kernels (orthogonal: float32 rounding) bit
// for bit, counted in *exact; with same_shapes, Keras' shapes too. Fails
// fatally (call it in ASSERT_NO_FATAL_FAILURE) when the run fails or the
// weights' count or sizes differ.
inline void ExpectKerasSeedModeWeights(const std::string& f32_dir,
                                       const JobSpec& case_spec,
                                       bool bit_exact_except_recurrent,
                                       bool same_shapes, RunResult* run,
                                       int* exact) {
  *exact = 0;
  const std::vector<NdArray> want = LoadSeries(f32_dir, "w");
  JobSpec spec = case_spec;
  spec.training.epochs = 0;
  spec.data.samples = 4;
  spec.data.eval_samples = 4;
  absl::StatusOr<RunResult> r = RunJob(spec, *Profile::Parse("fp32"));
  ASSERT_TRUE(r.ok()) << r.status();
  *run = *std::move(r);
  ASSERT_EQ(run->final_weights.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) {
    const NdArray& got = run->final_weights[j].array;
    const std::string& name = run->final_weights[j].name;
    ASSERT_EQ(got.size(), want[j].size()) << name;
    if (same_shapes) {
      ASSERT_EQ(got.shape(), want[j].shape()) << name;
    }
    const bool recurrent = name.find("recurrent_kernel") != std::string::npos;
    if (bit_exact_except_recurrent && !recurrent) {
      EXPECT_EQ(
          0, std::memcmp(got.raw(), want[j].raw(), got.size() * sizeof(float)))
          << name;
      ++*exact;
    }
    for (int64_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got.at(i), want[j].at(i), 1e-6) << name;
  }
}

// The first training step of a golden case in float64: the engine's model
// and the reference's weights, both holding the golden's initial weights
// (f64/w*), the first batch of x, y, and Keras' gradients (f64/grads0_w*).
// Filled in place by LoadFirstStep (a Context cannot move).
struct FirstStepGolden {
  std::string name;
  int batch = 0;
  NdArray y;
  std::vector<double> xb;  // the first batch of x
  std::vector<NdArray> want;
  std::unique_ptr<Model<double>> model;
  std::vector<RefWeights> ref_weights;  // per layer
  std::unique_ptr<Context> ctx;         // fp64
  // The model's input to the reference: (timesteps, features) per sample.
  ActivationShape input_shape;
};

// Fails (fatally: call it in ASSERT_NO_FATAL_FAILURE) when the golden's
// weights do not fit the model `spec` makes.
inline void LoadFirstStep(const std::string& name, const std::string& f64_dir,
                          const JobSpec& spec, FirstStepGolden* s) {
  s->name = name;
  const std::vector<NdArray> init = LoadSeries(f64_dir, "w");
  s->want = LoadSeries(f64_dir, "grads0_w");
  ASSERT_FALSE(init.empty()) << f64_dir << ": no initial weights";
  ASSERT_EQ(init.size(), s->want.size());
  const NdArray x = Load(f64_dir, "x");
  s->y = Load(f64_dir, "y");
  s->batch = spec.training.batch_size;
  absl::StatusOr<std::unique_ptr<Model<double>>> model =
      Model<double>::Create(spec.model, s->batch);
  ASSERT_TRUE(model.ok()) << model.status();
  s->model = *std::move(model);
  ASSERT_EQ(s->model->weights().size(), init.size());
  s->ref_weights.assign(spec.model.layers.size(), RefWeights());
  for (size_t j = 0; j < init.size(); ++j) {
    const ModelWeight& mw = s->model->weights()[j];
    ASSERT_EQ(mw.size, init[j].size()) << mw.name;
    for (int64_t i = 0; i < mw.size; ++i)
      s->model->params()[mw.offset + i] = init[j].at(i);
    s->ref_weights[mw.layer].emplace_back(
        init[j].data<double>(), init[j].data<double>() + init[j].size());
  }
  const int64_t per_x = x.size() / x.shape()[0];
  s->xb.assign(x.data<double>(), x.data<double>() + s->batch * per_x);
  Profile profile;
  profile.precision = Precision::kFp64;
  s->ctx = std::make_unique<Context>(profile);
  s->input_shape =
      ActivationShape{true, spec.model.timesteps, spec.model.features};
}

// The first batch's values of y.
inline int64_t FirstBatchOutputs(const FirstStepGolden& s) {
  return s.batch * (s.y.size() / s.y.shape()[0]);
}

// MSE's gradient over the first batch's n outputs: 2 (p − y) / divisor.
inline std::vector<double> MseGradient(const FirstStepGolden& s,
                                       const double* pred, int64_t divisor) {
  const int64_t n = FirstBatchOutputs(s);
  std::vector<double> dy(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    dy[i] = 2.0 * (pred[i] - s.y.at(i)) / static_cast<double>(divisor);
  return dy;
}

// The engine model's gradients (after its Backward) against Keras'.
inline void ExpectEngineGradientsMatchKeras(const FirstStepGolden& s) {
  for (size_t j = 0; j < s.want.size(); ++j) {
    const ModelWeight& mw = s.model->weights()[j];
    const RelError e = MaxRel(s.model->grads() + mw.offset, s.want[j]);
    EXPECT_LE(e.max_rel, kF64RelTol)
        << s.name << " engine grads of " << mw.name << " at " << e.worst << ": "
        << e.actual << " vs Keras " << e.ref;
  }
}

// The reference's gradients (RefModelBackward's, per layer) against Keras'.
inline void ExpectReferenceGradientsMatchKeras(
    const FirstStepGolden& s, const std::vector<RefLayerGrads>& g) {
  std::vector<int> index_in_layer(s.ref_weights.size(), 0);
  for (size_t j = 0; j < s.want.size(); ++j) {
    const ModelWeight& mw = s.model->weights()[j];
    const RelError r = MaxRel(
        g[mw.layer].dweights[index_in_layer[mw.layer]++].data(), s.want[j]);
    EXPECT_LE(r.max_rel, kF64RelTol)
        << s.name << " reference grads of " << mw.name;
  }
}

// Both of the above.
inline void ExpectFirstStepGradientsMatchKeras(
    const FirstStepGolden& s, const std::vector<RefLayerGrads>& g) {
  ExpectEngineGradientsMatchKeras(s);
  ExpectReferenceGradientsMatchKeras(s, g);
}

// The masks `masks` drew for Bidirectional layers, in the reference's form:
// a copy's shared input mask once per gate, its per-gate masks as they are.
inline std::vector<RefGateMasks> RefDirectionGateMasks(
    const JobSpec& spec, const DropoutMasks<double>& masks, int batch) {
  const size_t n_layers = spec.model.layers.size();
  std::vector<RefGateMasks> gates(n_layers);
  int width = spec.model.features;
  for (size_t i = 0; i < n_layers; ++i) {
    const LayerSpec& l = spec.model.layers[i];
    const DirectionMasks<double>* dm =
        masks.direction_masks(static_cast<int>(i));
    const int64_t in_size = int64_t{batch} * width;
    const int64_t rec_size = int64_t{batch} * l.units;
    for (int k = 0; dm != nullptr && k < 2; ++k) {
      auto& in = k == 0 ? gates[i].input : gates[i].backward_input;
      auto& rec = k == 0 ? gates[i].recurrent : gates[i].backward_recurrent;
      if (dm[k].input != nullptr) {
        in.assign(GateMaskCount(l),
                  std::vector<double>(dm[k].input, dm[k].input + in_size));
      }
      if (dm[k].gates != nullptr) {
        for (int g = 0; g < InputMasksPerStep(l); ++g)
          in.emplace_back(dm[k].gates->input + g * in_size,
                          dm[k].gates->input + (g + 1) * in_size);
        for (int g = 0; g < RecurrentMasksPerStep(l); ++g)
          rec.emplace_back(dm[k].gates->recurrent + g * rec_size,
                           dm[k].gates->recurrent + (g + 1) * rec_size);
      }
    }
    width = LayerOutputUnits(l);
  }
  return gates;
}

}  // namespace golden
}  // namespace driftscope

#endif  // DRIFTSCOPE_TESTS_ENGINE_GOLDEN_KERAS_FIRST_STEP_GOLDEN_H_
