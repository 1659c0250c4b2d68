#!/usr/bin/env python3
"""Prints the README's results table (markdown) from an mhc_bench JSON file, so that the
numbers in the README are the bench's own, never typed by hand.

    python3 bench/readme_table.py bench/results/h200-2026-11-28.json [--tokens 1,16,32,...]
        [--torch bench/results/h200-2026-11-28-torch.json]

With --torch (a compare_torch.py JSON), a second table: libmhc's µs per call and its speed-up
over PyTorch eager and torch.compile, per op, T and H, with the output check's verdict.
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--tokens", default="1,4,16,32,128,512,2048,8192")
    ap.add_argument("--torch", help="compare_torch.py JSON: add the PyTorch ratio table")
    args = ap.parse_args()
    d = json.load(open(args.json))
    tokens = [int(t) for t in args.tokens.split(",")]
    rows = {(r["op"], r["T"], r["H"]): r for r in d["rows"] if not r.get("error")}
    dev = d["device"]
    print(f"Device: {dev.get('name', '?')}; copy bandwidth measured in the same run: "
          f"{d['copy']['gbps']:.0f} GB/s. µs per call = median of graph replays / calls per graph; "
          "% = achieved bytes/s (peers-perf.md §4.1 byte model) over the copy bandwidth, cold L2.\n")
    hs = sorted({k[2] for k in rows})

    def cell(op, t, h):
        r = rows.get((op, t, h))
        return "—" if r is None else f"{r['warm_us']:.1f} / {r['cold_us']:.1f} µs ({r['pct_copy_cold']:.0f} %)"

    print_grid(tokens, hs, cell)
    if args.torch:
        torch_table(json.load(open(args.torch)))


def torch_table(d):
    rows = [r for r in d["rows"] if r.get("mhc_us")]
    info = d.get("info", {})
    print(f"\nPyTorch comparison (`bench/compare_torch.py`, same process and inputs, CUDA-graph "
          f"replay; device: {info.get('device', '?')}, torch {info.get('torch', '?')}): libmhc µs per "
          "call, then × faster than PyTorch eager / `torch.compile`; check = outputs within the "
          "script's tolerances (and fused == unfused bitwise).\n")
    by = {(r["op"], r["T"], r["H"]): r for r in rows}

    def cell(op, t, h):
        r = by.get((op, t, h))
        if r is None:
            return "—"
        return (f"{r['mhc_us']:.1f} µs, {r['speedup_eager']:.0f}× / {r['speedup_compile']:.1f}×"
                + ("" if r.get("check_pass", True) else " (check FAILED)"))

    print_grid(sorted({r["T"] for r in rows}), sorted({r["H"] for r in rows}), cell)


def print_grid(tokens, hidden, cell):
    """One markdown row per (op, H), one column per T."""
    print("| op | H | " + " | ".join(f"T={t}" for t in tokens) + " |")
    print("|---|---|" + "---|" * len(tokens))
    for op in ("hc_post", "hc_pre", "hc_post_pre", "hc_head"):
        for h in hidden:
            print(f"| {op} | {h} | " + " | ".join(cell(op, t, h) for t in tokens) + " |")

if __name__ == "__main__":
    main()
