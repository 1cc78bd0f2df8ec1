// `driftscope train`: one run of a job spec in this process, written as
// .npy/.json files that numpy users load directly.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli_util.h"
#include "client/cli/commands.h"
#include "client/cli/remote_flags.h"
#include "client/cli/run_io.h"
#include "client/import/keras_import.h"
#include "client/lib/worker_client.h"
#include "engine/core/ndarray.h"
#include "engine/core/sha256.h"
#include "engine/env/environment.h"
#include "engine/io/init_weights.h"
#include "engine/io/npy.h"
#include "engine/job/job_spec.h"
#include "engine/numerics/profile.h"
#include "engine/train/trainer.h"
#include "proto/lib/spec_json.h"

namespace driftscope::cli {

namespace {

struct TrainOptions {
  std::optional<std::string> spec_path;
  std::string profile = "fp32";
  std::optional<std::string> init_weights_dir;
  std::optional<std::string> model_path;  // --model: a .keras/.h5 file
  std::optional<std::string> x, y, eval_x;
  std::string out;
  std::optional<WorkerClientOptions> worker;  // run remotely when set
  int64_t max_memory_bytes = 0;               // in-process runs; 0: none
};

// A supplied tensor and where it came from, for run.json.
struct DataFile {
  std::string role;  // "x", "y", "eval_x"
  std::string path;
  std::string sha256;  // of the file's bytes
};

// Everything that was read and checked before any output is written.
struct PreparedRun {
  JobSpec spec;
  Profile profile;
  RunOptions options;
  std::vector<DataFile> data_files;
  std::string environment_json;  // of the machine that ran the job
};

absl::StatusOr<TrainOptions> ParseTrainArgs(
    const std::vector<std::string>& args) {
  std::set<std::string> value_flags = {
      "profile", "init-weights", "model",         "x", "y", "eval-x",
      "out",     "worker",       "max-memory-mib"};
  value_flags.insert(RemoteValueFlags().begin(), RemoteValueFlags().end());
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, value_flags, RemoteSwitchFlags());
  if (!parsed.ok()) return parsed.status();
  TrainOptions o;
  if (parsed->positional.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train takes at most one SPEC.json, got ", parsed->positional.size(),
        " arguments: ", absl::StrJoin(parsed->positional, " ")));
  }
  if (!parsed->positional.empty()) o.spec_path = parsed->positional[0];
  std::optional<std::string> out = parsed->Get("out");
  if (!out.has_value()) {
    return absl::InvalidArgumentError(
        "--out is required (the directory that receives the results)");
  }
  o.out = *out;
  if (auto p = parsed->Get("profile")) o.profile = *p;
  absl::StatusOr<int64_t> memory = InProcessMemoryLimit(*parsed);
  if (!memory.ok()) return memory.status();
  o.max_memory_bytes = *memory;
  o.init_weights_dir = parsed->Get("init-weights");
  o.model_path = parsed->Get("model");
  if (o.model_path.has_value() &&
      (o.spec_path.has_value() || o.init_weights_dir.has_value())) {
    return absl::InvalidArgumentError(
        "--model replaces SPEC.json and --init-weights (the file holds the "
        "model and its weights); to change the imported spec, run "
        "`driftscope import MODEL --out DIR` and edit DIR/spec.json");
  }
  o.x = parsed->Get("x");
  o.y = parsed->Get("y");
  o.eval_x = parsed->Get("eval-x");
  if (auto w = parsed->Get("worker")) {
    absl::StatusOr<WorkerClientOptions> wo =
        WorkerOptionsFromFlags(*parsed, *w);
    if (!wo.ok()) return wo.status();
    o.worker = *std::move(wo);
  } else if (parsed->Has("insecure") || parsed->Get("tls-ca") ||
             parsed->Get("token") || parsed->Get("token-file")) {
    return absl::InvalidArgumentError(
        "--insecure, --tls-ca, --token and --token-file need --worker "
        "HOST:PORT");
  }
  return o;
}

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string s = bytes.str();
  return Sha256Hex(s.data(), s.size());
}

// Reads a data tensor and checks its shape against the model: "(N, T, F)"
// with T and F fixed, or the model output for y.
absl::StatusOr<NdArray> ReadDataTensor(const std::string& flag,
                                       const std::string& path,
                                       const std::vector<int64_t>& expected,
                                       const std::string& expected_text,
                                       int64_t samples) {
  absl::StatusOr<NdArray> a = ReadNpy(path);
  if (!a.ok()) {
    return absl::Status(a.status().code(),
                        absl::StrCat(flag, ": ", a.status().message()));
  }
  bool ok = a->ndim() == static_cast<int>(expected.size()) + 1 &&
            a->shape()[0] >= 1 && (samples < 0 || a->shape()[0] == samples);
  for (size_t i = 0; ok && i < expected.size(); ++i) {
    ok = a->shape()[i + 1] == expected[i];
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": shape ", a->ShapeString(),
                     " does not match ", expected_text));
  }
  return a;
}

