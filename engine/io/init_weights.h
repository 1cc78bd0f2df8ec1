// Initial weights in Keras layout (DESIGN §5: importing them rules an init
// difference out): the name and shape of every weight of a model in
// get_weights() order, and a directory of .npy files read and checked
// against them. Shared by `driftscope train --init-weights`, `driftscope
// submit --init-weights` and the coordinator's check at submission, so all
// three agree on the layout. Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_IO_INIT_WEIGHTS_H_
#define DRIFTSCOPE_ENGINE_IO_INIT_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/job/job_spec.h"

namespace driftscope {

struct KerasWeight {
  std::string name;  // "layer0_kernel", "layer0_recurrent_kernel", ...
  std::vector<int64_t> shape;
};

// Every weight of `model`, get_weights() order; layers count from 0.
std::vector<KerasWeight> KerasWeightLayout(const ModelSpec& model);

// DIR/layer{i}_kernel.npy, layer{i}_recurrent_kernel.npy (RNN layers) and
// layer{i}_bias.npy (when use_bias), in layout order. Errors name `flag`
// and the file: a missing directory or file, a shape unlike the layout, a
// file the model has no slot for (a layer too many, a bias of a layer
// without one).
absl::StatusOr<std::vector<NdArray>> ReadInitWeightsDir(
    const std::string& dir, const ModelSpec& model, const std::string& flag);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_IO_INIT_WEIGHTS_H_
