// `driftscope import` and `--model FILE`: a saved Keras model (.keras or
// .h5) as a JobSpec and its initial weights. The model (keras_config.h,
// keras_layers.h), the optimizer and loss when the file was saved compiled,
// and every weight checked against the spec's Keras layout
// (engine/io/init_weights.h). The rest of the spec (seed, data, training
// loop) are documented defaults, ImportDefaults(). One thread at a time
// (HDF5).
#ifndef DRIFTSCOPE_CLIENT_IMPORT_KERAS_IMPORT_H_
#define DRIFTSCOPE_CLIENT_IMPORT_KERAS_IMPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/import/keras_file.h"
#include "engine/core/ndarray.h"
#include "engine/job/job_spec.h"

namespace driftscope {

struct ImportedModel {
  JobSpec spec;
  // KerasWeightLayout(spec.model) order, the dtype the file stored.
  std::vector<NdArray> init_weights;
  bool compiled = false;  // optimizer and loss came from the file
};

// The spec fields a Keras file does not hold: seed 42, synthetic SINE data
// (1024 training and 128 eval samples), 3 epochs of batch 32 without
// shuffling (Keras' own shuffle cannot be replayed), and, for a model saved
// uncompiled, Keras' Adam() and MSE.
JobSpec ImportDefaults();

// Reads and maps `path`. Every error is InvalidArgument (NotFound for a
// missing file) and starts with `path`: "m.keras: layer 'conv' (Conv1D):
// the layer class Conv1D is not supported (...)".
absl::StatusOr<ImportedModel> ImportKerasModel(const std::string& path);

// The mapping alone, for a file already read; errors start with `source`.
absl::StatusOr<ImportedModel> ImportKerasFile(const KerasFile& file,
                                              const std::string& source);

}  // namespace driftscope

#endif  // DRIFTSCOPE_CLIENT_IMPORT_KERAS_IMPORT_H_
