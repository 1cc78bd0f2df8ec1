// The init-weights directory reader (ReadInitWeightsDir, behind
// `--init-weights` of train and submit and the coordinator's check): the
// input picks a small model and then the directory's entries, each a file
// name (one the layout names, or one it must refuse) and either raw bytes, a
// well-formed .npy of a chosen shape, or a directory in the file's place.
// Accepted weights must be exactly the layout's, in its order, each the
// file's array; a refusal names the flag.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/io/init_weights.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "fuzz/fuzz_util.h"

namespace driftscope::fuzz {
namespace {

constexpr char kFlag[] = "--init-weights";

ModelSpec PickModel(FuzzedDataProvider& in) {
  ModelSpec m;
  m.timesteps = in.ConsumeIntegralInRange(1, 4);
  m.features = in.ConsumeIntegralInRange(1, 3);
  const int layers = in.ConsumeIntegralInRange(1, 3);
  for (int i = 0; i < layers; ++i) {
    LayerSpec l;
    l.kind = in.PickValueInArray({LayerKind::kLstm, LayerKind::kGru,
                                  LayerKind::kSimpleRnn, LayerKind::kDense});
    l.units = in.ConsumeIntegralInRange(1, 3);
    l.use_bias = in.ConsumeBool();
    l.reset_after = in.ConsumeBool();
    l.return_sequences = i + 1 < layers || in.ConsumeBool();
    m.layers.push_back(l);
  }
  return m;
}

// One shape, near the layout's most of the time.
std::vector<int64_t> PickShape(FuzzedDataProvider& in,
                               const std::vector<int64_t>& near) {
  std::vector<int64_t> shape = near;
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0:
      break;
    case 1:
      if (!shape.empty()) shape.back() += in.ConsumeIntegralInRange(-1, 1);
      break;
    case 2:
      shape.push_back(1);
      break;
    default:
      shape.assign(in.ConsumeIntegralInRange(0, 3), 0);
      for (int64_t& d : shape) d = in.ConsumeIntegralInRange(0, 5);
  }
  for (int64_t& d : shape) d = std::max<int64_t>(d, 0);
  return shape;
}

void Check(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const ModelSpec model = PickModel(in);
  const std::vector<KerasWeight> layout = KerasWeightLayout(model);
  std::vector<std::string> names;
  for (const KerasWeight& w : layout) names.push_back(w.name);
  // Files the reader must refuse: a layer too many, biases of every layer.
  names.push_back(absl::StrCat("layer", model.layers.size(), "_kernel"));
  for (size_t i = 0; i < model.layers.size(); ++i) {
    names.push_back(absl::StrCat("layer", i, "_bias"));
  }
  const std::string dir = ScratchDir() + "/weights";
  RemoveTree(dir);
  if (::mkdir(dir.c_str(), 0700) != 0) Fail("cannot make " + dir);
  const int entries = in.ConsumeIntegralInRange(0, 12);
  for (int e = 0; e < entries && in.remaining_bytes() > 0; ++e) {
    const size_t k = in.ConsumeIntegralInRange<size_t>(0, names.size() - 1);
    const std::string path = absl::StrCat(dir, "/", names[k], ".npy");
    RemoveTree(path);
    switch (in.ConsumeIntegralInRange(0, 3)) {
      case 0:  // raw bytes
        WriteFileOrDie(path, in.ConsumeRandomLengthString(256));
        break;
      case 1:  // not a regular file
        ::mkdir(path.c_str(), 0700);
        break;
      default: {  // a well-formed .npy
        const std::vector<int64_t> shape = PickShape(
            in, k < layout.size() ? layout[k].shape : std::vector<int64_t>{1});
        NdArray a(in.ConsumeBool() ? DType::kFloat32 : DType::kFloat64, shape);
        const std::string values =
            in.ConsumeBytesAsString(static_cast<size_t>(a.nbytes()));
        std::copy(values.begin(), values.end(), a.raw());
        WriteFileOrDie(path, SerializeNpy(a));
      }
    }
  }
  const absl::StatusOr<std::vector<NdArray>> weights =
      ReadInitWeightsDir(dir, model, kFlag);
  if (!weights.ok()) {
    if (!absl::StartsWith(weights.status().message(), kFlag)) {
      Fail(absl::StrCat("an error that does not name the flag: ",
                        weights.status().message()));
    }
    return;
  }
  if (weights->size() != layout.size()) Fail("not one array per weight");
  for (size_t i = 0; i < layout.size(); ++i) {
    if ((*weights)[i].shape() != layout[i].shape) {
      Fail("accepted a weight whose shape is not the layout's");
    }
    const absl::StatusOr<NdArray> file =
        ReadNpy(absl::StrCat(dir, "/", layout[i].name, ".npy"));
    if (!file.ok() || file->dtype() != (*weights)[i].dtype() ||
        !std::equal(file->raw(), file->raw() + file->nbytes(),
                    (*weights)[i].raw())) {
      Fail("a weight is not its file's array");
    }
  }
  // Accepted: then no file lies in a slot the model does not have.
  for (size_t k = layout.size(); k < names.size(); ++k) {
    struct stat st;
    const std::string path = absl::StrCat(dir, "/", names[k], ".npy");
    const bool is_layout_name =
        std::find_if(layout.begin(), layout.end(), [&](const KerasWeight& w) {
          return w.name == names[k];
        }) != layout.end();
    if (!is_layout_name && ::stat(path.c_str(), &st) == 0) {
      Fail("accepted a directory with " + path);
    }
  }
}

}  // namespace
}  // namespace driftscope::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  driftscope::fuzz::Check(data, size);
  return 0;
}
