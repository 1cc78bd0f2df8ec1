#include "client/cli/run_io.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli_util.h"
#include "engine/env/environment.h"
#include "engine/io/npy.h"

namespace driftscope::cli {

namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The string values of every "key":"value" pair with this key, in order.
// Enough for the flat JSON files this tool writes itself.
std::vector<std::string> StringValues(const std::string& json,
                                      const std::string& key) {
  std::vector<std::string> out;
  const std::string pat = absl::StrCat("\"", key, "\":\"");
  for (size_t pos = json.find(pat); pos != std::string::npos;
       pos = json.find(pat, pos + 1)) {
    const size_t start = pos + pat.size();
    const size_t end = json.find('"', start);
    if (end == std::string::npos) break;
    out.push_back(json.substr(start, end - start));
  }
  return out;
}

std::string FirstString(const std::string& json, const std::string& key) {
  std::vector<std::string> v = StringValues(json, key);
  return v.empty() ? "" : v[0];
}

}  // namespace

std::string FingerprintsJson(const std::vector<Fingerprint>& fingerprints) {
  std::vector<std::string> rows;
  rows.reserve(fingerprints.size());
  for (const Fingerprint& f : fingerprints) {
    rows.push_back(
        absl::StrCat("{\"step\":", f.step, ",\"sha256\":", JsonQuote(f.sha256),
                     ",\"sha256_f32\":", JsonQuote(f.sha256_f32), "}"));
  }
  return absl::StrCat("[\n", absl::StrJoin(rows, ",\n"), "\n]\n");
}

absl::Status WriteRunFiles(const std::string& d, const RunResult& r,
                           const std::string& run_json) {
  if (absl::Status s = WriteNpy(d + "/outputs.npy", r.outputs); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteNpy(d + "/losses.npy", r.losses); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteTextFile(d + "/fingerprints.json",
                                     FingerprintsJson(r.fingerprints));
      !s.ok()) {
    return s;
  }
  auto mkdir = [&](const std::string& sub) -> absl::Status {
    const std::string p = d + "/" + sub;
    if (IsDirectory(p)) return absl::OkStatus();
    if (::mkdir(p.c_str(), 0755) != 0) {
      return absl::InternalError(absl::StrCat(p, ": cannot create directory"));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = mkdir("weights"); !s.ok()) return s;
  for (const NamedArray& w : r.final_weights) {
    if (absl::Status s = WriteNpy(d + "/weights/" + w.name + ".npy", w.array);
        !s.ok()) {
      return s;
    }
  }
  if (!r.epoch_outputs.empty()) {
    if (absl::Status s = mkdir("epoch_outputs"); !s.ok()) return s;
    for (size_t k = 0; k < r.epoch_outputs.size(); ++k) {
      if (absl::Status s =
              WriteNpy(absl::StrCat(d, "/epoch_outputs/epoch", k, ".npy"),
                       r.epoch_outputs[k]);
          !s.ok()) {
        return s;
      }
    }
  }
  for (const NamedArray& state : r.final_states) {
    // "state_h" -> states_h.npy
    std::string name = state.name;
    if (name.rfind("state_", 0) == 0) name = "states_" + name.substr(6);
    if (absl::Status s = WriteNpy(d + "/" + name + ".npy", state.array);
        !s.ok()) {
      return s;
    }
  }
  return WriteTextFile(d + "/run.json", run_json);
}

absl::StatusOr<RunRecord> LoadRunDir(const std::string& dir,
                                     const std::string& name) {
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no such directory"));
  }
  RunRecord rec;
  rec.name = name;
  absl::StatusOr<NdArray> outputs = ReadNpy(dir + "/outputs.npy");
  if (!outputs.ok()) return outputs.status();
  rec.outputs = *std::move(outputs);
  if (PathExists(dir + "/losses.npy")) {
    absl::StatusOr<NdArray> losses = ReadNpy(dir + "/losses.npy");
    if (!losses.ok()) return losses.status();
    rec.losses = *std::move(losses);
  }
  if (PathExists(dir + "/fingerprints.json")) {
    absl::StatusOr<std::string> fp = ReadText(dir + "/fingerprints.json");
    if (!fp.ok()) return fp.status();
    rec.fingerprints = StringValues(*fp, "sha256");
    rec.fingerprints_f32 = StringValues(*fp, "sha256_f32");
  }
  for (int k = 0;; ++k) {
    const std::string p = absl::StrCat(dir, "/epoch_outputs/epoch", k, ".npy");
    if (!PathExists(p)) break;
    absl::StatusOr<NdArray> e = ReadNpy(p);
    if (!e.ok()) return e.status();
    rec.epoch_outputs.push_back(*std::move(e));
  }
  if (PathExists(dir + "/run.json")) {
    absl::StatusOr<std::string> run = ReadText(dir + "/run.json");
    if (!run.ok()) return run.status();
    rec.spec_digest = FirstString(*run, "spec_digest");
    rec.profile = FirstString(*run, "profile");
    for (const char* key : {"hostname", "cpu_model", "compiler",
                            "compile_flags", "blas", "engine_version", "os"}) {
      std::string v = FirstString(*run, key);
      if (!v.empty()) rec.environment[key] = v;
    }
  }
  return rec;
}

}  // namespace driftscope::cli
