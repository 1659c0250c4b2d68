#!/usr/bin/env python3
"""Plot mhc_bench results.

    python3 bench/plot.py results.json [more.json ...] [-o bench.png] [--compare cmp.json ...]

Reads one or several JSON files written by `mhc_bench --json` (schema mhc_bench/1) and
writes one PNG with two panels:
  1. latency per call vs T (log-log), one colour per (op, H), solid = cold L2, dashed = warm;
  2. achieved bandwidth as % of the device-to-device copy bandwidth measured in the same run
     (byte model of reference/peers-perf.md §4.1), with the 80 % (every op) and 85 % (hc_post)
     targets of DESIGN.md §4 marked.
With --compare (JSON written by bench/compare_torch.py, schema mhc_compare_torch/1) a third
panel shows libmhc's speed-up over eager PyTorch and torch.compile, with the 10x target.
Several bench files (e.g. H100 and H200) are told apart by line marker and label.
Needs matplotlib only.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OPS = ("hc_post", "hc_pre", "hc_post_pre", "hc_head")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def load(path, schema):
    with open(path) as f:
        d = json.load(f)
    if d.get("schema") != schema:
        sys.exit(f"{path}: schema {d.get('schema')!r}, expected {schema!r}")
    return d


def series(rows, op, H, key):
    pts = sorted((r["T"], r[key]) for r in rows
                 if r["op"] == op and r["H"] == H and r.get(key) is not None)
    return [p[0] for p in pts], [p[1] for p in pts]


def finish_axis(ax, ylabel, title, ylog=False, title_size=None):
    """The styling every panel shares: log2 tokens axis, labels, grid, legend."""
    ax.set_xscale("log", base=2)
    if ylog:
        ax.set_yscale("log")
    ax.set_xlabel("tokens T")
    ax.set_ylabel(ylabel)
    ax.set_title(title, **({"fontsize": title_size} if title_size else {}))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="mhc_bench --json output(s)")
    ap.add_argument("-o", "--output", default="mhc_bench.png")
    ap.add_argument("--compare", nargs="*", default=[], help="compare_torch.py --json output(s)")
    ap.add_argument("--title", default=None)
    a = ap.parse_args(argv)

    benches = [load(p, "mhc_bench/1") for p in a.json]
    compares = [load(p, "mhc_compare_torch/1") for p in a.compare]
    npanel = 3 if compares else 2
    fig, axes = plt.subplots(1, npanel, figsize=(7.5 * npanel, 6.2))
    cmap = plt.get_cmap("tab10")
    pairs = sorted({(r["op"], r["H"]) for b in benches for r in b["rows"]},
                   key=lambda p: (OPS.index(p[0]) if p[0] in OPS else 99, p[1]))
    colour = {p: cmap(i % 10) for i, p in enumerate(pairs)}
    multi = len(benches) > 1

    ax_t, ax_p = axes[0], axes[1]
    for bi, b in enumerate(benches):
        dev = b["device"]["name"]
        mk = MARKERS[bi % len(MARKERS)]
        tag = f" [{dev}]" if multi else ""
        for op, H in pairs:
            c = colour[(op, H)]
            for key, ls, lab in (("cold_us", "-", "cold"), ("warm_us", "--", "warm")):
                x, y = series(b["rows"], op, H, key)
                if x:
                    ax_t.plot(x, y, ls, color=c, marker=mk, ms=3.5,
                              label=f"{op} H={H} {lab}{tag}")
            for key, ls in (("pct_copy_cold", "-"), ("pct_copy_warm", "--")):
                x, y = series(b["rows"], op, H, key)
                if x:
                    ax_p.plot(x, y, ls, color=c, marker=mk, ms=3.5,
                              label=f"{op} H={H}{tag}" if key == "pct_copy_cold" else None)

    finish_axis(ax_t, "µs per call (median of graph replays)",
                "latency (solid: cold L2, dashed: warm L2)", ylog=True)

    copies = ", ".join(f"{b['device']['name']}: {b['copy']['gbps']:.0f} GB/s" for b in benches)
    finish_axis(ax_p, "% of copy bandwidth (byte model: peers-perf.md §4.1)",
                f"% of measured D2D copy bandwidth ({copies})", title_size=9)
    ax_p.axhline(80, color="k", lw=1, ls=":")
    ax_p.axhline(85, color="r", lw=1, ls=":")
    ax_p.text(1, 80, " 80 % target (T ≥ 2048)", va="bottom", fontsize=7)
    ax_p.text(1, 85, " 85 % hc_post", va="bottom", fontsize=7, color="r")
    ax_p.axvspan(2048, max([r["T"] for b in benches for r in b["rows"]] + [2048]) * 1.5,
                 color="0.9", zorder=0)
    ax_p.set_ylim(bottom=0)

    if compares:
        ax_s = axes[2]
        for ci, cmp in enumerate(compares):
            mk = MARKERS[ci % len(MARKERS)]
            tag = f" [{cmp['info'].get('device', '')}]" if len(compares) > 1 else ""
            cpairs = sorted({(r["op"], r["H"]) for r in cmp["rows"]},
                            key=lambda p: (OPS.index(p[0]) if p[0] in OPS else 99, p[1]))
            for op, H in cpairs:
                c = colour.get((op, H), cmap(len(colour) % 10))
                for key, ls, lab in (("speedup_compile", "-", "vs compile"),
                                     ("speedup_eager", "--", "vs eager")):
                    x, y = series(cmp["rows"], op, H, key)
                    if x:
                        ax_s.plot(x, y, ls, color=c, marker=mk, ms=3.5,
                                  label=f"{op} H={H} {lab}{tag}")
        ax_s.axhline(10, color="k", lw=1, ls=":")
        ax_s.text(1, 10, " 10x vs torch.compile (boundary, T ≤ 128)", va="bottom", fontsize=7)
        finish_axis(ax_s, "speed-up of libmhc (×)", "libmhc vs PyTorch (CUDA graphs, warm L2)",
                    ylog=True)

    fig.suptitle(a.title or "mhc_bench: " + ", ".join(sorted({b["device"]["name"]
                                                              for b in benches})))
    fig.tight_layout()
    fig.savefig(a.output, dpi=130)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
