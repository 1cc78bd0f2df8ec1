#include "proto/lib/report_convert.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace driftscope {

namespace {

int64_t ClampUlp(uint64_t ulp) {
  return ulp > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(ulp);
}

v1::Attribution AttributionToProto(const std::string& cause) {
  if (cause == "none") return v1::IDENTICAL;
  if (cause == "configuration") return v1::CONFIGURATION;
  if (cause == "initialisation") return v1::INITIALIZATION;
  if (cause == "numerics") return v1::NUMERICS;
  if (cause == "evaluation") return v1::EVALUATION;
  if (cause == "unknown") return v1::UNKNOWN;
  return v1::ATTRIBUTION_UNSPECIFIED;
}

// Index of the record AnalyzeRuns uses for `environment`: its lowest
// repeat, the first one on a tie.
int Representative(const std::vector<RunRecord>& records,
                   const std::string& environment) {
  int best = -1;
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].name != environment) continue;
    if (best < 0 ||
        records[i].repeat < records[static_cast<size_t>(best)].repeat) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

}  // namespace

v1::DriftMetrics MetricsToProto(const DriftStats& s, bool bitwise_identical) {
  v1::DriftMetrics m;
  m.set_bitwise_identical(bitwise_identical);
  m.set_elements(s.count);
  m.set_differing_elements(s.differing);
  m.set_max_abs(s.max_abs);
  m.set_mean_abs(s.mean_abs);
  m.set_rms(s.rms);
  m.set_max_rel(s.max_rel);
  m.set_rel_l2(s.rel_l2);
  m.set_cosine(s.cosine);
  m.set_max_ulp(ClampUlp(s.max_ulp));
  m.set_median_ulp(s.median_ulp);
  int last = kUlpBuckets - 1;
  while (last > 0 && s.ulp_histogram[static_cast<size_t>(last)] == 0) --last;
  for (int b = 0; b <= last; ++b) {
    m.add_ulp_histogram(s.ulp_histogram[static_cast<size_t>(b)]);
  }
  m.set_nan_inf_mismatches(s.nan_mismatches + s.inf_mismatches);
  m.set_min_significant_bits(s.min_sig_bits);
  m.set_mean_significant_bits(s.mean_sig_bits);
  m.set_median_significant_bits(s.median_sig_bits);
  m.set_tolerance_violations(s.tolerance_violations);
  m.set_pass(s.pass);
  return m;
}

v1::DriftReport ReportToProto(const DriftReport& report,
                              const std::vector<RunRecord>& records,
                              const ReportContext& context) {
  v1::DriftReport out;
  out.set_job_id(context.job_id);
  auto run_of = [&](const std::string& environment) -> std::string {
    const int i = Representative(records, environment);
    return i < 0 || static_cast<size_t>(i) >= context.run_ids.size()
               ? std::string()
               : context.run_ids[static_cast<size_t>(i)];
  };
  const std::string reference_run = run_of(report.reference);
  out.set_reference_run_id(reference_run);
  out.set_reference_environment(report.reference);
  out.set_reference_profile(report.reference_profile);
  out.set_reference_reason(context.reference_reason.empty()
                               ? report.reference_reason
                               : context.reference_reason);

  v1::Tolerance* tol = out.mutable_tolerance();
  if (context.tolerance.has_value()) *tol = *context.tolerance;
  tol->set_atol(report.atol);
  tol->set_rtol(report.rtol);
  if (report.max_ulp.has_value()) {
    tol->set_max_ulp(ClampUlp(*report.max_ulp));
  }

  const int ref_index = Representative(records, report.reference);
  for (const PairDrift& p : report.pairs) {
    v1::PairReport* pr = out.add_pairs();
    pr->set_run_id(run_of(p.environment));
    pr->set_reference_run_id(reference_run);
    pr->set_environment(p.environment);
    pr->set_profile(p.profile);
    if (p.error.empty()) {
      *pr->mutable_outputs() =
          MetricsToProto(p.outputs.overall, p.outputs.bitwise_identical);
      const bool same_dtype = p.outputs.dtype_a == p.outputs.dtype_ref;
      for (const DriftStats& t : p.outputs.per_timestep) {
        *pr->add_per_timestep() =
            MetricsToProto(t, same_dtype && t.differing == 0);
      }
    } else {
      pr->set_error(p.error);
    }
    for (const ArrayDrift& e : p.epochs) {
      *pr->add_per_epoch() = MetricsToProto(e.overall, e.bitwise_identical);
    }
    const int a_index = Representative(records, p.environment);
    if (a_index >= 0 && ref_index >= 0) {
      const NdArray& la = records[static_cast<size_t>(a_index)].losses;
      const NdArray& lr = records[static_cast<size_t>(ref_index)].losses;
      const int64_t n = std::min(la.size(), lr.size());
      for (int64_t i = 0; i < n; ++i) {
        const double x = la.at(i), y = lr.at(i);
        pr->add_loss_diff(std::isnan(x) && std::isnan(y) ? 0.0 : x - y);
      }
    }
    pr->set_first_divergent_step(p.first_divergent_step);
    pr->set_attribution(AttributionToProto(p.attribution));
    pr->set_attribution_detail(p.attribution_detail);
    pr->set_pass(p.pass);
    const bool finite_ratio =
        p.drift_to_noise.has_value() && std::isfinite(*p.drift_to_noise);
    pr->set_drift_over_noise(finite_ratio ? *p.drift_to_noise : 0.0);
    pr->set_spec_digest_matches(p.spec_digest_matches);
    pr->set_fingerprint_kind(p.fingerprint_kind);
    pr->set_fingerprints_compared(p.fingerprints_compared);
    pr->set_first_differing_loss_step(p.loss.first_differing_step);
    if (p.noise_floor_rel_l2.has_value()) {
      pr->set_noise_floor_rel_l2(*p.noise_floor_rel_l2);
    }
  }

  for (const RepeatGroup& g : report.repeatability) {
    v1::DriftMetrics& m = (*out.mutable_repeatability())[g.environment];
    m.set_bitwise_identical(g.bitwise_repeatable);
    m.set_max_abs(g.max_abs);
    m.set_rel_l2(g.max_rel_l2);
    m.set_max_ulp(ClampUlp(g.max_ulp));
  }

  for (const std::string& e : report.environments) {
    out.add_environments(e);
    out.add_run_ids(run_of(e));
  }
  for (const auto& row : report.rel_l2_matrix) {
    for (double v : row) out.add_rel_l2_matrix(v);
  }
  for (const auto& row : report.max_ulp_matrix) {
    for (uint64_t v : row) {
      out.add_max_ulp_matrix(
          v == std::numeric_limits<uint64_t>::max() ? -1 : ClampUlp(v));
    }
  }
  out.set_pass(report.pass);
  return out;
}

}  // namespace driftscope
