#!/usr/bin/env python3
"""Side-by-side throughput: driftscope's engine vs PyTorch's CPU LSTM.

Runs bench/engine_bench (Google Benchmark, items_per_second = samples/s) and
the same work in PyTorch, on the same machine and thread count, and prints
the ratios (driftscope / PyTorch; > 1 means driftscope is faster).

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

Side by side means paired: each round times one window of driftscope and,
right after it, one window of PyTorch on the same benchmark, so both see the
same load; a round's ratio compares those two windows. Printed per benchmark:
the median over rounds and the range. Every window is timed both by the
wall clock and by the CPU time of its process; on a machine shared with
other work the CPU-time ratio is the steadier one (other processes stretch
wall-clock windows unevenly). The GEMM GFLOPS per CPU second of both sides
are set against this core's fp32 multiply-add peak (engine_bench's
peak/fp32_fma).

Usage: python3 bench/compare_pytorch.py [--build build] [--threads 1]
       [--min-time 2] [--rounds 3] [--json out.json]
  --min-time: seconds of timing per benchmark and side, split over the rounds
Needs: torch (pip install torch, or scripts/install-deps.sh --golden).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "small": dict(layers=[64, 32], T=10, F=1, B=32),
    "large": dict(layers=[256, 256], T=100, F=32, B=64),
}
BENCHMARKS = [(mode, size) for mode in ("train", "infer")
              for size in ("small", "large")]
TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def torch_stepper(torch, cfg, mode):
    """Returns a function that runs one step, after three warm-up steps."""
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
    return step


def torch_window(step, batch, seconds):
    """Samples per wall-clock second and per CPU second over one window."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        n += 1
        wall = time.perf_counter() - t0
        if wall >= seconds:
            break
    cpu = time.process_time() - c0
    return dict(wall=batch * n / wall, cpu=batch * n / cpu)


def engine_window(build, threads, name, seconds):
    """One Google Benchmark run of `name` (its own untimed warm-up step)."""
    exe = os.path.join(build, "bench", "engine_bench")
    out = subprocess.run(
        [exe, "--benchmark_format=json", f"--benchmark_min_time={seconds}",
         f"--benchmark_filter=^{name}/", f"--threads={threads}"],
        check=True, capture_output=True, text=True).stdout
    b = json.loads(out)["benchmarks"][0]
    # items_per_second is per wall-clock second (UseRealTime); the CPU
    # figure follows from the same iterations' CPU time.
    wall = b["items_per_second"]
    return dict(wall=wall, cpu=wall * b["real_time"] / b["cpu_time"],
                gflop=b.get("gflop"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("compare_pytorch: torch is not installed "
                 "(scripts/install-deps.sh --golden, or pip install torch)")
    torch.set_num_threads(args.threads)
    window = args.min_time / args.rounds
    steppers = {(mode, size): torch_stepper(torch, CONFIGS[size], mode)
                for mode, size in BENCHMARKS}
    rounds = {key: [] for key in BENCHMARKS}
    for _ in range(args.rounds):
        for mode, size in BENCHMARKS:
            ours = engine_window(args.build, args.threads,
                                 f"{mode}/{size}_lstm", window)
            theirs = torch_window(steppers[(mode, size)],
                                  CONFIGS[size]["B"], window)
            rounds[(mode, size)].append(dict(
                driftscope=ours, pytorch=theirs,
                ratio=ours["wall"] / theirs["wall"],
                cpu_ratio=ours["cpu"] / theirs["cpu"]))
    peak = engine_window(args.build, args.threads, "peak/fp32_fma", window)
    peak_gflops = peak["cpu"] * 1e-9  # its items are FLOP

    def med(xs):
        return statistics.median(xs)

    rows = []
    print(f"torch {torch.__version__}, threads={args.threads}, torch backend: "
          f"{torch.backends.mkldnn.is_available() and 'oneDNN' or 'native'}; "
          f"{args.rounds} paired rounds of {window:.2f} s per side")
    print("samples/s (medians over rounds) and driftscope/PyTorch ratio: "
          "median [min-max] of the rounds' ratios")
    print(f"{'':<18}{'-- per wall-clock second --':^44}"
          f"{'-- per CPU second --':^44}")
    print(f"{'benchmark':<18}{'driftscope':>11}{'pytorch':>10}"
          f"{'ratio':>23}{'driftscope':>11}{'pytorch':>10}{'ratio':>23}")
    for mode, size in BENCHMARKS:
        rs = rounds[(mode, size)]
        ours_w = med([r["driftscope"]["wall"] for r in rs])
        theirs_w = med([r["pytorch"]["wall"] for r in rs])
        ours_c = med([r["driftscope"]["cpu"] for r in rs])
        theirs_c = med([r["pytorch"]["cpu"] for r in rs])
        ratio = [r["ratio"] for r in rs]
        cpu_ratio = [r["cpu_ratio"] for r in rs]
        gflop = rs[0]["driftscope"]["gflop"]
        batch = CONFIGS[size]["B"]
        row = dict(
            benchmark=f"{mode}/{size}_lstm",
            driftscope_samples_per_s=ours_w, pytorch_samples_per_s=theirs_w,
            ratio=med(ratio), ratio_min=min(ratio), ratio_max=max(ratio),
            driftscope_samples_per_cpu_s=ours_c,
            pytorch_samples_per_cpu_s=theirs_c, cpu_ratio=med(cpu_ratio),
            cpu_ratio_min=min(cpu_ratio), cpu_ratio_max=max(cpu_ratio),
            gemm_gflop_per_step=gflop, peak_gflops=peak_gflops,
            driftscope_gflops=gflop * ours_c / batch,
            pytorch_gflops=gflop * theirs_c / batch, rounds=rs)
        rows.append(row)
        print(f"{row['benchmark']:<18}{ours_w:>11.0f}{theirs_w:>10.0f}"
              f"{med(ratio):>8.2f} [{min(ratio):.2f}-{max(ratio):.2f}]"
              f"{ours_c:>14.0f}{theirs_c:>10.0f}"
              f"{med(cpu_ratio):>8.2f} [{min(cpu_ratio):.2f}-"
              f"{max(cpu_ratio):.2f}]")
    print(f"fp32 multiply-add peak of this core: {peak_gflops:.0f} GFLOPS per "
          "CPU second; GEMM GFLOPS per CPU second:")
    for row in rows:
        ours, theirs = row["driftscope_gflops"], row["pytorch_gflops"]
        print(f"  {row['benchmark']:<18} driftscope {ours:6.0f} "
              f"({100 * ours / peak_gflops:3.0f}% of peak), PyTorch "
              f"{theirs:6.0f} ({100 * theirs / peak_gflops:3.0f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
