// `driftscope import MODEL --out DIR`: a saved Keras model as DIR/spec.json
// and DIR/init_weights/ (the layout `train --init-weights` reads).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/import/keras_import.h"
#include "engine/io/init_weights.h"
#include "engine/io/npy.h"
#include "proto/lib/spec_json.h"

namespace driftscope::cli {

namespace {

constexpr char kImportUsage[] =
    R"(Usage: driftscope import MODEL.keras|MODEL.h5 --out DIR

Reads a saved Keras model (Keras 3 .keras, or Keras 2 / tf.keras .h5 from
model.save()) and writes
  DIR/spec.json       the job: the model; the optimizer and loss when the
                      model was saved compiled (else Keras' Adam() and MSE);
                      seed 42, synthetic SINE data 1024/128, 3 epochs of
                      batch 32 without shuffling (edit them as you like)
  DIR/init_weights/   the file's weights, layer{i}_kernel.npy, ... (the
                      layout of 'driftscope train --init-weights')
Then: driftscope train DIR/spec.json --init-weights DIR/init_weights ...
(or 'train/run/submit --model MODEL' without this step).

Supported: Sequential models and Functional chains of LSTM, GRU, SimpleRNN
and Dense with their options (docs/keras.md). Anything else is refused
naming the layer and what is unsupported, exit 2, and nothing is written.
)";

}  // namespace

const char* ImportUsage() { return kImportUsage; }

int ImportCommand(const std::vector<std::string>& args, std::FILE* out,
                  std::FILE* err) {
  if (PrintUsageIfAsked(args, "import", out)) return kExitOk;
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, {"out"}, {});
  if (!parsed.ok()) return ReportError(err, parsed.status());
  if (parsed->positional.size() != 1) {
    return ReportError(err, absl::InvalidArgumentError(absl::StrCat(
                                "import takes one MODEL file (.keras or .h5), "
                                "got ",
                                parsed->positional.size())));
  }
  const std::optional<std::string> dir = parsed->Get("out");
  if (!dir.has_value()) {
    return ReportError(
        err, absl::InvalidArgumentError("--out DIR is required (it receives "
                                        "spec.json and init_weights/)"));
  }
  const std::string& path = parsed->positional[0];
  absl::StatusOr<ImportedModel> model = ImportKerasModel(path);
  if (!model.ok()) return ReportError(err, model.status());

  absl::StatusOr<StagedDir> staged =
      StagedDir::Create(*dir, "--out", "spec.json");
  if (!staged.ok()) return ReportError(err, staged.status());
  absl::Status s = WriteTextFile(staged->path() + "/spec.json",
                                 SpecToJson(model->spec, true) + "\n");
  if (s.ok()) s = staged->MakeSubdir("init_weights");
  const std::vector<KerasWeight> layout = KerasWeightLayout(model->spec.model);
  for (size_t i = 0; s.ok() && i < layout.size(); ++i) {
    s = WriteNpy(
        absl::StrCat(staged->path(), "/init_weights/", layout[i].name, ".npy"),
        model->init_weights[i]);
  }
  if (s.ok()) s = staged->Commit();
  if (!s.ok()) return ReportError(err, s);

  // The Keras layers the spec holds: a Masking layer is a field of the
  // model, not one of its engine layers.
  const size_t layers = model->spec.model.layers.size() +
                        (model->spec.model.mask_value.has_value() ? 1 : 0);
  std::fprintf(out, "imported %s: %zu layers, %zu weight arrays\n",
               path.c_str(), layers, layout.size());
  std::fprintf(out, "  spec         %s/spec.json (%s)\n", dir->c_str(),
               model->compiled ? "optimizer and loss from the file"
                               : "not compiled: Adam() and MSE");
  std::fprintf(out, "  weights      %s/init_weights\n", dir->c_str());
  std::fprintf(out,
               "  next         driftscope train %s/spec.json --init-weights "
               "%s/init_weights --profile ref64 --out OUT\n",
               dir->c_str(), dir->c_str());
  return kExitOk;
}

}  // namespace driftscope::cli
