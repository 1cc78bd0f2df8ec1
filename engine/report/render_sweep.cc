// The knob sweep's rendering (report_render.h): the ranked table that
// `driftscope run --sweep` prints after the drift report, and the object
// its JSON report carries under "sweep".
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/core/json_text.h"
#include "engine/report/profile_runs.h"
#include "engine/report/report_render.h"

namespace driftscope {

std::string RenderSweepTable(const std::string& a, const std::string& b,
                             const std::vector<KnobSweepRow>& rows) {
  std::string out = absl::StrCat("\nsweep ", a, " -> ", b,
                                 ": knobs ranked by the drift each causes "
                                 "alone (relative L2 vs ",
                                 a, ")\n");
  std::vector<std::vector<std::string>> t = {
      {"rank", "knob", "alone", "cumulative", "note"}};
  auto num = [](const std::optional<double>& v) {
    return v ? absl::StrFormat("%.3g", *v) : std::string("-");
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    t.push_back({absl::StrCat(i + 1), rows[i].knob, num(rows[i].alone_rel_l2),
                 num(rows[i].chain_rel_l2), rows[i].note});
  }
  return out + FormatTable(t);
}

std::string RenderSweepJson(const std::string& a, const std::string& b,
                            const std::vector<KnobSweepRow>& rows) {
  std::vector<std::string> items;
  for (const KnobSweepRow& r : rows) {
    items.push_back(absl::StrCat(
        "{\"knob\":", JsonQuote(r.knob),
        ",\"alone_profile\":", JsonQuote(r.alone_profile), ",\"alone_rel_l2\":",
        r.alone_rel_l2 ? JsonNumber(*r.alone_rel_l2) : "null",
        ",\"cumulative_rel_l2\":",
        r.chain_rel_l2 ? JsonNumber(*r.chain_rel_l2) : "null",
        ",\"note\":", JsonQuote(r.note), "}"));
  }
  return absl::StrCat("{\"from\":", JsonQuote(a), ",\"to\":", JsonQuote(b),
                      ",\"knobs\":[", absl::StrJoin(items, ","), "]}");
}

}  // namespace driftscope
