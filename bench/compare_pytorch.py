#!/usr/bin/env python3
"""Side-by-side throughput: driftscope's engine vs PyTorch's CPU LSTM.

Runs bench/engine_bench (Google Benchmark, items_per_second = samples/s) and
the same work in PyTorch in one invocation, on the same machine and thread
count, and prints the ratios (driftscope / PyTorch; > 1 means driftscope is
faster).

The work, as DESIGN §11 and issue "Engine" define it:
  small: LSTM(64, seq) -> LSTM(32, seq), T=10, F=1, batch 32
  large: LSTM(256, seq) -> LSTM(256, seq), T=100, F=32, batch 64
  train: forward, MSE loss, backward, Adam (lr 1e-3) step; fp32; 1 thread
  infer: forward only (torch.no_grad)
PyTorch runs as a user would run it: nn.LSTM(batch_first=True) layers,
torch.optim.Adam, nn.MSELoss, torch.set_num_threads(N). driftscope's
training step additionally clips per variable (clipnorm=1, the default job)
and fingerprints all weights with SHA-256 after every step; PyTorch gets the
equivalent clip_grad_norm_ so both sides do comparable work.

Usage: python3 bench/compare_pytorch.py [--build build] [--threads 1]
       [--min-time 2] [--json out.json]
Needs: torch (pip install torch, or scripts/install-deps.sh --golden).
"""
import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = {
    "small": dict(layers=[64, 32], T=10, F=1, B=32),
    "large": dict(layers=[256, 256], T=100, F=32, B=64),
}


def torch_throughput(torch, cfg, mode, min_time):
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            dims = [cfg["F"]] + cfg["layers"]
            self.rnns = nn.ModuleList(
                nn.LSTM(dims[i], dims[i + 1], batch_first=True)
                for i in range(len(cfg["layers"])))

        def forward(self, x):
            for rnn in self.rnns:
                x, _ = rnn(x)
            return x

    model = Net()
    x = torch.randn(cfg["B"], cfg["T"], cfg["F"])
    y = torch.randn(cfg["B"], cfg["T"], cfg["layers"][-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def infer_step():
        with torch.no_grad():
            model(x)

    step = train_step if mode == "train" else infer_step
    for _ in range(3):
        step()
    # Best of several timed windows (Google Benchmark's repetitions give
    # ours the median): wall-clock and this process's CPU time.
    best_wall = best_cpu = float("inf")
    for _ in range(3):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time / 3:
                break
        best_wall = min(best_wall, elapsed / n)
        best_cpu = min(best_cpu, (time.process_time() - c0) / n)
    return cfg["B"] / best_wall, cfg["B"] / best_cpu


TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def engine_throughput(build, threads, min_time):
    exe = os.path.join(build, "bench", "engine_bench")
    out = subprocess.run(
        [exe, "--benchmark_format=json", f"--benchmark_min_time={min_time / 3}",
         "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true",
         f"--threads={threads}"],
        check=True, capture_output=True, text=True).stdout
    results = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].split("/")
        key = (name[0], name[1])  # ("train", "small_lstm"), ("peak", ...)
        # items_per_second is per wall-clock second (UseRealTime); the CPU
        # figure follows from the median CPU time of the same iterations.
        wall = b["items_per_second"]
        results[key] = dict(wall=wall,
                            cpu=wall * b["real_time"] / b["cpu_time"],
                            gflop=b.get("gflop"),
                            cpu_seconds=b["cpu_time"] * TIME_UNIT[b["time_unit"]])
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("compare_pytorch: torch is not installed "
                 "(scripts/install-deps.sh --golden, or pip install torch)")
    torch.set_num_threads(args.threads)
    engine = engine_throughput(args.build, args.threads, args.min_time)
    rows = []
    for mode in ("train", "infer"):
        for size in ("small", "large"):
            e = engine.get((mode, f"{size}_lstm"), {})
            ours = (e.get("wall"), e.get("cpu"))
            theirs = torch_throughput(torch, CONFIGS[size], mode, args.min_time)
            rows.append(dict(
                benchmark=f"{mode}/{size}_lstm",
                driftscope_samples_per_s=ours[0],
                pytorch_samples_per_s=theirs[0],
                ratio=(ours[0] / theirs[0]) if ours[0] else None,
                driftscope_samples_per_cpu_s=ours[1],
                pytorch_samples_per_cpu_s=theirs[1],
                cpu_ratio=(ours[1] / theirs[1]) if ours[1] else None))
    print(f"torch {torch.__version__}, threads={args.threads}, "
          f"torch backend: {torch.backends.mkldnn.is_available() and 'oneDNN' or 'native'}")
    print("samples/s per wall-clock second, and per CPU second of each process "
          "(the fairer figure on a loaded machine)")
    print(f"{'benchmark':<18}{'driftscope/s':>14}{'pytorch/s':>12}{'ratio':>8}"
          f"{'cpu: ours/s':>14}{'pytorch/s':>12}{'ratio':>8}")
    for r in rows:
        print(f"{r['benchmark']:<18}{(r['driftscope_samples_per_s'] or 0):>14.0f}"
              f"{r['pytorch_samples_per_s']:>12.0f}"
              f"{(r['ratio'] or 0):>8.2f}"
              f"{(r['driftscope_samples_per_cpu_s'] or 0):>14.0f}"
              f"{r['pytorch_samples_per_cpu_s']:>12.0f}"
              f"{(r['cpu_ratio'] or 0):>8.2f}")
    # GEMM work per step (the same for both: same model, same batch) per CPU
    # second, against this core's measured multiply-add peak.
    peak = engine.get(("peak", "fp32_fma"))
    if peak:
        peak_gflops = peak["cpu"] * 1e-9  # its items are FLOP
        print(f"fp32 multiply-add peak of this core: {peak_gflops:.0f} GFLOPS "
              "per CPU second; GEMM GFLOPS per CPU second:")
        for r in rows:
            mode, size = r["benchmark"].split("/")
            gflop = engine.get((mode, size), {}).get("gflop")
            if not gflop or not r["driftscope_samples_per_cpu_s"]:
                continue
            batch = CONFIGS[size.split("_")[0]]["B"]
            ours = gflop * r["driftscope_samples_per_cpu_s"] / batch
            theirs = gflop * r["pytorch_samples_per_cpu_s"] / batch
            r.update(gemm_gflop_per_step=gflop, peak_gflops=peak_gflops,
                     driftscope_gflops=ours, pytorch_gflops=theirs)
            print(f"  {r['benchmark']:<18} driftscope {ours:6.0f} "
                  f"({100 * ours / peak_gflops:3.0f}% of peak), PyTorch "
                  f"{theirs:6.0f} ({100 * theirs / peak_gflops:3.0f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
