// driftscope/analyze.h — the drift analysis.
//
// AnalyzeRuns(records, options) -> DriftReport: every environment against a
// reference (bitwise, ULP and relative errors, significant bits, curves per
// timestep and per epoch, first divergent step, attribution, verdict),
// repeatability, and the N×N matrix. RecordFromResult turns an in-process
// RunResult into a RunRecord; CompareArrays compares two arrays alone.
// The metrics are defined in docs/numerics.md.
//
// Pure functions; safe for concurrent use.
#ifndef DRIFTSCOPE_PUBLIC_ANALYZE_H_
#define DRIFTSCOPE_PUBLIC_ANALYZE_H_

#include "engine/drift/analysis.h"
#include "engine/drift/array_drift.h"
#include "engine/report/profile_runs.h"

#endif  // DRIFTSCOPE_PUBLIC_ANALYZE_H_
