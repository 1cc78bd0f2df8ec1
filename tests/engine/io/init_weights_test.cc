// KerasWeightLayout: the Keras get_weights() shapes, from the layers' own
// weight shapes (one owner of the layout), checked against Keras' shapes
// written out by hand.
#include "engine/io/init_weights.h"

#include <vector>

#include "gtest/gtest.h"

namespace driftscope {
namespace {

LayerSpec Layer(LayerKind kind, int units) {
  LayerSpec l;
  l.kind = kind;
  l.units = units;
  l.return_sequences = true;
  return l;
}

TEST(InitWeightsTest, LayoutHasKerasShapesForEveryLayerKind) {
  ModelSpec m;
  m.features = 3;
  m.timesteps = 5;
  m.layers = {Layer(LayerKind::kLstm, 4), Layer(LayerKind::kGru, 2),
              Layer(LayerKind::kSimpleRnn, 6), Layer(LayerKind::kDense, 1)};
  m.layers[1].reset_after = true;
  m.layers[3].use_bias = false;
  const std::vector<KerasWeight> w = KerasWeightLayout(m);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"layer0_kernel", {3, 16}},
      {"layer0_recurrent_kernel", {4, 16}},
      {"layer0_bias", {16}},
      {"layer1_kernel", {4, 6}},
      {"layer1_recurrent_kernel", {2, 6}},
      {"layer1_bias", {2, 6}},
      {"layer2_kernel", {2, 6}},
      {"layer2_recurrent_kernel", {6, 6}},
      {"layer2_bias", {6}},
      {"layer3_kernel", {6, 1}}};
  ASSERT_EQ(w.size(), want.size());
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].name, want[i].first);
    EXPECT_EQ(w[i].shape, want[i].second) << w[i].name;
  }
}

TEST(InitWeightsTest, GruWithoutResetAfterHasAOneRowBias) {
  ModelSpec m;
  m.features = 2;
  m.timesteps = 3;
  m.layers = {Layer(LayerKind::kGru, 5)};
  m.layers[0].reset_after = false;
  const std::vector<KerasWeight> w = KerasWeightLayout(m);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[2].shape, std::vector<int64_t>({15}));
}

TEST(InitWeightsTest, NumpyShapeTextKeepsTheCommaOfOneDimension) {
  EXPECT_EQ(NumpyShapeText({256}), "(256,)");
  EXPECT_EQ(NumpyShapeText({64, 256}), "(64, 256)");
  EXPECT_EQ(NumpyShapeText({}), "()");
}

}  // namespace
}  // namespace driftscope
