// Which layers a cudnn profile may run: Keras' own conditions, and a refusal
// that names the layer and the reason.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/cuda/cudnn_layout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

LayerSpec Layer(LayerKind kind) {
  LayerSpec s;
  s.kind = kind;
  s.units = 8;
  return s;
}

TEST(CudnnEligibleTest, KerasDefaultLstmAndGruAreEligible) {
  EXPECT_TRUE(CudnnEligible(Layer(LayerKind::kLstm)).ok());
  EXPECT_TRUE(CudnnEligible(Layer(LayerKind::kGru)).ok());
  // Keras' cuDNN path ignores these: they do not change eligibility.
  LayerSpec s = Layer(LayerKind::kLstm);
  s.return_sequences = true;
  s.go_backwards = true;
  s.implementation = 1;
  s.unit_forget_bias = false;
  EXPECT_TRUE(CudnnEligible(s).ok());
}

TEST(CudnnEligibleTest, EachKerasConditionIsRefusedWithItsReason) {
  struct Bad {
    LayerSpec spec;
    std::string reason;
  };
  std::vector<Bad> bad;
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru}) {
    LayerSpec s = Layer(kind);
    s.activation = Activation::kRelu;
    bad.push_back({s, "activation must be tanh, got relu"});
    s = Layer(kind);
    s.recurrent_activation = Activation::kHardSigmoidKeras3;
    bad.push_back(
        {s, "recurrent_activation must be sigmoid, got hard_sigmoid"});
    s = Layer(kind);
    s.use_bias = false;
    bad.push_back({s, "use_bias must be true"});
  }
  LayerSpec gru = Layer(LayerKind::kGru);
  gru.reset_after = false;
  bad.push_back({gru, "reset_after must be true"});
  bad.push_back({Layer(LayerKind::kSimpleRnn), "SimpleRNN"});
  bad.push_back({Layer(LayerKind::kDense), "only LSTM and GRU"});
  for (const Bad& b : bad) {
    const absl::Status s = CudnnEligible(b.spec, "model.layers[3]");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << b.reason;
    EXPECT_THAT(std::string(s.message()),
                AllOf(HasSubstr("model.layers[3]"), HasSubstr(b.reason),
                      HasSubstr("cuDNN")));
  }
}

TEST(CudnnEligibleTest, ModelCheckSkipsDenseAndNamesTheFirstBadLayer) {
  std::vector<LayerSpec> model = {Layer(LayerKind::kLstm),
                                  Layer(LayerKind::kGru),
                                  Layer(LayerKind::kDense)};
  EXPECT_TRUE(CudnnCheckModel(model).ok());
  model[1].reset_after = false;
  model.insert(model.begin() + 2, Layer(LayerKind::kSimpleRnn));
  const absl::Status s = CudnnCheckModel(model);
  EXPECT_THAT(
      std::string(s.message()),
      AllOf(HasSubstr("model.layers[1] (gru)"), HasSubstr("reset_after")));
}

TEST(CudnnEligibleTest, LayoutRefusesWhatCudnnCannotRun) {
  ActivationShape in;
  in.timesteps = 4;
  in.dim = 3;
  LayerSpec s = Layer(LayerKind::kGru);
  s.reset_after = false;
  EXPECT_EQ(CudnnWeightLayout::For(s, in).status().code(),
            absl::StatusCode::kInvalidArgument);
  s = Layer(LayerKind::kLstm);
  s.units = 0;
  EXPECT_EQ(CudnnWeightLayout::For(s, in).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace driftscope
