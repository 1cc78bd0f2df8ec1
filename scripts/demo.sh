#!/usr/bin/env bash
# The README's main job: run the default job (LSTM(64)->LSTM(32), T=10,
# Adam+clipnorm, MSE, 3 epochs) in several numerical environments on this
# host and print how far the results drift apart.
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/client/driftscope"
OUT=${DEMO_OUT:-out/demo}
rm -rf "$OUT"
mkdir -p "$OUT"
echo "== environment"
"$BIN" env
if "$BIN" help run >/dev/null 2>&1; then
  echo "== driftscope run (default job under several profiles)"
  "$BIN" run --out "$OUT/run" --html "$OUT/report.html" || rc=$?
  echo "report: $OUT/report.html"
  exit "${rc:-0}"
fi
for p in ref64 fp32; do
  echo "== driftscope train --profile $p"
  "$BIN" train --profile "$p" --out "$OUT/$p"
done
echo "== driftscope compare ref64 fp32"
"$BIN" compare "$OUT/ref64" "$OUT/fp32"
