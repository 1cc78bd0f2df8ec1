// Run-level drift analysis (DESIGN §7): every environment's results against
// a reference run, first divergence and its attribution, repeatability noise
// floor, the all-pairs matrix, and the verdict. Pure functions over values;
// safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ANALYSIS_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ANALYSIS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/drift/array_drift.h"

namespace driftscope {

// What one run returned, as the analysis needs it.
struct RunRecord {
  std::string name;  // environment / profile label; repeats share it
  std::string spec_digest;
  NdArray outputs;  // eval outputs, (N, T, U) or (N, U)
  NdArray losses;   // (steps,): losses[i] is the batch loss of step i + 1
  // fingerprints[k]: sha256 of the weights after step k (0 = initial).
  std::vector<std::string> fingerprints;
  std::vector<std::string> fingerprints_f32;  // same, weights as float32
  std::vector<NdArray> epoch_outputs;         // eval outputs after each epoch
  int repeat = 0;
  std::string profile;  // Profile::ToString() of what ran, e.g. "fp64,..."
  std::map<std::string, std::string> environment;
};

struct AnalysisOptions {
  std::string reference;  // environment name; empty = ref64/fp64 or first
  double atol = 1e-8;     // numpy.isclose defaults
  double rtol = 1e-5;
  std::optional<uint64_t> max_ulp;
  // Floor of the relative-error denominator; <= 0: DriftOptions' default
  // (1e-6 · max|r|).
  double rel_floor = 0;
};

// Step-by-step loss differences against the reference.
struct LossDrift {
  int64_t steps_compared = 0;  // min of the two lengths
  bool length_mismatch = false;
  double max_abs = 0;  // max |Δloss| (in double)
  // 1-based step whose loss first differs; -1 when none does.
  int64_t first_differing_step = -1;
  std::vector<double> abs_diff;  // |Δloss| per compared step
};

// One environment (its lowest repeat) against the reference.
struct PairDrift {
  std::string environment;
  int repeat = 0;
  std::string profile;
  // Set when outputs could not be compared (shape mismatch); then
  // `outputs` is empty and the pair fails.
  std::string error;
  ArrayDrift outputs;
  std::vector<ArrayDrift> epochs;  // min(#epochs of both) snapshots
  LossDrift loss;
  bool spec_digest_matches = true;
  // "sha256" when both runs have the same precision, else "sha256_f32";
  // "" when either run has no fingerprints of that kind.
  std::string fingerprint_kind;
  int64_t fingerprints_compared = 0;
  // 0 = initial weights differ, k = weights differ after step k, -1 = never
  // (within the compared steps).
  int64_t first_divergent_step = -1;
  // "none" | "configuration" | "initialisation" | "numerics" | "evaluation"
  // | "unknown"; see AnalyzeRuns.
  std::string attribution;
  std::string attribution_detail;  // one readable sentence
  // Noise floor: largest relative L2 between repeats of this environment or
  // of the reference (absent when neither has repeats).
  std::optional<double> noise_floor_rel_l2;
  // outputs rel_l2 / noise floor; +Inf when the floor is 0 and drift is not.
  std::optional<double> drift_to_noise;
  bool pass = false;
};

// Spread among the repeats of one environment (each repeat vs the lowest).
struct RepeatGroup {
  std::string environment;
  int repeats = 0;
  bool bitwise_repeatable = true;
  double max_rel_l2 = 0;
  double max_abs = 0;
  uint64_t max_ulp = 0;
};

struct DriftReport {
  std::string reference;  // environment name
  std::string reference_profile;
  std::string reference_reason;  // "named", "ref64", "fp64", "first"
  double atol = 0, rtol = 0;
  std::optional<uint64_t> max_ulp;
  // Environment names in first-appearance order; matrix rows follow it.
  std::vector<std::string> environments;
  std::vector<PairDrift> pairs;  // one per environment except the reference
  std::vector<RepeatGroup> repeatability;  // environments with >= 2 repeats
  // Symmetric: ‖a_i − a_j‖₂ / max(‖a_i‖₂, ‖a_j‖₂) and max ULP, over the
  // lowest repeat of each environment; NaN/absent where shapes differ
  // (rel_l2 = NaN, max_ulp = UINT64_MAX).
  std::vector<std::vector<double>> rel_l2_matrix;
  std::vector<std::vector<uint64_t>> max_ulp_matrix;
  bool pass = true;  // every pair passes
};

// InvalidArgument when `records` is empty or the named reference is absent.
//
// Attribution of a pair, in order: spec digests differ → "configuration";
// fingerprints differ at step 0 → "initialisation"; at step k > 0 →
// "numerics" (from step k); identical fingerprints but outputs differ →
// "evaluation"; no fingerprints to compare but outputs differ → "unknown";
// else "none".
absl::StatusOr<DriftReport> AnalyzeRuns(const std::vector<RunRecord>& records,
                                        const AnalysisOptions& options = {});

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ANALYSIS_H_
