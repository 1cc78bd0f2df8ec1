// Pairwise drift metrics between two arrays (DESIGN §7, spec §11.4).
//
// CompareArrays(a, ref) measures how far `a` is from the reference `ref`:
// bitwise identity, absolute / relative / ULP distances, significant bits,
// per-timestep curves for (N, T, U) sequences, and a tolerance verdict.
// Pure functions over values; safe for concurrent use.
//
// Definitions (the exact ones; README and JSON use the same words):
// - An element pair is "numeric" when both values are finite. NaN/Inf pairs
//   are counted apart and excluded from every numeric metric: a NaN in one
//   array but not the other is a NaN mismatch; otherwise, when an Inf is
//   involved and the values differ (Inf vs finite, +Inf vs -Inf) it is an
//   Inf mismatch; NaN vs NaN and equal Infs are non-finite matches.
// - Δ = a − r is computed in double. ±0 are equal (Δ = 0, ULP 0).
// - "differing" elements: numeric pairs with Δ ≠ 0, plus all mismatches.
//   bitwise_identical needs the same dtype and the same bytes (so +0 vs −0
//   is not bitwise identical but has 0 differing elements).
// - relative error: |Δ| / max(|r|, floor); floor = DriftOptions::rel_floor
//   when > 0, else 1e-6 · max|r| over finite r, and the smallest normal
//   double when that is 0. When Δ = 0 it is 0.
// - relative L2: ‖Δ‖₂ / ‖r‖₂ (0 when both are 0, +Inf when only ‖r‖₂ = 0).
// - cosine: Σar / (‖a‖₂‖r‖₂) clamped to [−1, 1]; 1 when both norms are 0,
//   0 when exactly one is.
// - ULP distance: |key(a) − key(r)| with key(f) = i ≥ 0 ? i : MIN − i over
//   the bit pattern i (spec §11.4). When both arrays are float64 the 64-bit
//   key is used (units of float64 ulps); otherwise the float64 side is first
//   rounded to float32 (round to nearest even, as numpy astype) and the unit
//   is the float32 ulp. Histogram bucket b holds distances in [2^(b−1), 2^b)
//   with bucket 0 = {0}: [0], [1], [2,3], [4,7], ...
// - median: numpy's median (mean of the two middle values for an even
//   count), exact.
// - significant bits: s = min(cap, max(0, −log2(relative error))), cap = 24
//   (53 when both arrays are float64); s = cap where Δ = 0. The mean is
//   taken from exact exponent sums plus log2 of mantissa products (error
//   < 1e-12 bits); the median is exact over the per-element values.
// - tolerance (numpy isclose / torch allclose convention, evaluated in
//   double): a numeric element violates when |Δ| > atol + rtol·|r|.
// - verdict: pass iff no NaN/Inf mismatch, no tolerance violation (when
//   check_tolerance) and max ULP ≤ max_ulp (when set).
// Every sum is a double accumulated in a fixed order. The elements of a set
// (the array, or one timestep t: rows i = 0..N-1 in index order) are cut
// into blocks of 256 consecutive elements; lane j of 8 sums the block's
// elements j, j+8, ...; the lanes are added as ((l0+l1)+(l2+l3))+((l4+l5)+
// (l6+l7)) and the blocks into the set's sum in order. With per-timestep
// curves the whole array's sums are the timesteps' sums added in order of t.
// So results are bit-for-bit the same on any machine, ISA and kernel
// (whatever the thread count or memory alignment), and a timestep's curve
// equals the comparison of that timestep's slice on its own (same floor).
#ifndef DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_H_
#define DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"

namespace driftscope {

struct DriftOptions {
  // numpy.isclose defaults.
  double atol = 1e-8;
  double rtol = 1e-5;
  bool check_tolerance = true;
  // When set, the verdict also requires max ULP distance <= max_ulp.
  std::optional<uint64_t> max_ulp;
  // Floor of the relative-error denominator; <= 0 means 1e-6 * max|r|.
  double rel_floor = 0;
  // Compute per-timestep curves when both arrays have rank 3 (N, T, U).
  bool per_timestep = true;
};

// Number of ULP histogram buckets: {0}, {1}, [2,3], ..., [2^63, 2^64).
inline constexpr int kUlpBuckets = 65;

// The scalar metrics over one set of elements (whole array or one t).
struct DriftStats {
  int64_t count = 0;           // elements in the set
  int64_t numeric = 0;         // pairs where both are finite
  int64_t differing = 0;       // numeric with Δ != 0, plus mismatches
  int64_t nan_mismatches = 0;  // NaN in exactly one
  int64_t inf_mismatches = 0;  // Inf involved, values differ, no NaN
  int64_t nonfinite_matches = 0;
  double differing_fraction = 0;  // differing / count (0 for empty)
  double max_abs = 0;             // over numeric pairs
  double mean_abs = 0;
  double rms = 0;  // sqrt(mean Δ²)
  double max_rel = 0;
  double rel_l2 = 0;
  double cosine = 1;
  double norm_a = 0;     // ‖a‖₂ over numeric pairs
  double norm_ref = 0;   // ‖r‖₂
  double norm_diff = 0;  // ‖Δ‖₂
  uint64_t max_ulp = 0;
  double median_ulp = 0;
  std::array<int64_t, kUlpBuckets> ulp_histogram{};
  double min_sig_bits = 0;
  double mean_sig_bits = 0;
  double median_sig_bits = 0;
  int64_t tolerance_violations = 0;
  bool pass = true;
};

struct ArrayDrift {
  std::string dtype_a, dtype_ref;  // "float32" / "float64"
  std::vector<int64_t> shape;
  std::string ulp_unit;  // "float32" or "float64"
  int sig_bits_cap = 24;
  double rel_floor = 0;  // the floor actually used
  bool bitwise_identical = false;
  DriftStats overall;
  // One entry per t when the arrays are (N, T, U) and per_timestep is set.
  std::vector<DriftStats> per_timestep;
  bool pass = true;  // == overall.pass
};

// InvalidArgument when the shapes differ.
absl::StatusOr<ArrayDrift> CompareArrays(const NdArray& a, const NdArray& ref,
                                         const DriftOptions& options = {});

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_ARRAY_DRIFT_H_