// The token ids of a model that starts with an Embedding: an int32, int64
// (or integer-valued float) .npy of shape (N, T) or (N, T, 1), every value
// in [0, input_dim); returned as (N, T, 1) float64, the engine's input.
absl::StatusOr<NdArray> ReadTokenIds(const std::string& flag,
                                     const std::string& path,
                                     const ModelSpec& m) {
  absl::StatusOr<NdArray> a = ReadNpyIntegers(path);
  if (!a.ok()) {
    return absl::Status(a.status().code(),
                        absl::StrCat(flag, ": ", a.status().message()));
  }
  const std::vector<int64_t>& shape = a->shape();
  if ((shape.size() != 2 && !(shape.size() == 3 && shape[2] == 1)) ||
      shape[0] < 1 || shape[1] != m.timesteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path, ": shape ", a->ShapeString(), " does not match (N, ",
        m.timesteps, ") token ids (model.input.timesteps ", m.timesteps,
        "; model.layers[0] is an embedding)"));
  }
  NdArray ids(DType::kFloat64, {shape[0], shape[1], 1});
  for (int64_t i = 0; i < ids.size(); ++i) ids.data<double>()[i] = a->at(i);
  if (absl::Status s = CheckTokenIds(absl::StrCat(flag, " ", path), ids, m);
      !s.ok()) {
    return s;
  }
  return ids;
}

absl::Status LoadData(const TrainOptions& o, const SuppliedDataPaths& from_spec,
                      PreparedRun* run) {
  // Flags override the spec's data.supplied; x and y always come together.
  std::string x = from_spec.x, y = from_spec.y, eval_x = from_spec.eval_x;
  std::string x_flag = "data.supplied.x", y_flag = "data.supplied.y",
              eval_flag = "data.supplied.eval_x";
  if (o.x.has_value() != o.y.has_value()) {
    return absl::InvalidArgumentError(
        "--x and --y must be given together (inputs and targets)");
  }
  if (o.x.has_value()) {
    x = *o.x;
    y = *o.y;
    eval_x.clear();
    x_flag = "--x";
    y_flag = "--y";
  }
  if (o.eval_x.has_value()) {
    if (x.empty()) {
      return absl::InvalidArgumentError(
          "--eval-x needs --x and --y (the synthetic generator makes its own "
          "eval set)");
    }
    eval_x = *o.eval_x;
    eval_flag = "--eval-x";
  }
  if (x.empty()) return absl::OkStatus();

  const ModelSpec& m = run->spec.model;
  const std::string input_text = absl::StrCat(
      "(N, ", m.timesteps, ", ", m.features, ") from model.input (timesteps ",
      m.timesteps, ", features ", m.features, ")");
  const bool tokens =
      !m.layers.empty() && m.layers.front().kind == LayerKind::kEmbedding;
  absl::StatusOr<NdArray> xa =
      tokens ? ReadTokenIds(x_flag, x, m)
             : ReadDataTensor(x_flag, x, {m.timesteps, m.features}, input_text,
                              -1);
  if (!xa.ok()) return xa.status();
  const int64_t n = xa->shape()[0];
  const int units = ModelOutputUnits(m);
  std::vector<int64_t> y_shape = {units};
  std::string y_text = absl::StrCat("the model output (", n, ", ", units, ")");
  if (ModelOutputIsSequence(m)) {
    y_shape = {m.timesteps, units};
    y_text = absl::StrCat("the model output (", n, ", ", m.timesteps, ", ",
                          units, ")");
  }
  absl::StatusOr<NdArray> ya = ReadDataTensor(y_flag, y, y_shape, y_text, n);
  if (!ya.ok()) return ya.status();
  run->options.x = *std::move(xa);
  run->options.y = *std::move(ya);
  std::vector<std::pair<std::string, std::string>> files = {{"x", x}, {"y", y}};
  if (!eval_x.empty()) {
    absl::StatusOr<NdArray> ea =
        tokens ? ReadTokenIds(eval_flag, eval_x, m)
               : ReadDataTensor(eval_flag, eval_x, {m.timesteps, m.features},
                                input_text, -1);
    if (!ea.ok()) return ea.status();
    run->options.eval_x = *std::move(ea);
    files.emplace_back("eval_x", eval_x);
  }
  for (const auto& [role, path] : files) {
    absl::StatusOr<std::string> digest = FileSha256(path);
    if (!digest.ok()) return digest.status();
    run->data_files.push_back({role, path, *digest});
  }
  return absl::OkStatus();
}

