#include "engine/io/init_weights.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/io/npy.h"
#include "engine/layers/layer.h"
#include "engine/layers/layer_internal.h"

namespace driftscope {

namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

std::vector<KerasWeight> KerasWeightLayout(const ModelSpec& m) {
  // The layers' own shapes (the ones they allocate), so the layout has one
  // owner and a new layer kind needs no second table here.
  std::vector<KerasWeight> weights;
  ActivationShape in{true, m.timesteps, m.features};
  for (size_t i = 0; i < m.layers.size(); ++i) {
    for (WeightShape& w : LayerWeightShapes(m.layers[i], in)) {
      weights.push_back(
          {absl::StrCat("layer", i, "_", w.name), std::move(w.shape)});
    }
    in = LayerOutputShape(m.layers[i], in);
  }
  return weights;
}

absl::StatusOr<std::vector<NdArray>> ReadInitWeightsDir(
    const std::string& dir, const ModelSpec& model, const std::string& flag) {
  if (!IsDir(dir)) {
    return absl::NotFoundError(
        absl::StrCat(flag, " ", dir, ": no such directory"));
  }
  std::vector<NdArray> weights;
  for (const KerasWeight& w : KerasWeightLayout(model)) {
    const std::string path = absl::StrCat(dir, "/", w.name, ".npy");
    absl::StatusOr<NdArray> a = ReadNpy(path);
    if (!a.ok()) {
      return absl::Status(a.status().code(),
                          absl::StrCat(flag, ": ", a.status().message()));
    }
    if (a->shape() != w.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", path, ": shape ", a->ShapeString(),
                       " does not match the Keras shape ",
                       NumpyShapeText(w.shape), " of the spec's model"));
    }
    weights.push_back(*std::move(a));
  }
  // A weight file the model has no slot for means the spec and the weights
  // disagree (e.g. use_bias false): importing part of them would mislead.
  const std::string extra =
      absl::StrCat(dir, "/layer", model.layers.size(), "_kernel.npy");
  if (Exists(extra)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", extra, ": the spec's model has only ",
                     model.layers.size(), " layers"));
  }
  for (size_t i = 0; i < model.layers.size(); ++i) {
    if (!model.layers[i].use_bias) {
      const std::string path = absl::StrCat(dir, "/layer", i, "_bias.npy");
      if (Exists(path)) {
        return absl::InvalidArgumentError(absl::StrCat(
            flag, " ", path, ": model.layers[", i, "] has use_bias false"));
      }
    }
  }
  return weights;
}

}  // namespace driftscope
