#!/usr/bin/env bash
# Installs this build into a scratch prefix, builds examples/ against it the
# way another project would (find_package(driftscope)), and runs the
# programs: embed_engine alone, remote_run against a driftscope-worker
# started from the installed binaries (loopback, plaintext).
#
# Usage: run_examples.sh BUILD_DIR SOURCE_DIR CXX_COMPILER [LAUNCHER]
set -euo pipefail
BUILD=$1 SRC=$2 CXX=$3 LAUNCHER=${4:-}
WORK=$BUILD/examples-check
rm -rf "$WORK"
mkdir -p "$WORK"
PREFIX=$WORK/install

cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log"
test -f "$PREFIX/include/driftscope/train.h"
cmake -S "$SRC/examples" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_CXX_COMPILER="$CXX" \
  ${LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$LAUNCHER} >"$WORK/configure.log"
cmake --build "$WORK/build" >"$WORK/build.log"

echo "== embed_engine"
"$WORK/build/embed_engine"

if [[ ! -x $WORK/build/remote_run ]]; then
  echo "remote_run not built (engine-only install)"
  exit 0
fi
echo "== remote_run"
WORKER_OUT=$WORK/worker.out
"$PREFIX/bin/driftscope-worker" --listen=127.0.0.1:0 --insecure \
  --grace_period=1s >"$WORKER_OUT" 2>"$WORK/worker.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
ADDR=
for _ in $(seq 300); do
  if IFS= read -r line <"$WORKER_OUT" && [[ $line == "listening on "* ]]; then
    ADDR=${line#listening on }
    break
  fi
  sleep 0.1
done
if [[ -z $ADDR ]]; then
  echo "the installed driftscope-worker did not start:" >&2
  cat "$WORK/worker.log" >&2
  exit 1
fi
"$WORK/build/remote_run" "$ADDR"
