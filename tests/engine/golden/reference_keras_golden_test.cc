// The double-precision reference (engine/reference) is the oracle other
// tests hold the engine to; here the oracle itself is held to real Keras 3:
// forward outputs, final states and back-propagated gradients of every golden
// layer case, float64, 1e-10 relative (golden_util.h). The MSE gradient fed
// to RefModelBackward is written out here from its definition,
// 2·(ŷ − y) / (rows · last_dim), so this test does not depend on
// engine/loss.
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/job/job_spec.h"
#include "engine/reference/reference.h"
#include "gtest/gtest.h"
#include "tests/engine/golden/golden_util.h"

namespace driftscope {
namespace {

using golden::ExpectMatchesKeras;
using golden::GoldenDir;
using golden::Load;
using golden::Values;

constexpr int kBatch = 4, kTimesteps = 5, kFeatures = 3, kUnits = 4;

struct RefCase {
  std::string name;
  std::vector<LayerSpec> layers;
};

LayerSpec Spec(LayerKind kind, int units, bool seq) {
  LayerSpec s;
  s.kind = kind;
  s.units = units;
  s.return_sequences = seq;
  if (kind == LayerKind::kDense) s.activation = Activation::kLinear;
  return s;
}

// A subset of make_model_golden.py's LAYER_CASES covering every layer kind
// and every option the reference implements differently.
std::vector<RefCase> Cases() {
  std::vector<RefCase> c;
  const LayerSpec lstm = Spec(LayerKind::kLstm, kUnits, true);
  const LayerSpec gru = Spec(LayerKind::kGru, kUnits, true);
  const LayerSpec rnn = Spec(LayerKind::kSimpleRnn, kUnits, true);
  c.push_back({"lstm_seq", {lstm}});
  LayerSpec s = lstm;
  s.implementation = 1;
  c.push_back({"lstm_impl1", {s}});
  s = lstm;
  s.return_sequences = false;
  c.push_back({"lstm_last", {s}});
  s = lstm;
  s.recurrent_activation = Activation::kHardSigmoidKeras3;
  c.push_back({"lstm_hard_sigmoid", {s}});
  s = lstm;
  s.go_backwards = true;
  c.push_back({"lstm_backwards_seq", {s}});
  s.return_sequences = false;
  c.push_back({"lstm_backwards_last", {s}});
  s = lstm;
  s.use_bias = false;
  c.push_back({"lstm_no_bias", {s}});
  c.push_back({"gru_reset_after", {gru}});
  s = gru;
  s.reset_after = false;
  c.push_back({"gru_reset_before", {s}});
  s = gru;
  s.go_backwards = true;
  s.return_sequences = false;
  c.push_back({"gru_backwards_last", {s}});
  s = gru;
  s.recurrent_activation = Activation::kHardSigmoidKeras3;
  c.push_back({"gru_hard_sigmoid", {s}});
  s = gru;
  s.use_bias = false;
  c.push_back({"gru_no_bias", {s}});
  c.push_back({"simple_rnn_seq", {rnn}});
  s = rnn;
  s.go_backwards = true;
  c.push_back({"simple_rnn_backwards_seq", {s}});
  for (const auto& [name, act] :
       std::vector<std::pair<std::string, Activation>>{
           {"dense_linear", Activation::kLinear},
           {"dense_tanh", Activation::kTanh},
           {"dense_sigmoid", Activation::kSigmoid},
           {"dense_relu", Activation::kRelu}}) {
    s = Spec(LayerKind::kDense, kUnits, true);
    s.activation = act;
    c.push_back({name, {s}});
  }
  c.push_back(
      {"stack_lstm_gru_dense", {lstm, gru, Spec(LayerKind::kDense, 2, true)}});
  return c;
}

void PrintTo(const RefCase& c, std::ostream* os) { *os << c.name; }

class ReferenceKerasGoldenTest : public testing::TestWithParam<RefCase> {};

TEST_P(ReferenceKerasGoldenTest, ForwardAndGradientsMatchKeras) {
  const RefCase& rc = GetParam();
  const std::string dir = GoldenDir("layer", rc.name, true);
  const ActivationShape in{true, kTimesteps, kFeatures};
  std::vector<RefWeights> weights;
  std::vector<std::vector<std::string>> names;
  ActivationShape shape = in;
  for (size_t i = 0; i < rc.layers.size(); ++i) {
    RefWeights w;
    std::vector<std::string> n;
    const std::vector<std::vector<int64_t>> shapes =
        RefWeightShapes(rc.layers[i], shape);
    static const char* const kNames[] = {"kernel", "recurrent_kernel", "bias"};
    const bool dense = rc.layers[i].kind == LayerKind::kDense;
    for (size_t k = 0; k < shapes.size(); ++k) {
      const std::string name = dense && k == 1 ? "bias" : kNames[k];
      const NdArray a = Load(dir, absl::StrCat("layer", i, "_", name));
      ASSERT_EQ(a.shape(), shapes[k])
          << rc.name << " layer" << i << " " << name;
      w.push_back(Values<double>(a));
      n.push_back(name);
    }
    weights.push_back(std::move(w));
    names.push_back(std::move(n));
    shape = RefOutputShape(rc.layers[i], shape);
  }
  const std::vector<double> x = Values<double>(Load(dir, "x"));
  const std::vector<double> y = Values<double>(Load(dir, "y"));
  const std::vector<double> out =
      RefModelForward(rc.layers, in, weights, x, kBatch);
  ASSERT_EQ(out.size(), y.size());
  const std::string what = rc.name + " reference";
  ExpectMatchesKeras(what, out.data(), out.size(), dir, dir, "out");

  if (rc.layers.size() == 1 && rc.layers[0].kind != LayerKind::kDense &&
      rc.layers[0].return_state) {
    std::vector<std::vector<double>> states;
    RefForward(rc.layers[0], in, weights[0], x, kBatch, &states);
    ASSERT_FALSE(states.empty());
    ExpectMatchesKeras(what, states[0].data(), states[0].size(), dir, dir,
                       "state_h");
    if (states.size() > 1) {
      ExpectMatchesKeras(what, states[1].data(), states[1].size(), dir, dir,
                         "state_c");
    }
  }

  // MSE with sum_over_batch_size: mean over the last axis, then over rows.
  const double rows = static_cast<double>(out.size()) / shape.dim;
  std::vector<double> dy(out.size());
  double loss = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double e = out[i] - y[i];
    loss += e * e;
    dy[i] = 2.0 * e / (rows * shape.dim);
  }
  loss /= rows * shape.dim;
  ExpectMatchesKeras(what, &loss, 1, dir, dir, "loss");

  const std::vector<RefLayerGrads> grads =
      RefModelBackward(rc.layers, in, weights, x, kBatch, dy);
  ASSERT_EQ(grads.size(), rc.layers.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    ASSERT_EQ(grads[i].dweights.size(), names[i].size());
    for (size_t k = 0; k < names[i].size(); ++k) {
      ExpectMatchesKeras(what, grads[i].dweights[k].data(),
                         grads[i].dweights[k].size(), dir, dir,
                         absl::StrCat("grad_layer", i, "_", names[i][k]));
    }
  }
  ExpectMatchesKeras(what, grads[0].dx.data(), grads[0].dx.size(), dir, dir,
                     "grad_x");
}

INSTANTIATE_TEST_SUITE_P(Keras3, ReferenceKerasGoldenTest,
                         testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<RefCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace driftscope
