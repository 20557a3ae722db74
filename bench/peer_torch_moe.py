#!/usr/bin/env python3
"""Peer benchmark: the MoE layer of nexa_bench_moe_layer, written in PyTorch eager as people usually write it.

Not part of nexa's build or CI; it needs PyTorch (CPU), e.g. in a virtualenv outside the repo:
    /opt/torchenv/bin/python bench/peer_torch_moe.py [--quick] [--threads N] [--nexa build/bench/nexa_bench_moe_layer]

Layer (same shapes as nexa_bench_moe_layer): router = Linear(d_model, E, bias=False) in fp32, softmax, topk(k),
renormalise the k weights when k > 1 (top-1 keeps the raw probability, as Switch does), then a loop over the experts
gathering each expert's tokens (torch.where + index_select), expert = T5 DenseReluDense (wi, ReLU, wo, no biases), and
index_add_ of weight * output into the result.

Timings are medians of repeated runs after one warm-up (at least 5 runs and at least 1 s, at most 50 runs), like
nexa's bench/bench_util.hpp:
    seconds_fwd         forward with autograd enabled (keeps what backward needs, as nexa's forward does)
    seconds_fwd_nograd  forward under torch.no_grad()
    seconds_fwdbwd      zero_grad + forward + backward of loss = (y * dy).sum() with a fixed dy (so backward sees dy);
                        gradients for the parameters and for x, as nexa's backward returns dx
Output: one JSON object per line per configuration on stdout. With --nexa PATH the script then runs `PATH --json`
(plus --quick if given), re-emits nexa's lines with "impl": "nexa", and prints one JSON line per configuration with
nexa_over_torch_fwd and nexa_over_torch_fwdbwd (time ratios; < 1 means nexa is faster). A human-readable table goes
to stderr.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

CONFIGS = [  # name, experts, k -- names match nexa_bench_moe_layer
    ("default_E8_top2", 8, 2),
    ("E64_top2", 64, 2),
    ("E8_top1", 8, 1),
]
D_MODEL, D_FF = 512, 2048


class DenseReluDense(nn.Module):
    """T5's feed-forward block: wo(relu(wi(x))), no biases."""

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.wo(F.relu(self.wi(x)))


class MoE(nn.Module):
    def __init__(self, d_model, d_ff, num_experts, k):
        super().__init__()
        self.k = k
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.experts = nn.ModuleList(DenseReluDense(d_model, d_ff) for _ in range(num_experts))

    def forward(self, x):
        probs = F.softmax(self.router(x.float()), dim=-1)  # router in fp32
        weights, idx = torch.topk(probs, self.k, dim=-1)  # [T, k]
        if self.k > 1:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(idx == e)
            if tok.numel() == 0:
                continue
            out = expert(x.index_select(0, tok)) * weights[tok, slot].unsqueeze(-1)
            y.index_add_(0, tok, out)
        return y


