#!/usr/bin/env bash
# GPU verification of the CUDA backend, in one go (< 6 minutes on one H100):
#   1. builds what it needs (CUDA on) in $BUILD (default build-gpu),
#   2. runs the `gpu`-labelled tests (cuda-det == cuda-det-emu bit for bit,
#      cuBLAS profiles vs ref64, cuda-nondet, out-of-memory recovery, no leak
#      over 100 runs, and the cuDNN layer's own checks when built),
#   3. a drift report over ref64, fp32, cuda, cuda-tf32, cuda-cudnn, cuda-det,
#      cuda-det-emu and cuda-nondet with 2 repeats (`driftscope run`),
#   4. the GPU benchmark (bench/gpu_bench.cc) and, when torch with CUDA is
#      installed, the comparison with PyTorch's cuDNN LSTM
#      (bench/compare_pytorch_gpu.py),
# and prints one summary. Exit status 0 only when every step passed.
#
#   scripts/gpu-check.sh            # BUILD=build-gpu, all GPU presets
#   BUILD=build scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
OUT=${OUT:-$BUILD/gpu-check}
mkdir -p "$OUT"
declare -A RESULT

step() {  # step NAME COMMAND...: runs it, logs to $OUT/NAME.log, records PASS/FAIL
  local name=$1
  shift
  local t0=$SECONDS
  echo "== $name: $*"
  if "$@" >"$OUT/$name.log" 2>&1; then
    RESULT[$name]="PASS ($((SECONDS - t0)) s)"
  else
    RESULT[$name]="FAIL ($((SECONDS - t0)) s, see $OUT/$name.log)"
  fi
  tail -n 25 "$OUT/$name.log"
}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no GPU visible (nvidia-smi -L failed); the GPU tests would only skip" >&2
fi
nvidia-smi -L 2>/dev/null | tee "$OUT/gpus.txt"

step configure cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDRIFTSCOPE_CUDA=ON -DDRIFTSCOPE_TESTS=ON -DDRIFTSCOPE_BENCH=ON
targets=(driftscope driftscope_cuda_backend gpu_tests gpu_bench)
if grep -q "cudnn_gpu_tests" "$BUILD/build.ninja" 2>/dev/null; then
  targets+=(cudnn_gpu_tests)
fi
step build cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"
step gpu-tests ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 240
step drift-report "$BUILD/client/driftscope" run \
  --profiles ref64,fp32,cuda,cuda-tf32,cuda-cudnn,cuda-det,cuda-det-emu,cuda-nondet \
  --repeats 2 --jobs 4 --out "$OUT/drift"
step gpu-bench "$BUILD/bench/gpu_bench" \
  --benchmark_out="$OUT/gpu_bench.json" --benchmark_out_format=json
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  step vs-pytorch python3 bench/compare_pytorch_gpu.py --build "$BUILD" --seconds 3
fi

echo
echo "==================== gpu-check summary ===================="
cat "$OUT/gpus.txt" 2>/dev/null
for s in configure build gpu-tests drift-report gpu-bench; do
  printf '%-14s %s\n' "$s" "${RESULT[$s]:-not run}"
done
grep -E "^(\[  (PASSED|FAILED|SKIPPED) \]|[0-9]+% tests passed)" "$OUT/gpu-tests.log" 2>/dev/null | head -20
grep -E "rel L2|ran on|identical|different|free device memory" "$OUT/gpu-tests.log" 2>/dev/null | head -20
grep -E "items_per_second" "$OUT/gpu-bench.log" 2>/dev/null | sed -E 's/ +/ /g' | head -20
cat "$OUT/vs-pytorch.log" 2>/dev/null
for s in configure build gpu-tests drift-report gpu-bench; do
  [[ ${RESULT[$s]:-} == PASS* ]] || exit 1
done