absl::Status LoadInitWeights(const std::string& dir, PreparedRun* run) {
  absl::StatusOr<std::vector<NdArray>> weights =
      ReadInitWeightsDir(dir, run->spec.model, "--init-weights");
  if (!weights.ok()) return weights.status();
  run->options.init_weights = *std::move(weights);
  return absl::OkStatus();
}

absl::StatusOr<PreparedRun> Prepare(const TrainOptions& o) {
  PreparedRun run;
  SuppliedDataPaths supplied;
  if (o.spec_path.has_value()) {
    absl::StatusOr<JobSpec> spec = LoadSpecJson(*o.spec_path, &supplied);
    if (!spec.ok()) return spec.status();
    run.spec = *std::move(spec);
  } else if (o.model_path.has_value()) {
    absl::StatusOr<ImportedModel> model = ImportKerasModel(*o.model_path);
    if (!model.ok()) return model.status();
    run.spec = std::move(model->spec);
    run.options.init_weights = std::move(model->init_weights);
  } else {
    run.spec = DefaultJobSpec();
  }
  absl::StatusOr<Profile> profile = Profile::Parse(o.profile);
  if (!profile.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--profile: ", profile.status().message()));
  }
  run.profile = *profile;
  if (absl::Status s = LoadData(o, supplied, &run); !s.ok()) return s;
  if (o.init_weights_dir.has_value()) {
    if (absl::Status s = LoadInitWeights(*o.init_weights_dir, &run); !s.ok()) {
      return s;
    }
  }
  return run;
}

double FinalLoss(const RunResult& r) {
  if (r.losses.size() == 0) return std::numeric_limits<double>::quiet_NaN();
  return r.losses.at(r.losses.size() - 1);
}

std::string RunJson(const TrainOptions& o, const PreparedRun& run,
                    const RunResult& r, double wall_seconds) {
  std::vector<std::string> data;
  for (const DataFile& f : run.data_files) {
    data.push_back(absl::StrCat(JsonQuote(f.role),
                                ":{\"path\":", JsonQuote(f.path),
                                ",\"sha256\":", JsonQuote(f.sha256), "}"));
  }
  const std::string data_json =
      data.empty() ? "{\"source\":\"synthetic\"}"
                   : absl::StrCat("{\"source\":\"supplied\",",
                                  absl::StrJoin(data, ","), "}");
  std::vector<std::string> shape;
  for (int64_t d : r.outputs.shape()) shape.push_back(absl::StrCat(d));
  return absl::StrCat(
      "{\n\"format\":\"driftscope-run-v1\",\n\"spec_digest\":",
      JsonQuote(r.spec_digest), ",\n\"spec\":", SpecToJson(run.spec),
      ",\n\"spec_file\":",
      o.spec_path.has_value() ? JsonQuote(*o.spec_path) : "null",
      ",\n\"model_file\":",
      o.model_path.has_value() ? JsonQuote(*o.model_path) : "null",
      ",\n\"data\":", data_json, ",\n\"init_weights\":",
      o.init_weights_dir.has_value() ? JsonQuote(*o.init_weights_dir) : "null",
      ",\n\"profile_requested\":", JsonQuote(o.profile),
      ",\n\"profile\":", JsonQuote(r.profile),
      ",\n\"environment\":", run.environment_json,
      ",\n\"device\":", DeviceRunJson(r.device), ",\n\"steps\":", r.steps,
      ",\n\"final_loss\":", JsonNumber(FinalLoss(r)), ",\n\"outputs_shape\":[",
      absl::StrJoin(shape, ","),
      "],\n\"outputs_dtype\":", JsonQuote(DTypeName(r.outputs.dtype())),
      ",\n\"initial_fingerprint\":",
      r.fingerprints.empty() ? "null" : JsonQuote(r.fingerprints[0].sha256),
      ",\n\"final_fingerprint\":",
      r.fingerprints.empty() ? "null" : JsonQuote(r.fingerprints.back().sha256),
      ",\n\"timings\":{\"init_seconds\":", JsonNumber(r.timings.init_seconds),
      ",\"train_seconds\":", JsonNumber(r.timings.train_seconds),
      ",\"eval_seconds\":", JsonNumber(r.timings.eval_seconds),
      ",\"wall_seconds\":", JsonNumber(wall_seconds), "}\n}\n");
}

