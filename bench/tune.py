#!/usr/bin/env python3
"""Tuning mode of the bench: regenerates the launch-configuration tables of
src/cuda/gemm_config.cpp (kPreTable, or kHeadTable with --head) from measurements.

For every candidate configuration it runs mhc_bench once with the process-wide override
MHC_GEMM_CONFIG (MHC_HEAD_GEMM_CONFIG with --head) =
"variant,splits,groups,tokens_per_cta,token_ctas,cluster,early_launch,fuse_post" (read once
per process, tuning only; the library never tunes in its call path). Variants: 0 = CUDA-core
FMA split-K (cluster = 1: its splits form one thread-block cluster and finish the op, no
finalize), 1 = bf16x3 tensor-core split-K, 2 = one-pass cluster kernel (splits = CTAs per
cluster).
It collects the warm-L2 µs per call, keeps the fastest candidate per (T, H), and prints
  1. the sweep (best three per row), ready for src/cuda/TUNING.md, and
  2. suggested table rows (FMA: channels per split, so one row serves every hidden size;
     tensor-core: a capped split count, the same grid for every hidden size).

    python3 bench/tune.py --bench build/bench/mhc_bench [--tokens 1,16,...] [--hidden 4096,7168]
    python3 bench/tune.py --head ...     # hc_head's table
    python3 bench/tune.py --dry-run      # only print the mhc_bench command lines

hc_pre and hc_post_pre share one table (the bitwise promise needs the same configuration
for both), so a candidate is scored by the sum of their times. Candidates the library would
not accept for H (clusters beyond 16 CTAs, a cluster kernel that does not fit H) are never
timed: the library would silently fall back to its table and the row would be mislabelled.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

FMA, MMA, CLUSTER = 0, 1, 2
MAX_SMEM = 232448  # sm_90 opt-in shared memory per CTA (prenorm_cluster_kernel.cu)


def cluster_kernel_fits(n_out, C, H):
    """Mirror of cluster_fits() in prenorm_cluster_kernel.cu (32 tokens per block)."""
    if H % (C * 32):
        return False
    static = 4 * (8 * 32 * (n_out + 1) + 2 * 32 * (n_out + 1) + 32 * 4 + 32)
    return 4 * n_out * (4 * (H // C) + 4) + static <= MAX_SMEM


def candidates(T, H, head):
    """(variant, splits, groups, tokens_per_cta, token_ctas, cluster, early_launch, fuse_post)
    worth timing at T, H. early_launch (the finalize launched when the split-K GEMM starts) is
    tried both ways at decode sizes, where it measured sometimes faster and sometimes slower.
    fuse_post is on for every FMA hc_pre candidate: the fused boundary measured faster than
    the post kernel + hc_pre at every T <= 64 (TUNING.md, sixth sweep)."""
    out = []
    n_out = 4 if head else 24
    groups = 1 if head else 8
    if T <= 512 or head:  # CUDA-core kernel: channels per split x tokens per CTA
        for chunk, tpb in itertools.product((64, 128, 256, 512), (1, 2, 4)):
            if tpb > 1 and tpb > T:
                continue
            splits = min(256, -(-H // chunk))
            for early in ((0, 1) if T <= 32 else (0,)):
                fuse = 0 if head else 1
                out.append((FMA, splits, groups, tpb, min(256, -(-T // tpb)), 0, early, fuse))
            if not head and T <= 32 and splits <= 16:  # one kernel: splits form a cluster
                for ctas in sorted({-(-T // tpb), min(4, -(-T // tpb))}):
                    out.append((FMA, splits, 8, tpb, ctas, 1, 0, 1))
    if T >= 64:  # tensor-core kernel (hc_pre and hc_head): split counts of whole 64-channel
        # steps (28 / 56 divide H = 7168's 112 steps; TUNING.md, eighth sweep)
        for s in sorted({min(S, -(-H // 64)) for S in (8, 16, 28, 32, 56, 64)}):
            out.append((MMA, s, 0, 0, 0, 0, 0, 0))
    if T >= 128:  # one-pass cluster kernel
        for C in (8, 16):
            if cluster_kernel_fits(n_out, C, H):
                out.append((CLUSTER, C, 0, 0, 0, 0, 0, 0))
    return out


def run(bench, cfg, T, H, reps, head):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    env = dict(os.environ, **{env_name(head): ",".join(str(v) for v in cfg)})
    cmd = [bench, "--ops", ops(head), "--tokens", str(T), "--hidden", str(H),
           "--reps", str(reps), "--cold-mode", "none", "--json", path]
    try:
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        rows = json.load(open(path))["rows"]
    finally:
        os.unlink(path)
    times = {r["op"]: r["warm_us"] for r in rows if not r.get("error")}
    if len(times) != len(ops(head).split(",")):
        return None
    return times


def env_name(head):
    return "MHC_HEAD_GEMM_CONFIG" if head else "MHC_GEMM_CONFIG"


def ops(head):
    return "hc_head" if head else "hc_pre,hc_post_pre"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench/mhc_bench")
    ap.add_argument("--tokens", default="1,4,16,32,64,128,512,2048,8192")
    ap.add_argument("--hidden", default="4096,7168")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--head", action="store_true", help="tune hc_head (kHeadTable)")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    hidden = [int(h) for h in args.hidden.split(",")]

    best = {}
    for H, T in itertools.product(hidden, tokens):
        results = []
        for cfg in candidates(T, H, args.head):
            if args.dry_run:
                print(f"{env_name(args.head)}={','.join(map(str, cfg))} {args.bench} "
                      f"--ops {ops(args.head)} --tokens {T} --hidden {H}")
                continue
            times = run(args.bench, cfg, T, H, args.reps, args.head)
            if times:
                results.append((sum(times.values()), cfg, times))
        results.sort(key=lambda r: r[0])
        if results:
            best[(T, H)] = results[0]
            print(f"T={T:5d} H={H}: " + "; ".join(
                f"cfg={','.join(map(str, c))} " + ", ".join(f"{op} {us:.2f} us" for op, us in t.items())
                for _, c, t in results[:3]), flush=True)
    if args.dry_run or not best:
        return 0

    table = "kHeadTable" if args.head else "kPreTable"
    print(f"\nSuggested {table} rows {{max_tokens, variant, channels/split, groups, tpb, ctas, "
          "cluster_ctas, one_kernel, max_splits, early_launch, fuse_post[, cap_splits]} (from the largest hidden "
          "size measured):")
    H = max(hidden)
    for T in tokens:
        if (T, H) not in best:
            continue
        _, (variant, splits, groups, tpb, ctas, cluster, early, fuse), _ = best[(T, H)]
        if variant == CLUSTER:  # the row's fallback (split-K) is the table's business
            print(f"    {{{T}, kFma, 512, {1 if args.head else 8}, 4, 256, {splits}, false}},")
            continue
        if variant == MMA:  # 64-channel steps, the count capped (Row::cap_splits)
            print(f"    {{{T}, kMma, 64, 0, 0, 0, 0, false, {splits}, false, false, true}},")
            continue
        chunk = -(-H // splits)
        name = "kFma"
        one = "true" if cluster else "false"
        print(f"    {{{T}, {name}, {chunk}, {groups}, {tpb}, {ctas}, 0, {one}, 0, "
              f"{'true' if early else 'false'}, {'true' if fuse else 'false'}}},")
    return 0


if __name__ == "__main__":
    sys.exit(main())
