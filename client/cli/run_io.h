// Run directories: the files `driftscope train --out` writes (outputs.npy,
// losses.npy, fingerprints.json, weights/, epoch_outputs/, states_*.npy) and
// reading one back as a RunRecord for the drift analysis. One thread at a
// time per directory.
#ifndef DRIFTSCOPE_CLIENT_CLI_RUN_IO_H_
#define DRIFTSCOPE_CLIENT_CLI_RUN_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/drift/analysis.h"
#include "engine/train/run_result.h"

namespace driftscope::cli {

// Writes every result file of `r` into the existing directory `dir`, then
// run.json with `run_json` (last: its presence marks a complete directory).
absl::Status WriteRunFiles(const std::string& dir, const RunResult& r,
                           const std::string& run_json);

std::string FingerprintsJson(const std::vector<Fingerprint>& fingerprints);

// Reads a run directory written by WriteRunFiles. `name` labels the record
// (an environment name); the profile, spec digest and environment come from
// run.json. NotFound / InvalidArgument naming the file otherwise.
absl::StatusOr<RunRecord> LoadRunDir(const std::string& dir,
                                     const std::string& name);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_RUN_IO_H_
