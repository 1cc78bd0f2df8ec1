// driftscope/report.h — a DriftReport as people and programs read it.
//
// ReportToJson / ReportToCsv (the stable "driftscope.drift_report/1"
// schema), RenderTable (the terminal table) and RenderHtml (one
// self-contained file with SVG plots); EnvironmentNames is the naming rule
// every report uses.
//
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_PUBLIC_REPORT_H_
#define DRIFTSCOPE_PUBLIC_REPORT_H_

#include "engine/drift/report_io.h"
#include "engine/report/environment_names.h"
#include "engine/report/report_render.h"

#endif  // DRIFTSCOPE_PUBLIC_REPORT_H_
