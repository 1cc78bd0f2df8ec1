#!/usr/bin/env python3
"""GPU throughput: driftscope's device backends vs PyTorch's cuDNN LSTM.

Runs bench/gpu_bench (items_per_second = training samples/s through RunJob)
and the same training in PyTorch on the same GPU, and prints the ratios the
issue sets as targets:
  large/cuda-cudnn vs PyTorch cuDNN LSTM      >= 0.8
  large/cuda-cudnn vs large/fp32 (CPU engine) >= 10
  large/cuda-det   vs large/cuda-cudnn        >= 0.3
The work (DESIGN §11): LSTM(256, seq) -> LSTM(256, seq), T=100, F=32,
batch 64, MSE, Adam (lr 1e-3). PyTorch runs as a user would: nn.LSTM
(batch_first=True, cuDNN), torch.optim.Adam, nn.MSELoss, clip_grad_norm_
per parameter (driftscope's default job clips per variable). driftscope also
copies the weights back and hashes them after every step (the per-step
fingerprint of the record); PyTorch does not, so the comparison favours it.

Usage: python3 bench/compare_pytorch_gpu.py [--build build] [--seconds 5]
Needs: torch with CUDA (PyPI's wheels bring their own CUDA libraries).
"""
import argparse
import json
import subprocess
import sys
import time

LARGE = dict(layers=[256, 256], T=100, F=32, B=64)


def torch_samples_per_second(torch, seconds):
    nn = torch.nn
    torch.manual_seed(0)
    dev = torch.device("cuda")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            dims = [LARGE["F"]] + LARGE["layers"]
            self.rnns = nn.ModuleList(
                nn.LSTM(dims[i], dims[i + 1], batch_first=True)
                for i in range(len(LARGE["layers"])))

        def forward(self, x):
            for rnn in self.rnns:
                x, _ = rnn(x)
            return x

    net = Net().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    x = torch.randn(LARGE["B"], LARGE["T"], LARGE["F"], device=dev)
    y = torch.randn(LARGE["B"], LARGE["T"], LARGE["layers"][-1], device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        for p in net.parameters():
            torch.nn.utils.clip_grad_norm_([p], 1.0)
        opt.step()
        return loss

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step().item()  # the loss comes back every step, as in driftscope
        steps += 1
    torch.cuda.synchronize()
    return steps * LARGE["B"] / (time.perf_counter() - t0)


def driftscope_rates(build):
    out = subprocess.run(
        [f"{build}/bench/gpu_bench", "--benchmark_filter=large/",
         "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    rates = {}
    for b in json.loads(out)["benchmarks"]:
        name = b["name"].split("/")[1]
        if "items_per_second" in b and not b.get("error_occurred"):
            rates[name] = b["items_per_second"]
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("compare_pytorch_gpu: torch is not installed")
    if not torch.cuda.is_available():
        sys.exit("compare_pytorch_gpu: torch sees no CUDA device")
    ours = driftscope_rates(args.build)
    theirs = torch_samples_per_second(torch, args.seconds)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    print(f"PyTorch cuDNN LSTM (large): {theirs:10.1f} samples/s")
    for name, rate in sorted(ours.items()):
        print(f"driftscope {name:14s}: {rate:10.1f} samples/s")

    def ratio(a, b):
        return a / b if a and b else float("nan")

    checks = [
        ("cuda-cudnn / PyTorch", ratio(ours.get("cuda-cudnn"), theirs), 0.8),
        ("cuda-cudnn / fp32 CPU", ratio(ours.get("cuda-cudnn"), ours.get("fp32")),
         10.0),
        ("cuda-det / cuda-cudnn", ratio(ours.get("cuda-det"),
                                        ours.get("cuda-cudnn")), 0.3),
    ]
    for label, r, target in checks:
        verdict = "ok" if r >= target else "BELOW TARGET"
        print(f"{label:24s} {r:8.2f}  (target >= {target})  {verdict}")


if __name__ == "__main__":
    main()
