#include "engine/drift/report_io.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/core/json_text.h"

namespace driftscope {
namespace {

// %.17g round-trips every double; non-finite values have no JSON spelling.
std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.17g", v);
}

std::string Str(const std::string& s) { return JsonQuote(s); }

std::string Bool(bool b) { return b ? "true" : "false"; }

// Builds one JSON object; keys are emitted in insertion order.
class Obj {
 public:
  Obj& Raw(const char* key, const std::string& json) {
    parts_.push_back(absl::StrCat("\"", key, "\":", json));
    return *this;
  }
  Obj& N(const char* key, double v) { return Raw(key, Num(v)); }
  Obj& I(const char* key, int64_t v) { return Raw(key, absl::StrCat(v)); }
  Obj& U(const char* key, uint64_t v) { return Raw(key, absl::StrCat(v)); }
  Obj& S(const char* key, const std::string& v) { return Raw(key, Str(v)); }
  Obj& B(const char* key, bool v) { return Raw(key, Bool(v)); }
  std::string Done() const {
    return absl::StrCat("{", absl::StrJoin(parts_, ","), "}");
  }

 private:
  std::vector<std::string> parts_;
};

template <typename T, typename F>
std::string Array(const std::vector<T>& v, F f) {
  std::vector<std::string> parts;
  parts.reserve(v.size());
  for (const T& x : v) parts.push_back(f(x));
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

// The scalar metrics, one table so that STATS and CURVES cannot drift
// apart.
struct Field {
  const char* key;
  std::function<std::string(const DriftStats&)> get;
};

const std::vector<Field>& Fields() {
  static const auto* fields = new std::vector<Field>{
      {"count", [](const DriftStats& s) { return absl::StrCat(s.count); }},
      {"numeric", [](const DriftStats& s) { return absl::StrCat(s.numeric); }},
      {"differing",
       [](const DriftStats& s) { return absl::StrCat(s.differing); }},
      {"differing_fraction",
       [](const DriftStats& s) { return Num(s.differing_fraction); }},
      {"nan_mismatches",
       [](const DriftStats& s) { return absl::StrCat(s.nan_mismatches); }},
      {"inf_mismatches",
       [](const DriftStats& s) { return absl::StrCat(s.inf_mismatches); }},
      {"nonfinite_matches",
       [](const DriftStats& s) { return absl::StrCat(s.nonfinite_matches); }},
      {"max_abs", [](const DriftStats& s) { return Num(s.max_abs); }},
      {"mean_abs", [](const DriftStats& s) { return Num(s.mean_abs); }},
      {"rms", [](const DriftStats& s) { return Num(s.rms); }},
      {"max_rel", [](const DriftStats& s) { return Num(s.max_rel); }},
      {"rel_l2", [](const DriftStats& s) { return Num(s.rel_l2); }},
      {"cosine", [](const DriftStats& s) { return Num(s.cosine); }},
      {"norm_a", [](const DriftStats& s) { return Num(s.norm_a); }},
      {"norm_ref", [](const DriftStats& s) { return Num(s.norm_ref); }},
      {"norm_diff", [](const DriftStats& s) { return Num(s.norm_diff); }},
      {"max_ulp", [](const DriftStats& s) { return absl::StrCat(s.max_ulp); }},
      {"median_ulp", [](const DriftStats& s) { return Num(s.median_ulp); }},
      {"min_sig_bits", [](const DriftStats& s) { return Num(s.min_sig_bits); }},
      {"mean_sig_bits",
       [](const DriftStats& s) { return Num(s.mean_sig_bits); }},
      {"median_sig_bits",
       [](const DriftStats& s) { return Num(s.median_sig_bits); }},
      {"tolerance_violations",
       [](const DriftStats& s) {
         return absl::StrCat(s.tolerance_violations);
       }},
      {"pass", [](const DriftStats& s) { return Bool(s.pass); }},
  };
  return *fields;
}

std::string StatsJson(const DriftStats& s) {
  Obj o;
  for (const Field& f : Fields()) o.Raw(f.key, f.get(s));
  int last = kUlpBuckets;
  while (last > 1 && s.ulp_histogram[last - 1] == 0) --last;
  std::vector<int64_t> hist(s.ulp_histogram.begin(),
                            s.ulp_histogram.begin() + last);
  o.Raw("ulp_histogram",
        Array(hist, [](int64_t v) { return absl::StrCat(v); }));
  return o.Done();
}

std::string CurvesJson(const std::vector<const DriftStats*>& stats) {
  if (stats.empty()) return "null";
  Obj o;
  for (const Field& f : Fields()) {
    o.Raw(f.key, Array(stats, [&](const DriftStats* s) { return f.get(*s); }));
  }
  return o.Done();
}

std::string PairJson(const PairDrift& p) {
  std::vector<const DriftStats*> epochs;
  for (const ArrayDrift& e : p.epochs) epochs.push_back(&e.overall);
  Obj o;
  o.S("environment", p.environment)
      .I("repeat", p.repeat)
      .S("profile", p.profile)
      .B("pass", p.pass)
      .Raw("error", p.error.empty() ? "null" : Str(p.error))
      .B("spec_digest_matches", p.spec_digest_matches)
      .Raw("outputs", p.error.empty() ? ArrayDriftToJson(p.outputs) : "null")
      .Raw("epochs", CurvesJson(epochs));
  o.Raw("loss", Obj()
                    .I("steps_compared", p.loss.steps_compared)
                    .B("length_mismatch", p.loss.length_mismatch)
                    .N("max_abs", p.loss.max_abs)
                    .I("first_differing_step", p.loss.first_differing_step)
                    .Raw("abs_diff", Array(p.loss.abs_diff, Num))
                    .Done());
  o.Raw("fingerprints", Obj()
                            .S("kind", p.fingerprint_kind)
                            .I("compared", p.fingerprints_compared)
                            .I("first_divergent_step", p.first_divergent_step)
                            .Done());
  o.Raw("attribution", Obj()
                           .S("cause", p.attribution)
                           .I("step", p.first_divergent_step)
                           .S("detail", p.attribution_detail)
                           .Done());
  o.Raw("noise_floor_rel_l2",
        p.noise_floor_rel_l2 ? Num(*p.noise_floor_rel_l2) : "null");
  o.Raw("drift_to_noise", p.drift_to_noise ? Num(*p.drift_to_noise) : "null");
  return o.Done();
}

std::string CsvCell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CsvNum(double v) {
  return std::isfinite(v) ? absl::StrFormat("%.17g", v)
         : std::isnan(v)  ? "nan"
         : v > 0          ? "inf"
                          : "-inf";
}

}  // namespace

std::string ArrayDriftToJson(const ArrayDrift& d) {
  std::vector<const DriftStats*> per_t;
  for (const DriftStats& s : d.per_timestep) per_t.push_back(&s);
  return Obj()
      .S("dtype", d.dtype_a)
      .S("dtype_ref", d.dtype_ref)
      .Raw("shape", Array(d.shape, [](int64_t v) { return absl::StrCat(v); }))
      .S("ulp_unit", d.ulp_unit)
      .I("sig_bits_cap", d.sig_bits_cap)
      .N("rel_floor", d.rel_floor)
      .B("bitwise_identical", d.bitwise_identical)
      .B("pass", d.pass)
      .Raw("overall", StatsJson(d.overall))
      .Raw("per_timestep", CurvesJson(per_t))
      .Done();
}

std::string ReportToJson(const DriftReport& r) {
  Obj o;
  o.S("schema", "driftscope.drift_report/1");
  o.Raw("reference", Obj()
                         .S("environment", r.reference)
                         .S("profile", r.reference_profile)
                         .S("reason", r.reference_reason)
                         .Done());
  o.Raw("tolerance",
        Obj()
            .N("atol", r.atol)
            .N("rtol", r.rtol)
            .Raw("max_ulp", r.max_ulp ? absl::StrCat(*r.max_ulp) : "null")
            .Done());
  o.B("pass", r.pass);
  o.Raw("environments", Array(r.environments, Str));
  o.Raw("pairs", Array(r.pairs, PairJson));
  o.Raw("repeatability", Array(r.repeatability, [](const RepeatGroup& g) {
          return Obj()
              .S("environment", g.environment)
              .I("repeats", g.repeats)
              .B("bitwise_repeatable", g.bitwise_repeatable)
              .N("max_rel_l2", g.max_rel_l2)
              .N("max_abs", g.max_abs)
              .U("max_ulp", g.max_ulp)
              .Done();
        }));
  o.Raw("matrix",
        Obj()
            .Raw("rel_l2", Array(r.rel_l2_matrix,
                                 [](const std::vector<double>& row) {
                                   return Array(row, Num);
                                 }))
            .Raw("max_ulp",
                 Array(r.max_ulp_matrix,
                       [](const std::vector<uint64_t>& row) {
                         return Array(row, [](uint64_t v) {
                           return v == std::numeric_limits<uint64_t>::max()
                                      ? std::string("null")
                                      : absl::StrCat(v);
                         });
                       }))
            .Done());
  return o.Done() + "\n";
}

std::string ReportToCsv(const DriftReport& r) {
  std::string out =
      "environment,profile,repeat,pass,bitwise_identical,differing_fraction,"
      "max_abs,mean_abs,rms,max_rel,rel_l2,cosine,max_ulp,median_ulp,"
      "min_sig_bits,mean_sig_bits,median_sig_bits,nan_mismatches,"
      "inf_mismatches,tolerance_violations,first_divergent_step,attribution,"
      "loss_max_abs,loss_first_differing_step,noise_floor_rel_l2,"
      "drift_to_noise,error\n";
  for (const PairDrift& p : r.pairs) {
    std::vector<std::string> c = {CsvCell(p.environment), CsvCell(p.profile),
                                  absl::StrCat(p.repeat),
                                  p.pass ? "true" : "false"};
    if (p.error.empty()) {
      const DriftStats& s = p.outputs.overall;
      for (const std::string& v :
           {std::string(p.outputs.bitwise_identical ? "true" : "false"),
            CsvNum(s.differing_fraction), CsvNum(s.max_abs), CsvNum(s.mean_abs),
            CsvNum(s.rms), CsvNum(s.max_rel), CsvNum(s.rel_l2),
            CsvNum(s.cosine), absl::StrCat(s.max_ulp), CsvNum(s.median_ulp),
            CsvNum(s.min_sig_bits), CsvNum(s.mean_sig_bits),
            CsvNum(s.median_sig_bits), absl::StrCat(s.nan_mismatches),
            absl::StrCat(s.inf_mismatches),
            absl::StrCat(s.tolerance_violations)}) {
        c.push_back(v);
      }
    } else {
      c.insert(c.end(), 16, "");
    }
    c.push_back(absl::StrCat(p.first_divergent_step));
    c.push_back(CsvCell(p.attribution));
    c.push_back(CsvNum(p.loss.max_abs));
    c.push_back(absl::StrCat(p.loss.first_differing_step));
    c.push_back(p.noise_floor_rel_l2 ? CsvNum(*p.noise_floor_rel_l2) : "");
    c.push_back(p.drift_to_noise ? CsvNum(*p.drift_to_noise) : "");
    c.push_back(CsvCell(p.error));
    out += absl::StrJoin(c, ",") + "\n";
  }
  return out;
}

}  // namespace driftscope
