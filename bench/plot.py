#!/usr/bin/python3
"""Draws the benchmark figures of docs/BENCHMARKS.md from bench/results/*.csv.

  bench/plot.py [--results bench/results] [--out docs]

Writes (each only when its input exists):
  docs/bench-latency.png     latency distributions (CDF, log scale): rnotify and
                             the peer tools (peers_samples.csv), and the
                             bench_latency transports (latency_samples.csv)
  docs/bench-throughput.png  events/s of a burst: rnotify lanes against raw
                             inotify/fanotify, live and queued (throughput.csv),
                             and the peer tools (peers_burst.csv)
  docs/bench-scale.png       fan-out deliveries/s and daemon CPU (fanout.csv),
                             1M-directory set-up time and memory (tree.csv)

Needs python3-matplotlib (Debian). The sample files are not committed (they
are large); run bench/run_all.sh first.
"""
import argparse
import csv
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_samples(path):
    lanes = OrderedDict()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            lanes.setdefault(row["transport"], []).append(int(row["latency_ns"]) / 1000.0)
    return lanes


def cdf(ax, lanes, title):
    for name, values in lanes.items():
        values = sorted(values)
        n = len(values)
        ys = [(i + 1) / n for i in range(n)]
        ax.plot(values, ys, label=f"{name} (p50 {values[n // 2]:,.0f} µs, n={n})", linewidth=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("create → event, µs (log scale)")
    ax.set_ylabel("fraction of events")
    ax.axvline(100, color="grey", linestyle=":", linewidth=1)
    ax.axvline(1000, color="grey", linestyle="--", linewidth=1)
    ax.text(100, 0.02, " 100 µs", color="grey", fontsize=7)
    ax.text(1000, 0.02, " 1 ms", color="grey", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")


def plot_latency(results, out):
    panels = []
    peers = os.path.join(results, "peers_samples.csv")
    transports = os.path.join(results, "latency_samples.csv")
    if os.path.exists(peers):
        panels.append((read_samples(peers), "rnotify and the peer tools (bench_peers)"))
    if os.path.exists(transports):
        panels.append((read_samples(transports), "rnotify transports (bench_latency)"))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 4.5 * len(panels)), squeeze=False)
    for ax, (lanes, title) in zip(axes[:, 0], panels):
        cdf(ax, lanes, title)
    fig.tight_layout()
    path = os.path.join(out, "bench-latency.png")
    fig.savefig(path, dpi=110)
    return path


def bars(ax, labels, values, colors, title, ylabel, notes=None):
    xs = range(len(labels))
    ax.bar(xs, values, color=colors)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    for x, v, note in zip(xs, values, notes or [""] * len(values)):
        ax.text(x, v, f"{v / 1000:,.0f}k{note}", ha="center", va="bottom", fontsize=7)


def plot_throughput(results, out):
    panels = []
    path = os.path.join(results, "throughput.csv")
    if os.path.exists(path):
        rows = [r for r in read_rows(path) if r["lane"] != "none"]
        for mode in ("live", "queued"):
            sel = [r for r in rows if r["mode"] == mode and r["round"] == "1"]
            if sel:
                panels.append(("throughput", mode, sel))
    peers = os.path.join(results, "peers_burst.csv")
    if os.path.exists(peers):
        panels.append(("peers", "", read_rows(peers)))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (kind, mode, sel) in zip(axes[0], panels):
        if kind == "throughput":
            labels = [r["lane"] for r in sel]
            values = [float(r["events_per_s"]) for r in sel]
            colors = ["#888888" if r["lane"] in ("inotify", "fanotify") else "#1f77b4" for r in sel]
            notes = ["" if r["complete"] == "1" and r["overflows"] == "0" else " LOSS" for r in sel]
            what = ("reading during the burst (producer-bound)" if mode == "live"
                    else "burst queued first, then read (consumer-bound)")
            bars(ax, labels, values, colors, f"{int(sel[0]['events']):,} events, {what}", "events/s", notes)
        else:
            labels = [r["lane"] for r in sel]
            values = [float(r["full_report_events_per_s"]) for r in sel]
            colors = ["#888888" if r["lane"] == "inotify" else "#1f77b4" if r["lane"].startswith("rnotify")
                      else "#ff7f0e" for r in sel]
            bars(ax, labels, values, colors, f"{int(sel[0]['events']):,} events, peer tools (bench_peers)",
                 "events/s until every file was reported")
            top = max(values) if values else 1
            for x, r in enumerate(sel):
                if r["complete"] == "1":
                    continue
                half = int(r["events"]) // 2
                shown = max(int(r["creates"]), int(r["deletes"]))
                why = "exited" if r.get("note") else "incomplete"
                ax.text(x, top * 0.03, f"{why}: {100 * shown / half:.0f}% of files", rotation=90, ha="center",
                        va="bottom", fontsize=7, color="#d62728")
    fig.tight_layout()
    path = os.path.join(out, "bench-throughput.png")
    fig.savefig(path, dpi=110)
    return path


