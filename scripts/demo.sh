#!/usr/bin/env bash
# The README's main command (`make demo`): driftscope as a small cluster on
# this host. A driftscope-coordinator (its store in a temporary directory)
# and four driftscope-worker daemons on loopback, each a different
# numerical environment (ref64, fp32, fp32-sse2, tf32), that register
# themselves with it (heartbeats, as in deploy/); the job is submitted once
# `driftscope workers` lists all four. The default job (LSTM(64) -> LSTM(32), T=10, Adam with clipnorm,
# MSE, 3 epochs) is submitted with 2 repeats per worker, watched, reported
# (terminal table, out/demo/report.html, report.json) and exported as .npy.
# Last, the same runs are computed in this process with `driftscope run`,
# and the two reports are compared byte for byte: the distributed path adds
# transport, scheduling and storage, not numerical differences.
#
# Everything the script starts is stopped when it ends, also on failure or
# Ctrl-C (SIGTERM, then SIGKILL after 5 s; each daemon waited for).
#
# Usage: scripts/demo.sh [BUILD_DIR]   (DEMO_OUT, DEMO_REPEATS,
# DEMO_REGISTER_WAIT (seconds, default 30) override)
set -euo pipefail

BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/client/driftscope
WORKER=$BUILD_DIR/server/driftscope-worker
COORDINATOR=$BUILD_DIR/server/driftscope-coordinator
OUT=${DEMO_OUT:-out/demo}
REPEATS=${DEMO_REPEATS:-2}
PROFILES=(ref64 fp32 fp32-sse2 tf32)

for b in "$BIN" "$WORKER" "$COORDINATOR"; do
  if [[ ! -x $b ]]; then
    echo "demo: $b is missing; build first ('make build')" >&2
    exit 2
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/driftscope-demo.XXXXXX")
PIDS=()
NAMES=()

stop_all() {
  local rc=$?
  trap - EXIT INT TERM
  local pid i
  # Newest first: the workers drain (and tell the coordinator) before the
  # coordinator goes.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    local n
    for n in "${NAMES[@]}"; do
      if [[ -s $TMP/$n.log ]]; then
        echo "--- last lines of $n's log:" >&2
        tail -n 5 "$TMP/$n.log" >&2
      fi
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND...: runs a daemon in the background and sets ADDR to
# the address of its "listening on HOST:PORT" line (it listens on port 0).
start() {
  local name=$1
  shift
  : >"$TMP/$name.out"  # exists before the first read below
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  NAMES+=("$name")
  local line
  for _ in $(seq 300); do
    if IFS= read -r line <"$TMP/$name.out" && [[ $line == "listening on "* ]]; then
      ADDR=${line#listening on }
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $name exited before listening" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "demo: $name did not listen within 30 s" >&2
  return 1
}

# The job commands, against the coordinator started below (plaintext: the
# daemons listen on loopback only).
ds() { "$BIN" "$@" --insecure; }

echo "== a coordinator and four workers, one numerical environment each (loopback)"
start coordinator "$COORDINATOR" --listen=127.0.0.1:0 --insecure \
  --worker_insecure --store_dir="$TMP/store" --grace_period=2s
COORD=$ADDR
export DRIFTSCOPE_COORDINATOR=$COORD
printf '  driftscope-coordinator  %-21s (store: a temporary directory)\n' "$COORD"
for p in "${PROFILES[@]}"; do
  start "worker-$p" "$WORKER" --listen=127.0.0.1:0 --insecure \
    --default_profile="$p" --grace_period=2s --name="worker-$p" \
    --coordinator="$COORD" --coordinator_insecure
  printf '  driftscope-worker       %-21s --default_profile=%s, registers as worker-%s\n' \
    "$ADDR" "$p" "$p"
done

# Each worker registers as it starts and then heartbeats; submit only once
# all four are there (bounded: a worker that cannot register is an error).
REGISTER_WAIT=${DEMO_REGISTER_WAIT:-30}
n=0
for _ in $(seq 0 $((REGISTER_WAIT * 10))); do
  n=$(ds workers 2>/dev/null | grep -c ' available ' || true)
  [[ $n -ge ${#PROFILES[@]} ]] && break
  sleep 0.1
done
if [[ $n -lt ${#PROFILES[@]} ]]; then
  echo "demo: only $n of ${#PROFILES[@]} workers registered with the" \
    "coordinator within ${REGISTER_WAIT} s (see the workers' logs below)" >&2
  ds workers >&2 || true
  exit 1
fi
echo
echo "\$ driftscope workers"
ds workers

echo
echo "\$ driftscope submit --repeats $REPEATS --description 'make demo'"
JOB=$(ds submit --repeats "$REPEATS" --description "make demo")
echo "$JOB"

echo
echo "\$ driftscope watch $JOB"
ds watch "$JOB"

mkdir -p "$OUT"
echo
echo "\$ driftscope report $JOB --html $OUT/report.html"
rc=0
ds report "$JOB" --html "$OUT/report.html" || rc=$?
case $rc in
  0) verdict="every environment is within the tolerance" ;;
  1) verdict="some environments drift above the tolerance (numpy's atol 1e-8, rtol 1e-5): see the table" ;;
  *) echo "demo: driftscope report failed (exit $rc)" >&2; exit "$rc" ;;
esac
ds report "$JOB" --format json >"$OUT/report.json" || [[ $? -eq 1 ]]
echo
echo "\$ driftscope export $JOB --out $OUT/runs"
ds export "$JOB" --out "$OUT/runs"

# The same environments and repeats in this process, in the report's
# environment order; the two JSON reports must be identical.
ENVS=$(grep -o '"environments":\[[^]]*\]' "$OUT/report.json" |
  sed 's/.*\[//; s/\]//; s/"//g')
echo
echo "\$ driftscope run --profiles $ENVS --repeats $REPEATS --format json  (in this process)"
"$BIN" run --profiles "$ENVS" --repeats "$REPEATS" --format json \
  >"$TMP/run.json" || [[ $? -eq 1 ]]
if cmp -s "$TMP/run.json" "$OUT/report.json"; then
  echo "the in-process report is byte for byte the coordinator's: same numbers"
else
  echo "demo: the in-process report differs from the coordinator's" >&2
  diff <(tr ',' '\n' <"$TMP/run.json") <(tr ',' '\n' <"$OUT/report.json") |
    head -n 20 >&2
  exit 1
fi

echo
echo "$verdict"
echo "report.html, report.json and the exported runs (.npy) are in $OUT/"
