#include "engine/drift/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/numerics/profile.h"

namespace driftscope {
namespace {

// A run is float64 when its profile says so; a profile we cannot parse
// (an older worker, a hand-made record) falls back to the outputs' dtype.
bool IsFp64(const RunRecord& r) {
  if (r.profile == "ref64" || absl::StartsWith(r.profile, "ref64,")) {
    return true;
  }
  absl::StatusOr<Profile> p = Profile::Parse(r.profile);
  if (p.ok()) return p->precision == Precision::kFp64;
  return r.outputs.dtype() == DType::kFloat64;
}

DriftOptions ToDriftOptions(const AnalysisOptions& o) {
  DriftOptions d;
  d.atol = o.atol;
  d.rtol = o.rtol;
  d.max_ulp = o.max_ulp;
  d.rel_floor = o.rel_floor;
  return d;
}

LossDrift CompareLosses(const NdArray& a, const NdArray& r) {
  LossDrift l;
  l.steps_compared = std::min(a.size(), r.size());
  l.length_mismatch = a.size() != r.size();
  l.abs_diff.resize(static_cast<size_t>(l.steps_compared));
  for (int64_t i = 0; i < l.steps_compared; ++i) {
    const double x = a.at(i), y = r.at(i);
    // NaN == NaN here: the same NaN loss is not a difference.
    const bool same = x == y || (std::isnan(x) && std::isnan(y));
    const double d = same ? 0.0 : std::fabs(x - y);
    l.abs_diff[static_cast<size_t>(i)] = d;
    if (!same && l.first_differing_step < 0) l.first_differing_step = i + 1;
    if (!(d <= l.max_abs)) l.max_abs = d;  // keeps NaN / Inf visible
  }
  return l;
}

void CompareFingerprints(const RunRecord& a, const RunRecord& r, PairDrift* p) {
  const bool same_precision = IsFp64(a) == IsFp64(r);
  const auto& fa = same_precision ? a.fingerprints : a.fingerprints_f32;
  const auto& fr = same_precision ? r.fingerprints : r.fingerprints_f32;
  if (fa.empty() || fr.empty()) return;
  p->fingerprint_kind = same_precision ? "sha256" : "sha256_f32";
  const size_t n = std::min(fa.size(), fr.size());
  p->fingerprints_compared = static_cast<int64_t>(n);
  for (size_t k = 0; k < n; ++k) {
    if (fa[k] != fr[k]) {
      p->first_divergent_step = static_cast<int64_t>(k);
      return;
    }
  }
}

void Attribute(PairDrift* p) {
  const bool outputs_differ =
      !p->error.empty() || p->outputs.overall.differing > 0;
  if (!p->spec_digest_matches) {
    p->attribution = "configuration";
    p->attribution_detail =
        "the job specs differ (spec digest): the runs do not claim to "
        "compute the same thing";
  } else if (p->first_divergent_step == 0) {
    p->attribution = "initialisation";
    p->attribution_detail =
        "initial weights differ (step 0 fingerprint): seeding or "
        "initialisation";
  } else if (p->first_divergent_step > 0) {
    p->attribution = "numerics";
    p->attribution_detail =
        absl::StrCat("identical initial weights; numerics from step ",
                     p->first_divergent_step);
  } else if (p->fingerprint_kind.empty()) {
    p->attribution = outputs_differ ? "unknown" : "none";
    p->attribution_detail =
        outputs_differ ? "outputs differ; no fingerprints to locate the cause"
                       : "outputs identical; no fingerprints compared";
  } else if (outputs_differ) {
    p->attribution = "evaluation";
    p->attribution_detail = absl::StrCat(
        "weights identical over ", p->fingerprints_compared,
        " fingerprints; outputs differ in the evaluation forward pass");
  } else {
    p->attribution = "none";
    p->attribution_detail = "identical weights and outputs";
  }
}

struct Spread {
  double rel_l2 = 0, max_abs = 0;
  uint64_t max_ulp = 0;
  bool identical = true;
};

}  // namespace

absl::StatusOr<DriftReport> AnalyzeRuns(const std::vector<RunRecord>& records,
                                        const AnalysisOptions& options) {
  if (records.empty()) {
    return absl::InvalidArgumentError("AnalyzeRuns: no run records");
  }
  DriftReport report;
  report.atol = options.atol;
  report.rtol = options.rtol;
  report.max_ulp = options.max_ulp;
  const DriftOptions dopt = ToDriftOptions(options);

  // Environments in first-appearance order; each one's lowest repeat is its
  // representative.
  std::vector<std::vector<size_t>> members;
  for (size_t i = 0; i < records.size(); ++i) {
    auto it = std::find(report.environments.begin(), report.environments.end(),
                        records[i].name);
    if (it == report.environments.end()) {
      report.environments.push_back(records[i].name);
      members.push_back({i});
    } else {
      members[static_cast<size_t>(it - report.environments.begin())].push_back(
          i);
    }
  }
  for (auto& m : members) {
    std::stable_sort(m.begin(), m.end(), [&](size_t x, size_t y) {
      return records[x].repeat < records[y].repeat;
    });
  }
  const size_t n_env = report.environments.size();
  auto rep = [&](size_t e) -> const RunRecord& {
    return records[members[e][0]];
  };

  // Reference.
  size_t ref = n_env;
  if (!options.reference.empty()) {
    for (size_t e = 0; e < n_env; ++e) {
      if (report.environments[e] == options.reference) ref = e;
    }
    if (ref == n_env) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference environment '", options.reference,
                       "' is not among the runs; names: ",
                       absl::StrJoin(report.environments, ", ")));
    }
    report.reference_reason = "named";
  } else {
    for (size_t e = 0; e < n_env && ref == n_env; ++e) {
      const std::string& p = rep(e).profile;
      if (p == "ref64" || absl::StartsWith(p, "ref64,")) {
        ref = e;
        report.reference_reason = "ref64";
      }
    }
    for (size_t e = 0; e < n_env && ref == n_env; ++e) {
      if (IsFp64(rep(e))) {
        ref = e;
        report.reference_reason = "fp64";
      }
    }
    if (ref == n_env) {
      ref = 0;
      report.reference_reason = "first";
    }
  }
  report.reference = report.environments[ref];
  report.reference_profile = rep(ref).profile;

  // Repeatability: every repeat against the lowest one.
  std::vector<std::optional<Spread>> spread(n_env);
  for (size_t e = 0; e < n_env; ++e) {
    if (members[e].size() < 2) continue;
    Spread s;
    RepeatGroup g;
    g.environment = report.environments[e];
    g.repeats = static_cast<int>(members[e].size());
    for (size_t k = 1; k < members[e].size(); ++k) {
      absl::StatusOr<ArrayDrift> d =
          CompareArrays(records[members[e][k]].outputs, rep(e).outputs, dopt);
      if (!d.ok()) {
        s.rel_l2 = s.max_abs = std::numeric_limits<double>::infinity();
        s.max_ulp = std::numeric_limits<uint64_t>::max();
        s.identical = false;
        continue;
      }
      s.identical = s.identical && d->bitwise_identical;
      s.rel_l2 = std::max(s.rel_l2, d->overall.rel_l2);
      s.max_abs = std::max(s.max_abs, d->overall.max_abs);
      s.max_ulp = std::max(s.max_ulp, d->overall.max_ulp);
    }
    g.bitwise_repeatable = s.identical;
    g.max_rel_l2 = s.rel_l2;
    g.max_abs = s.max_abs;
    g.max_ulp = s.max_ulp;
    spread[e] = s;
    report.repeatability.push_back(g);
  }

  // Each environment against the reference.
  const RunRecord& r = rep(ref);
  for (size_t e = 0; e < n_env; ++e) {
    if (e == ref) continue;
    const RunRecord& a = rep(e);
    PairDrift p;
    p.environment = report.environments[e];
    p.repeat = a.repeat;
    p.profile = a.profile;
    p.spec_digest_matches = a.spec_digest == r.spec_digest;
    absl::StatusOr<ArrayDrift> d = CompareArrays(a.outputs, r.outputs, dopt);
    if (d.ok()) {
      p.outputs = *std::move(d);
    } else {
      p.error = std::string(d.status().message());
    }
    const size_t epochs =
        std::min(a.epoch_outputs.size(), r.epoch_outputs.size());
    for (size_t k = 0; k < epochs; ++k) {
      absl::StatusOr<ArrayDrift> de =
          CompareArrays(a.epoch_outputs[k], r.epoch_outputs[k], dopt);
      if (!de.ok()) break;
      p.epochs.push_back(*std::move(de));
    }
    p.loss = CompareLosses(a.losses, r.losses);
    CompareFingerprints(a, r, &p);
    Attribute(&p);
    if (spread[e].has_value() || spread[ref].has_value()) {
      double floor = 0;
      if (spread[e]) floor = std::max(floor, spread[e]->rel_l2);
      if (spread[ref]) floor = std::max(floor, spread[ref]->rel_l2);
      p.noise_floor_rel_l2 = floor;
      if (p.error.empty()) {
        const double drift = p.outputs.overall.rel_l2;
        p.drift_to_noise = floor > 0   ? drift / floor
                           : drift > 0 ? std::numeric_limits<double>::infinity()
                                       : 0.0;
      }
    }
    p.pass = p.error.empty() && p.outputs.pass;
    report.pass = report.pass && p.pass;
    report.pairs.push_back(std::move(p));
  }

  // All pairs, symmetric by construction: one comparison per unordered pair.
  report.rel_l2_matrix.assign(n_env, std::vector<double>(n_env, 0.0));
  report.max_ulp_matrix.assign(n_env, std::vector<uint64_t>(n_env, 0));
  DriftOptions mopt = dopt;
  mopt.per_timestep = false;
  for (size_t i = 0; i < n_env; ++i) {
    for (size_t j = 0; j < i; ++j) {
      absl::StatusOr<ArrayDrift> d =
          CompareArrays(rep(i).outputs, rep(j).outputs, mopt);
      double rel = std::numeric_limits<double>::quiet_NaN();
      uint64_t ulp = std::numeric_limits<uint64_t>::max();
      if (d.ok()) {
        const DriftStats& s = d->overall;
        const double denom = std::max(s.norm_a, s.norm_ref);
        rel = denom > 0         ? s.norm_diff / denom
              : s.norm_diff > 0 ? std::numeric_limits<double>::infinity()
                                : 0.0;
        ulp = s.max_ulp;
      }
      report.rel_l2_matrix[i][j] = report.rel_l2_matrix[j][i] = rel;
      report.max_ulp_matrix[i][j] = report.max_ulp_matrix[j][i] = ulp;
    }
  }
  return report;
}

}  // namespace driftscope
