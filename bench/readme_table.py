#!/usr/bin/env python3
"""Prints the README's results table (markdown) from an mhc_bench JSON file, so that the
numbers in the README are the bench's own, never typed by hand.

    python3 bench/readme_table.py bench/results/h200-2026-11-28.json [--tokens 1,16,32,...]
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--tokens", default="1,4,16,32,128,512,2048,8192")
    args = ap.parse_args()
    d = json.load(open(args.json))
    tokens = [int(t) for t in args.tokens.split(",")]
    rows = {(r["op"], r["T"], r["H"]): r for r in d["rows"] if not r.get("error")}
    dev = d["device"]
    print(f"Device: {dev.get('name', '?')}; copy bandwidth measured in the same run: "
          f"{d['copy']['gbps']:.0f} GB/s. µs per call = median of graph replays / calls per graph; "
          "% = achieved bytes/s (peers-perf.md §4.1 byte model) over the copy bandwidth, cold L2.\n")
    hs = sorted({k[2] for k in rows})
    print("| op | H | " + " | ".join(f"T={t}" for t in tokens) + " |")
    print("|---|---|" + "---|" * len(tokens))
    for op in ("hc_post", "hc_pre", "hc_post_pre", "hc_head"):
        for h in hs:
            cells = []
            for t in tokens:
                r = rows.get((op, t, h))
                cells.append("—" if r is None else
                             f"{r['warm_us']:.1f} / {r['cold_us']:.1f} µs ({r['pct_copy_cold']:.0f} %)")
            print(f"| {op} | {h} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
