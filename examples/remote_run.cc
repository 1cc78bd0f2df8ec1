// Uses the client library: runs the built-in default job on a
// driftscope-worker, trains the same job here under the profile the worker
// reports, and checks that the two results are the same bits (the
// determinism contract across the wire).
//
// Usage: remote_run HOST:PORT [PROFILE]   (plaintext; a loopback worker
// started with --insecure)
#include <cstdio>
#include <string>
#include <vector>

#include "driftscope/analyze.h"
#include "driftscope/job_spec.h"
#include "driftscope/profile.h"
#include "driftscope/train.h"
#include "driftscope/worker_client.h"

int main(int argc, char** argv) {
  using namespace driftscope;
  if (argc < 2) {
    std::fprintf(stderr, "usage: remote_run HOST:PORT [PROFILE]\n");
    return 2;
  }
  WorkerClientOptions options;
  options.address = argv[1];
  options.insecure = true;
  absl::StatusOr<std::unique_ptr<WorkerClient>> client =
      WorkerClient::Create(options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 2;
  }
  JobSpec spec = DefaultJobSpec();
  spec.training.epochs = 1;
  const std::string profile_text = argc > 2 ? argv[2] : "fp32";
  absl::StatusOr<RunResult> remote = (*client)->Run(spec, profile_text);
  if (!remote.ok()) {
    std::fprintf(stderr, "worker: %s\n", remote.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<Profile> ran = Profile::Parse(remote->profile);
  if (!ran.ok()) return 2;
  absl::StatusOr<RunResult> local = RunJob(spec, *ran);
  if (!local.ok()) {
    std::fprintf(stderr, "here: %s\n", local.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<ArrayDrift> drift =
      CompareArrays(remote->outputs, local->outputs, DriftOptions());
  if (!drift.ok()) return 2;
  std::printf("worker ran %s: %lld steps; outputs %s here: %s\n",
              remote->profile.c_str(), static_cast<long long>(remote->steps),
              remote->outputs.ShapeString().c_str(),
              drift->bitwise_identical ? "bit-identical" : "DIFFERENT");
  return drift->bitwise_identical && remote->fingerprints.back().sha256 ==
                                         local->fingerprints.back().sha256
             ? 0
             : 1;
}