def median_seconds(fn, min_reps=5, min_seconds=1.0, max_reps=50):
    """Same rule as nexa::bench::median_seconds: one warm-up, then >= min_reps runs and >= min_seconds, upper median."""
    fn()
    times = []
    total = 0.0
    while len(times) < min_reps or total < min_seconds:
        start = time.perf_counter()
        fn()
        s = time.perf_counter() - start
        times.append(s)
        total += s
        if len(times) >= max_reps:
            break
    times.sort()
    return times[len(times) // 2]


def blas_info():
    """Cheap summary of torch's BLAS / oneDNN from torch.__config__.show()."""
    info = {"mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available()}
    try:
        cfg = torch.__config__.show()
    except Exception:  # pragma: no cover
        return info
    for line in cfg.splitlines():
        line = line.strip()
        if "Build settings:" in line:
            for item in line.split("Build settings:", 1)[1].split(","):
                key, _, val = item.strip().partition("=")
                if key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
                    info[key.lower()] = val
        elif "CPU capability" in line or "Math Kernel Library" in line or line.startswith("- OpenMP") or "oneDNN" in line or "MKL-DNN" in line:
            info.setdefault("libs", []).append(line.lstrip("- ").strip())
    return info


def run_config(name, experts, k, tokens, threads, meta):
    torch.manual_seed(1)
    model = MoE(D_MODEL, D_FF, experts, k)
    x = torch.randn(tokens, D_MODEL)
    dy = torch.randn(tokens, D_MODEL) * 1e-3  # fixed upstream gradient, same scale as nexa's bench
    x_grad = x.clone().requires_grad_(True)

    def fwd_nograd():
        with torch.no_grad():
            model(x)

    def fwd():
        with torch.enable_grad():
            model(x_grad)

    def fwdbwd():
        model.zero_grad(set_to_none=True)
        x_grad.grad = None
        y = model(x_grad)
        (y * dy).sum().backward()

    rec = {
        "name": name, "impl": "torch_eager", "tokens": tokens, "d_model": D_MODEL, "d_ff": D_FF,
        "experts": experts, "k": k, "threads": threads,
        "seconds_fwd": round(median_seconds(fwd), 6),
        "seconds_fwd_nograd": round(median_seconds(fwd_nograd), 6),
        "seconds_fwdbwd": round(median_seconds(fwdbwd), 6),
    }
    rec.update(meta)
    return rec


def run_nexa(path, quick, threads):
    cmd = [path, "--json"] + (["--quick"] if quick else [])
    env = dict(os.environ)
    # Same thread count for nexa (OpenMP / OpenBLAS) as for torch, unless the caller set it explicitly.
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"peer_torch_moe: {' '.join(cmd)} exited {proc.returncode}")
    out = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rec = json.loads(line)
            out[rec["name"]] = rec
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2, this machine's cores)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes (T=512), for smoke tests")
    ap.add_argument("--nexa", metavar="PATH", help="nexa_bench_moe_layer executable to run afterwards and compare")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tokens = 512 if args.quick else 4096
    load1 = os.getloadavg()[0]
    if load1 >= 1.0:
        sys.stderr.write(f"peer_torch_moe: warning: 1-minute load average is {load1:.2f}; with {args.threads} OpenMP "
                         "threads on a busy machine both torch's and nexa's times can be many times too slow\n")
    meta = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads(), "loadavg_1m": load1}
    meta.update(blas_info())

    torch_recs = {}
    for name, experts, k in CONFIGS:
        rec = run_config(name, experts, k, tokens, args.threads, meta)
        torch_recs[name] = rec
        print(json.dumps(rec), flush=True)

    if not args.nexa:
        return
    nexa_recs = run_nexa(args.nexa, args.quick, args.threads)
    for name, _, _ in CONFIGS:
        if name in nexa_recs:
            print(json.dumps({**nexa_recs[name], "impl": "nexa"}), flush=True)
    sys.stderr.write(f"\n{'config':<18} {'nexa fwd':>10} {'torch fwd':>10} {'ratio':>7}   "
                     f"{'nexa f+b':>10} {'torch f+b':>10} {'ratio':>7}   (ratio = nexa/torch; < 1: nexa faster)\n")
    for name, _, _ in CONFIGS:
        t, n = torch_recs[name], nexa_recs.get(name)
        if n is None:
            sys.stderr.write(f"{name:<18} (missing from nexa's output)\n")
            continue
        r_fwd = n["seconds_fwd"] / t["seconds_fwd"]
        r_fb = n["seconds_fwdbwd"] / t["seconds_fwdbwd"]
        sys.stderr.write(f"{name:<18} {n['seconds_fwd'] * 1e3:8.2f}ms {t['seconds_fwd'] * 1e3:8.2f}ms {r_fwd:7.3f}   "
                         f"{n['seconds_fwdbwd'] * 1e3:8.2f}ms {t['seconds_fwdbwd'] * 1e3:8.2f}ms {r_fb:7.3f}\n")
        print(json.dumps({"name": name, "nexa_over_torch_fwd": round(r_fwd, 4),
                          "nexa_over_torch_fwdbwd": round(r_fb, 4),
                          "nexa_over_torch_fwd_nograd": round(n["seconds_fwd"] / t["seconds_fwd_nograd"], 4)}),
              flush=True)
    sys.stderr.flush()


if __name__ == "__main__":
    main()