def plot_scale(results, out):
    fanout = os.path.join(results, "fanout.csv")
    tree = os.path.join(results, "tree.csv")
    if not os.path.exists(fanout) and not os.path.exists(tree):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    if os.path.exists(fanout):
        ax = axes[0]
        big = os.path.join(results, "fanout_queue1m.csv")
        for path, style in ((fanout, "-"), (big, "--")):
            if not os.path.exists(path):
                continue
            rows = read_rows(path)
            for backend in OrderedDict((r["backend"], 1) for r in rows):
                sel = [r for r in rows if r["backend"] == backend]
                lost = any(r["deliveries"] != r["deliveries_expected"] for r in sel)
                ax.plot([int(r["clients"]) for r in sel], [float(r["deliveries_per_s"]) for r in sel], marker="o",
                        linestyle=style,
                        label=f"{backend}, queue {sel[0].get('max_queued_events', '?')}" + (" (LOSS)" if lost else ""))
        ax.axhline(1e6, color="grey", linestyle="--", linewidth=1)
        ax.text(1, 1e6, " target 1M/s", color="grey", fontsize=7, va="bottom")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("clients on one directory")
        ax.set_ylabel("deliveries/s (all clients)")
        ax.set_title("fan-out through one rnotifyd (unix socket)", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8)
    if os.path.exists(tree):
        rows = read_rows(tree)
        ax = axes[1]
        labels = [r["backend"] for r in rows]
        setup = [float(r["setup_s"]) for r in rows]
        rss = [int(r["rss_kb"]) / 1024 for r in rows]
        kmem = [int(r["kmem_bytes"]) / 1048576 for r in rows]
        xs = range(len(labels))
        w = 0.27
        ax.bar([x - w for x in xs], setup, w, label="watch set-up, s")
        ax2 = ax.twinx()
        ax2.bar([x for x in xs], rss, w, color="#2ca02c", label="rnotifyd RSS after set-up, MB")
        ax2.bar([x + w for x in xs], kmem, w, color="#d62728", label="kernel (cgroup kmem), MB")
        for x, v in zip(xs, setup):
            ax.text(x - w, v, f"{v:.2f} s", ha="center", va="bottom", fontsize=7)
        for x, v, k in zip(xs, rss, kmem):
            ax2.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
            ax2.text(x + w, k, f"{k:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels)
        ax.set_ylabel("seconds")
        ax2.set_ylabel("MB")
        ax.set_title(f"{int(rows[0]['dirs']):,} directories, one recursive watch", fontsize=10)
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        names = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
        ax.legend(handles, names, fontsize=8, loc="upper right")
    fig.tight_layout()
    path = os.path.join(out, "bench-scale.png")
    fig.savefig(path, dpi=110)
    return path


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(root, "bench", "results"))
    parser.add_argument("--out", default=os.path.join(root, "docs"))
    args = parser.parse_args()
    made = [p for p in (plot_latency(args.results, args.out), plot_throughput(args.results, args.out),
                        plot_scale(args.results, args.out)) if p]
    for p in made:
        print("wrote", p)
    if not made:
        print("plot.py: nothing to plot in", args.results, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
