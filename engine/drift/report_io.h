// DriftReport / ArrayDrift as JSON and CSV. Pure functions; safe for
// concurrent use.
//
// JSON schema "driftscope.drift_report/1" (keys are stable; new keys may be
// added, none renamed). Numbers that are NaN or ±Inf are written as null
// (e.g. rel_l2 when the reference norm is 0 but the difference is not, or
// a matrix cell whose shapes differ). ULP counts are JSON integers and may
// exceed 2^53 for float64 arrays.
//
// {
//   "schema": "driftscope.drift_report/1",
//   "reference": {"environment": str, "profile": str,
//                 "reason": "named" | "ref64" | "fp64" | "first"},
//   "tolerance": {"atol": num, "rtol": num, "max_ulp": int | null},
//   "pass": bool,                      // every pair passes
//   "environments": [str],             // matrix row/column order
//   "pairs": [{                        // each environment vs the reference
//     "environment": str, "repeat": int, "profile": str,
//     "pass": bool, "error": str | null,   // error: outputs not comparable
//     "spec_digest_matches": bool,
//     "outputs": ARRAY_DRIFT | null,
//     "epochs": CURVES | null,         // per-epoch snapshot metrics
//     "loss": {"steps_compared": int, "length_mismatch": bool,
//              "max_abs": num, "first_differing_step": int (1-based, -1 =
//              none), "abs_diff": [num]},
//     "fingerprints": {"kind": "sha256" | "sha256_f32" | "",
//                      "compared": int,
//                      "first_divergent_step": int},  // 0 = init, -1 = never
//     "attribution": {"cause": "none" | "configuration" | "initialisation" |
//                              "numerics" | "evaluation" | "unknown",
//                     "step": int,     // first_divergent_step
//                     "detail": str},
//     "noise_floor_rel_l2": num | null,  // null: no repeats on either side
//     "drift_to_noise": num | null
//   }],
//   "repeatability": [{"environment": str, "repeats": int,
//                      "bitwise_repeatable": bool, "max_rel_l2": num,
//                      "max_abs": num, "max_ulp": int}],
//   "matrix": {"rel_l2": [[num | null]], "max_ulp": [[int | null]]}
// }
//
// ARRAY_DRIFT = {"dtype": str, "dtype_ref": str, "shape": [int],
//   "ulp_unit": "float32" | "float64", "sig_bits_cap": int,
//   "rel_floor": num, "bitwise_identical": bool, "pass": bool,
//   "overall": STATS, "per_timestep": CURVES | null}
// STATS = {"count", "numeric", "differing", "differing_fraction",
//   "nan_mismatches", "inf_mismatches", "nonfinite_matches", "max_abs",
//   "mean_abs", "rms", "max_rel", "rel_l2", "cosine", "norm_a", "norm_ref",
//   "norm_diff", "max_ulp", "median_ulp",
//   "ulp_histogram": [int] (bucket b = [2^(b-1), 2^b), bucket 0 = {0};
//                           trailing empty buckets dropped),
//   "min_sig_bits", "mean_sig_bits", "median_sig_bits",
//   "tolerance_violations", "pass"}   (definitions: array_drift.h)
// CURVES = {key: [value per t or per epoch]} for every STATS key except
//   ulp_histogram.
#ifndef DRIFTSCOPE_ENGINE_DRIFT_REPORT_IO_H_
#define DRIFTSCOPE_ENGINE_DRIFT_REPORT_IO_H_

#include <string>

#include "engine/drift/analysis.h"
#include "engine/drift/array_drift.h"

namespace driftscope {

std::string ArrayDriftToJson(const ArrayDrift& drift);
std::string ReportToJson(const DriftReport& report);

// One header line, then one row per pair (environment vs reference):
// environment,profile,repeat,pass,bitwise_identical,differing_fraction,
// max_abs,mean_abs,rms,max_rel,rel_l2,cosine,max_ulp,median_ulp,
// min_sig_bits,mean_sig_bits,median_sig_bits,nan_mismatches,inf_mismatches,
// tolerance_violations,first_divergent_step,attribution,loss_max_abs,
// loss_first_differing_step,noise_floor_rel_l2,drift_to_noise,error
// Empty cells for values that do not exist; RFC 4180 quoting.
std::string ReportToCsv(const DriftReport& report);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DRIFT_REPORT_IO_H_
