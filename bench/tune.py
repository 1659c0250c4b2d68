#!/usr/bin/env python3
"""Tuning mode of the bench: regenerates the launch-configuration table of
src/cuda/gemm_config.cpp (kPreTable) from measurements.

For every candidate configuration it runs mhc_bench once with the process-wide override
MHC_GEMM_CONFIG="variant,splits,groups,tokens_per_cta,token_ctas" (read once per
process, tuning only; the library never tunes in its call path), collects the warm-L2 µs
per call of hc_pre and hc_post_pre, keeps the fastest candidate per (T, H), and prints
  1. the sweep (best three per row), ready for src/cuda/TUNING.md, and
  2. suggested kPreTable rows (channels per split, so one row serves every hidden size).

    python3 bench/tune.py --bench build/bench/mhc_bench [--tokens 1,16,...] [--hidden 4096,7168]
    python3 bench/tune.py --dry-run      # only print the mhc_bench command lines

hc_pre and hc_post_pre share one table (the bitwise promise needs the same configuration
for both), so a candidate is scored by the sum of their times.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

FMA, MMA = 0, 1


def candidates(T, H):
    """(variant, splits, groups, tokens_per_cta, token_ctas) worth timing at T, H."""
    out = []
    if T <= 128:  # CUDA-core kernel: channels per split x tokens per CTA
        for chunk, tpb in itertools.product((64, 128, 256, 512), (1, 2, 4)):
            if tpb > 1 and tpb > T:
                continue
            splits = min(256, -(-H // chunk))
            out.append((FMA, splits, 8, tpb, -(-T // tpb)))
    if T >= 64:  # tensor-core kernel: channels per split
        for chunk in (64, 128, 256, 512):
            out.append((MMA, min(256, -(-H // chunk)), 0, 0, 0))
    return out


def run(bench, cfg, T, H, reps):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    env = dict(os.environ, MHC_GEMM_CONFIG=",".join(str(v) for v in cfg))
    cmd = [bench, "--ops", "hc_pre,hc_post_pre", "--tokens", str(T), "--hidden", str(H),
           "--reps", str(reps), "--cold-mode", "none", "--json", path]
    try:
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        rows = json.load(open(path))["rows"]
    finally:
        os.unlink(path)
    times = {r["op"]: r["warm_us"] for r in rows if not r.get("error")}
    if len(times) != 2:
        return None
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench/mhc_bench")
    ap.add_argument("--tokens", default="1,4,16,32,64,128,512,2048,8192")
    ap.add_argument("--hidden", default="4096,7168")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    hidden = [int(h) for h in args.hidden.split(",")]

    best = {}
    for H, T in itertools.product(hidden, tokens):
        results = []
        for cfg in candidates(T, H):
            if args.dry_run:
                print(f"MHC_GEMM_CONFIG={','.join(map(str, cfg))} {args.bench} "
                      f"--ops hc_pre,hc_post_pre --tokens {T} --hidden {H}")
                continue
            times = run(args.bench, cfg, T, H, args.reps)
            if times:
                results.append((times["hc_pre"] + times["hc_post_pre"], cfg, times))
        results.sort(key=lambda r: r[0])
        if results:
            best[(T, H)] = results[0]
            print(f"T={T:5d} H={H}: " + "; ".join(
                f"cfg={','.join(map(str, c))} pre {t['hc_pre']:.2f} us, "
                f"post_pre {t['hc_post_pre']:.2f} us" for _, c, t in results[:3]), flush=True)
    if args.dry_run or not best:
        return 0

    print("\nSuggested kPreTable rows {max_tokens, variant, channels/split, groups, tpb, ctas, "
          "(from the largest hidden size measured):")
    H = max(hidden)
    for T in tokens:
        if (T, H) not in best:
            continue
        _, (variant, splits, groups, tpb, ctas), _ = best[(T, H)]
        chunk = -(-H // splits)
        name = "kMma" if variant == MMA else "kFma"
        print(f"    {{{T}, {name}, {chunk}, {groups}, {tpb}, {ctas}}},")
    return 0


if __name__ == "__main__":
    sys.exit(main())
