// Helpers the report renderers share (engine/report/render_*.cc): number
// and cause formatting, HTML escaping, and the inline SVG plots of the HTML
// report. Private to engine/report. Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_ENGINE_REPORT_RENDER_INTERNAL_H_
#define DRIFTSCOPE_ENGINE_REPORT_RENDER_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/drift/analysis.h"

namespace driftscope::render_internal {

// "%.3g", with "nan", "inf", "0" spelled out.
std::string Num(double v);
// The attribution as the table prints it ("numerics from step 3").
std::string Cause(const PairDrift& p);
// HTML text with <, >, & and " escaped.
std::string Esc(const std::string& s);

struct Series {
  std::string name;
  std::vector<double> y;  // x = index (+ x0)
};

// A line plot as inline SVG. With log_y, values <= 0 are drawn on a floor
// line a decade below the smallest positive value, labelled "0". x counts
// from x0.
std::string LinePlot(const std::string& title, const std::string& xlabel,
                     const std::string& ylabel,
                     const std::vector<Series>& series, bool log_y, int x0);
// An N x N heatmap of `m` (log colour scale) labelled with `names`.
std::string Heatmap(const std::string& title,
                    const std::vector<std::string>& names,
                    const std::vector<std::vector<double>>& m);
// Grouped bars of each pair's ULP histogram.
std::string UlpBars(const std::string& title,
                    const std::vector<PairDrift>& pairs);

}  // namespace driftscope::render_internal

#endif  // DRIFTSCOPE_ENGINE_REPORT_RENDER_INTERNAL_H_