absl::Status WriteResult(const TrainOptions& o, const PreparedRun& run,
                         const RunResult& r, double wall_seconds,
                         StagedDir* dir) {
  return WriteRunFiles(dir->path(), r, RunJson(o, run, r, wall_seconds));
}

// Progress on a terminal only: logs and pipes get the final summary alone.
class ProgressLine {
 public:
  explicit ProgressLine(std::FILE* err)
      : err_(err), enabled_(isatty(fileno(err)) == 1) {}
  ~ProgressLine() {
    if (printed_) std::fprintf(err_, "\r\033[K");
  }
  void Update(const ProgressEvent& e) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (printed_ && e.step != e.total_steps &&
        now - last_ < std::chrono::milliseconds(100)) {
      return;
    }
    last_ = now;
    printed_ = true;
    std::fprintf(err_,
                 "\r\033[Kdriftscope: epoch %d, step %lld/%lld, loss %.6g",
                 e.epoch + 1, static_cast<long long>(e.step),
                 static_cast<long long>(e.total_steps), e.loss);
    std::fflush(err_);
  }

 private:
  std::FILE* err_;
  bool enabled_;
  bool printed_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

int TrainCommand(const std::vector<std::string>& args, std::FILE* out,
                 std::FILE* err) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(CommandUsage("train"), out);
      return kExitOk;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<TrainOptions> options = ParseTrainArgs(args);
  if (!options.ok()) return ReportError(err, options.status());
  absl::StatusOr<PreparedRun> run = Prepare(*options);
  if (!run.ok()) return ReportError(err, run.status());
  // A run this machine cannot hold is refused before anything is written
  // (a worker checks its own limit).
  if (!options->worker) {
    auto rows = [](const std::optional<NdArray>& a, int64_t otherwise) {
      return a.has_value() && a->ndim() > 0 ? a->shape()[0] : otherwise;
    };
    const int64_t train_n = rows(run->options.x, run->spec.data.samples);
    const int64_t eval_n = rows(
        run->options.eval_x,
        run->options.x.has_value() ? train_n : run->spec.data.eval_samples);
    if (absl::Status s = CheckRunsFitInMemory(
            {EstimateJobMemory(run->spec, run->profile, train_n, eval_n)}, 1,
            options->max_memory_bytes);
        !s.ok()) {
      ReportError(err, s);
      return kExitUsage;
    }
  }
  // Checked before training so that a bad --out costs nothing.
  absl::StatusOr<StagedDir> dir = StagedDir::Create(options->out, "--out");
  if (!dir.ok()) return ReportError(err, dir.status());

  absl::StatusOr<RunResult> result;
  {
    ProgressLine progress(err);
    run->options.on_progress = [&progress](const ProgressEvent& e) {
      progress.Update(e);
    };
    if (options->worker) {
      absl::StatusOr<std::unique_ptr<WorkerClient>> client =
          WorkerClient::Create(*options->worker);
      if (!client.ok()) return ReportError(err, client.status());
      absl::StatusOr<WorkerDescription> desc = (*client)->Describe();
      if (!desc.ok()) return ReportError(err, desc.status());
      run->environment_json = EnvironmentToJson(desc->environment);
      result = (*client)->Run(run->spec, options->profile, run->options);
    } else {
      run->environment_json = EnvironmentToJson(ProbeEnvironment());
      result = RunJob(run->spec, run->profile, run->options);
    }
  }
  if (!result.ok()) return ReportError(err, result.status());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (absl::Status s = WriteResult(*options, *run, *result, wall, &*dir);
      !s.ok()) {
    return ReportError(err, s);
  }
  if (absl::Status s = dir->Commit(); !s.ok()) return ReportError(err, s);

  const RunResult& r = *result;
  std::fprintf(out, "trained %lld steps (%d epoch%s, batch %d) in %.3f s\n",
               static_cast<long long>(r.steps), run->spec.training.epochs,
               run->spec.training.epochs == 1 ? "" : "s",
               run->spec.training.batch_size, wall);
  std::fprintf(out, "  profile      %s\n", r.profile.c_str());
  if (r.steps > 0) {
    std::fprintf(out, "  final loss   %.9g\n", FinalLoss(r));
  }
  std::fprintf(out, "  outputs      %s %s\n", r.outputs.ShapeString().c_str(),
               DTypeName(r.outputs.dtype()));
  std::fprintf(out, "  spec digest  %s\n", r.spec_digest.c_str());
  std::fprintf(out, "  written to   %s\n", options->out.c_str());
  return kExitOk;
}

}  // namespace driftscope::cli
