#!/usr/bin/env bash
# The README's main job: the default job (LSTM(64)->LSTM(32), T=10, Adam with
# clipnorm, MSE, 3 epochs) under several numerical environments on this host,
# twice each, and the drift report: terminal table, report.json, report.html.
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/client/driftscope"
OUT=${DEMO_OUT:-out/demo}
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
echo "== this machine (driftscope env)"
"$BIN" env
echo
echo "== driftscope run --repeats 2 --profiles ref64,fp32,fp32-sse2,tf32,bf16"
rc=0
"$BIN" run --profiles ref64,fp32,fp32-sse2,tf32,bf16 --repeats 2 \
  --sweep ref64,tf32 --out "$OUT" --html "$OUT/report.html" || rc=$?
echo
case $rc in
  0) echo "every environment is within the tolerance" ;;
  1) echo "some environments drift above the tolerance (numpy's atol 1e-8, rtol 1e-5): see the table" ;;
  *) echo "driftscope run failed (exit $rc)"; exit "$rc" ;;
esac
echo "runs, report.json and report.html are in $OUT/"
