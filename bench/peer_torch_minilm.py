#!/usr/bin/env python3
"""MiniLM (all-MiniLM-L6-v2) encoder throughput in PyTorch eager, the peer of nexa_bench_bert.

Batch 32 x length 128 random token ids (no padding), inference (torch.no_grad, eval mode),
same thread count as nexa's benchmark. Prints one JSON line; with --nexa PATH it also runs
nexa's benchmark (`PATH --json`) and prints the ratio of sentences per second.
Not part of CI: needs torch and transformers (a venv such as /opt/torchenv).

    /opt/torchenv/bin/python bench/peer_torch_minilm.py --nexa build/bench/nexa_bench_bert
"""
import argparse
import json
import os
import statistics
import subprocess
import time


def median_seconds(fn, min_reps=5, min_seconds=2.0):
    fn()
    times = []
    while len(times) < min_reps or sum(times) < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if len(times) >= 50:
            break
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.environ.get(
        "NEXA_MINILM_DIR", os.path.expanduser("~/.cache/nexa/all-MiniLM-L6-v2")))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--nexa", help="path to nexa_bench_bert, run after the torch measurement")
    args = parser.parse_args()

    import torch
    from transformers import BertModel

    torch.set_num_threads(args.threads)
    model = BertModel.from_pretrained(args.model_dir).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (args.batch, args.length), generator=gen)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        seconds = median_seconds(lambda: model(input_ids=ids, attention_mask=mask))
    torch_line = {"name": "minilm_forward", "impl": "torch_eager", "batch": args.batch, "length": args.length,
                  "threads": args.threads, "seconds": seconds, "sentences_per_second": args.batch / seconds,
                  "torch_version": torch.__version__, "loadavg_1m": os.getloadavg()[0]}
    print(json.dumps(torch_line), flush=True)
    if args.nexa:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(args.threads))
        out = subprocess.run([args.nexa, "--json"], check=True, capture_output=True, text=True, env=env).stdout
        for line in out.splitlines():
            nexa_line = json.loads(line)
            nexa_line["impl"] = "nexa"
            print(json.dumps(nexa_line))
            if nexa_line.get("name") == "minilm_forward":
                print(json.dumps({"name": "minilm_forward",
                                  "nexa_over_torch_sentences_per_second":
                                      nexa_line["sentences_per_second"] / torch_line["sentences_per_second"]}))


if __name__ == "__main__":
    main()
