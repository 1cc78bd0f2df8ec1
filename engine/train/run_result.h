// RunResult: everything one run of a JobSpec returns (DESIGN §4 "Result").
#ifndef DRIFTSCOPE_ENGINE_TRAIN_RUN_RESULT_H_
#define DRIFTSCOPE_ENGINE_TRAIN_RUN_RESULT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/core/ndarray.h"

namespace driftscope {

struct Fingerprint {
  int64_t step = 0;        // 0 = initial weights, k = after the k-th update
  std::string sha256;      // of all weights in run precision, get_weights order
  std::string sha256_f32;  // of the same weights rounded to float32: equal
                           // across precisions iff the fp32 roundings agree
};

struct NamedArray {
  std::string name;  // "layer0_kernel", ...
  NdArray array;
};

struct RunTimings {
  double init_seconds = 0, train_seconds = 0, eval_seconds = 0;
};

struct RunResult {
  std::string spec_digest;  // SpecDigest(spec)
  std::string profile;      // Profile::ToString() of what actually ran
  NdArray outputs;          // eval outputs of the final model, Keras shape
  NdArray losses;           // (steps,) batch loss of each step, run dtype
  std::vector<Fingerprint> fingerprints;  // initial + one per step
  std::vector<NdArray> epoch_outputs;     // when capture_epoch_outputs
  std::vector<NamedArray> final_weights;  // Keras get_weights() order
  std::vector<NamedArray> final_states;   // last layer with return_state:
                                          // "state_h", "state_c" on eval set
  int64_t steps = 0;
  RunTimings timings;
  // A result received from a worker: each tensor's SHA-256 as checked on
  // arrival, by its wire name ("outputs", "losses", "epoch0", ...; see
  // proto/lib/tensor_stream.h), so a store need not hash it again.
  // Empty for a run made in this process.
  std::map<std::string, std::string> tensor_sha256;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_TRAIN_RUN_RESULT_H_
