#!/usr/bin/env python3
"""Summarizes alternated e2e runs of two builds (scripts/bench.sh --against REV).

Usage: e2e_compare.py BASE_LABEL HEAD_LABEL DIR...  where each DIR is an e2e --out directory
named base-N or head-N. Prints, per run, the ring's stamped one-way p50 before and after the
pipeline, the feed -> hedger p50 at every rate and its ratio to the ring (before / after),
and the hedger's CPU per event read at saturation; then each build's median and the ratio of
the medians (this tree over REV: below 1 is better now)."""
import json
import os
import statistics
import sys


def load(d):
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    ring_b = s["ring_one_way"]["one_way"]["p50_ns"] if s.get("ring_one_way") else None
    after = s.get("ring_one_way_after")
    ring_a = after["one_way"]["p50_ns"] if after else None
    out = {"ring before": ring_b, "ring after": ring_a}
    for r in s["runs"]:
        if r["rate"] == "max":
            # Saturation: the stage is the backlog's queueing, not a latency; the CPU is the
            # figure.
            out["CPU ns per event at max"] = r["hedger_cpu_ns_per_event"]
            continue
        stage = r["stages"]["recv_to_read"]["p50_ns"]
        out[f"feed->hedger p50 at {r['rate']}"] = stage
        if ring_b:
            out[f"ratio to ring at {r['rate']}"] = stage / ring_b
    return out


def fmt(v):
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:,.0f}"


def main():
    base, head, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    runs = {"base": [], "head": []}
    for d in dirs:
        tag = os.path.basename(d.rstrip("/")).split("-")[0]
        try:
            runs[tag].append((os.path.basename(d), load(d)))
        except (OSError, KeyError, ValueError) as e:
            print(f"{d}: no usable summary.json ({e})", file=sys.stderr)
    keys = []
    for rs in runs.values():
        for _, r in rs:
            keys += [k for k in r if k not in keys]
    label = {"base": base, "head": head}
    print("| run | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for tag in ("base", "head"):
        for name, r in runs[tag]:
            print(f"| {label[tag]} {name.split('-')[-1]} | " + " | ".join(fmt(r.get(k)) for k in keys) + " |")
    print()
    print(f"| median of the runs | {base} | {head} | ratio |")
    print("|---|---:|---:|---:|")
    for k in keys:
        m = {}
        for tag in ("base", "head"):
            vals = [r[k] for _, r in runs[tag] if r.get(k) is not None]
            m[tag] = statistics.median(vals) if vals else None
        ratio = m["head"] / m["base"] if m["base"] and m["head"] is not None else None
        print(f"| {k} | {fmt(m['base'])} | {fmt(m['head'])} | {fmt(ratio)} |")


if __name__ == "__main__":
    main()
