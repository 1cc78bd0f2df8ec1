#!/usr/bin/env bash
# The sanitizer half of `make test` (docs/testing.md): one clang build tree
# with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer on, the
# first report fails) that holds the engine's unit tests and the libFuzzer
# targets; runs those unit tests, then each fuzz target for a bounded time
# on its seed corpus.
#   scripts/test-sanitize.sh            build, unit tests, fuzzing
#   scripts/test-sanitize.sh --no-fuzz  build and unit tests only
#   scripts/test-sanitize.sh --fuzz-only
# Environment: ASAN_BUILD_DIR (build-asan), JOBS (nproc), FUZZ_SECONDS (30
# per target), FUZZ_RUNS (a cap on executions per target, 2000000),
# FUZZ_SEED (libFuzzer's -seed, 1: every run tries the same inputs in the
# same order, so CI's result does not depend on luck; set another seed, or 0
# for a random one, to explore further by hand).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${ASAN_BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_RUNS=${FUZZ_RUNS:-2000000}
FUZZ_SEED=${FUZZ_SEED:-1}
FUZZ_TARGETS=(npy init_weights spec_json event_wire report)
run_tests=1
run_fuzz=1
case "${1:-}" in
  --no-fuzz) run_fuzz=0 ;;
  --fuzz-only) run_tests=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-fuzz | --fuzz-only]" >&2; exit 2 ;;
esac

# Leaks, container overflows and ODR violations stay on; no suppression
# file. alloc_dealloc_mismatch is off: in engine_tests (not in the fuzz
# targets) ASan reports libstdc++ 12's std::stable_sort freeing its
# temporary buffer (operator new(nothrow) / operator delete) as "operator new
# vs free" — inside the standard library, not in our code (docs/testing.md).
export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:alloc_dealloc_mismatch=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

if [ ! -f "$BUILD/build.ninja" ]; then
  # Release (-O3, as shipped) with line tables for readable reports; no CUDA
  # library, no benchmarks. Warnings are not errors here: the GCC build is
  # that gate, and clang warns about other things.
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS=-gline-tables-only \
    -DDRIFTSCOPE_CUDA=OFF -DDRIFTSCOPE_BENCH=OFF -DDRIFTSCOPE_WERROR=OFF \
    -DDRIFTSCOPE_SANITIZE=address,undefined -DDRIFTSCOPE_FUZZ=ON \
    ${ASAN_CMAKE_FLAGS:-}
fi
cmake --build "$BUILD" -j "$JOBS" --target engine_tests fuzzers

if [ "$run_tests" = 1 ]; then
  # The engine's unit tests, less the slowest one (a whole default job on
  # the emulated device) and the one that compares its estimate with the
  # peak RSS, which ASan's shadow memory inflates (docs/testing.md).
  ctest --test-dir "$BUILD" -L '^engine_tests$' \
    -E "${ASAN_EXCLUDE:-^(DeviceTrainerTest\.EmuAgreesWithRef64OnTheDefaultJob|JobMemoryTest\.EstimateBoundsMeasuredPeakRssWithinMargin)$}" \
    -j "$JOBS" --output-on-failure --timeout 600
fi

if [ "$run_fuzz" = 1 ]; then
  for t in "${FUZZ_TARGETS[@]}"; do
    # New inputs go to the build tree; the committed seeds are only read.
    work="$BUILD/fuzz-work/$t"
    mkdir -p "$work" "$BUILD/fuzz-artifacts"
    dict=()
    if [ -f "fuzz/$t.dict" ]; then dict=(-dict="fuzz/$t.dict"); fi
    log="$BUILD/fuzz-work/$t.log"
    echo "test-sanitize: fuzzing $t for at most ${FUZZ_SECONDS}s / ${FUZZ_RUNS} runs"
    if ! "$BUILD/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
      -runs="$FUZZ_RUNS" -seed="$FUZZ_SEED" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "${dict[@]}" -artifact_prefix="$BUILD/fuzz-artifacts/$t-" \
      "$work" "fuzz/corpus/$t" > "$log" 2>&1; then
      tail -n 60 "$log" >&2
      echo "test-sanitize: fuzz_$t failed; the input is in $BUILD/fuzz-artifacts/" >&2
      exit 1
    fi
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  done
fi
echo "test-sanitize: all passed"
