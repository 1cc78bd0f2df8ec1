// Human-readable drift reports: an aligned terminal table and one
// self-contained HTML file with inline SVG plots (no scripts, no network).
//
// Both take the DriftReport of engine/drift and the RunRecords it was
// computed from (for loss curves and environments). One file per format:
// render_text.cc (the table), render_html.cc (the page) with its plots in
// render_svg.cc, render_sweep.cc (the knob sweep's table and JSON); the
// report's JSON and CSV are engine/drift/report_io.h. Pure functions; safe
// for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_REPORT_REPORT_RENDER_H_
#define DRIFTSCOPE_ENGINE_REPORT_REPORT_RENDER_H_

#include <string>
#include <vector>

#include "engine/drift/analysis.h"

namespace driftscope {

struct KnobSweepRow;  // engine/report/profile_runs.h

struct RenderOptions {
  bool color = false;  // ANSI colours (only for a terminal)
  std::string title = "driftscope drift report";
};

// Rows of cells as aligned text columns (two spaces apart), one line per
// row; trailing spaces trimmed.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_align = {});

std::string RenderTable(const DriftReport& report,
                        const std::vector<RunRecord>& records,
                        const RenderOptions& options = {});

// Plots: drift per timestep (log scale) for each environment, drift per
// epoch, loss curves overlaid, the N×N relative-L2 heatmap, the ULP
// histograms; tables: environments, attribution and verdict.
std::string RenderHtml(const DriftReport& report,
                       const std::vector<RunRecord>& records,
                       const RenderOptions& options = {});

// The knob sweep from profile `a` to `b` (SweepKnobs, rows in its rank
// order): a titled, aligned table ("-" for a missing value), and the JSON
// object {"from","to","knobs":[{"knob","alone_profile","alone_rel_l2",
// "cumulative_rel_l2","note"}]} (null for a missing value).
std::string RenderSweepTable(const std::string& a, const std::string& b,
                             const std::vector<KnobSweepRow>& rows);
std::string RenderSweepJson(const std::string& a, const std::string& b,
                            const std::vector<KnobSweepRow>& rows);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_REPORT_REPORT_RENDER_H_
