"""The Redis Cluster section of BENCHMARKS.md, from the output of
`cargo bench --bench redis_cluster` (target/bench-results/redis_cluster.jsonl)
and the command that produced it (redis_cluster-command.json beside it).

Every figure is read from those files or computed from them here; the
capacity estimate states each assumption it adds. Used by scripts/bench-report
(the whole file) and scripts/bench-redis-cluster (this section alone).
Python 3 standard library only.
"""

import json
import math
import os
import statistics

from bench_sustained import read_jsonl

RESULTS = "redis_cluster.jsonl"
COMMAND = "redis_cluster-command.json"
HEADING = "## Redis Cluster"

# The estimate's target and its assumptions (not measured: chosen).
TARGET_TICKS = 10_000_000
TARGET_PROCESSORS = 20
# What makes a run long enough to claim a rate (as benches/harness/scenario.rs).
SUSTAINED_TICKS = 15_000_000
SUSTAINED_SECS = 30.0
# Keep each master's main thread at most this busy, for headroom.
MASTER_BUSY = 0.5


def mb(b):
    return f"{b / 1e6:.1f}"


def middle_seconds(r):
    """Per-second applied rates without the first and last (partial) second."""
    v = r.get("applied_per_s", [])
    return v[1:-1] if len(v) > 2 else v


def per_tick(runs):
    """Median over runs of each per-tick figure, summed over the masters."""
    def med(f):
        vals = [f(r) for r in runs if r.get("ticks")]
        return statistics.median(vals) if vals else 0.0

    return {
        "cpu_us": med(lambda r: sum(m["cpu_s"] for m in r["per_master"]) * 1e6 / r["ticks"]),
        "net_bytes": med(lambda r: sum(m["net_in_bytes"] + m["net_out_bytes"] for m in r["per_master"]) / r["ticks"]),
        "pubsub_per_fwd": med(lambda r: sum(m["pubsub_bytes"] for m in r["per_master"]) / max(r["forwarded"], 1)),
        "fwd_share": med(lambda r: r["forwarded"] / r["ticks"]),
        "max_master_share": med(lambda r: max(m["cpu_s"] for m in r["per_master"]) / max(sum(m["cpu_s"] for m in r["per_master"]), 1e-9)),
    }


def estimate(p, masters_measured):
    """What TARGET_TICKS over TARGET_PROCESSORS needs, from per-tick figures `p`."""
    fwd_target = (TARGET_PROCESSORS - 1) / TARGET_PROCESSORS
    # Upper bound: every Redis cost taken as growing with the forwarded share.
    scale = fwd_target / p["fwd_share"] if p["fwd_share"] > 0 else 1.0
    cores = p["cpu_us"] * scale * TARGET_TICKS / 1e6
    masters = max(1, math.ceil(cores / MASTER_BUSY))
    net_total = p["net_bytes"] * scale * TARGET_TICKS
    pubsub_total = p["pubsub_per_fwd"] * fwd_target * TARGET_TICKS
    return {
        "fwd_target": fwd_target,
        "scale": scale,
        "cores": cores,
        "masters": masters,
        "net_per_master_gbit": net_total * 8 / masters / 1e9,
        "pubsub_per_master_mb": pubsub_total / masters / 1e6,
        "masters_measured": masters_measured,
    }


def section(results_dir):
    """The markdown of the section (heading included)."""
    rows = [r for r in read_jsonl(os.path.join(results_dir, RESULTS)) if r.get("kind") == "redis_cluster"]
    if not rows:
        return f"{HEADING}\n\n_No results: run `scripts/bench-redis-cluster`._\n"
    try:
        cmd = json.load(open(os.path.join(results_dir, COMMAND)))
    except (OSError, ValueError):
        cmd = {}
    out = [HEADING, ""]
    out.append(
        "What Redis carries per master when tickshard runs on a Redis Cluster (`benches/redis_cluster.rs`): "
        "a private cluster of 1 and of 3 masters (no replicas, so every figure is the masters' own "
        "work), interleaved, 3 processors given every node as seeds, `feed-sim` in round-robin "
        "mode at a fixed rate; each run counts only when every stored symbol equals the feed's "
        "ground truth. Per master, deltas over the run of its own `INFO` (CPU = `used_cpu_sys` + "
        "`used_cpu_user`; network bytes in and out; `SPUBLISH` and `EVALSHA` calls), and the "
        "pub/sub bytes: the inbox payload bytes the processors received "
        "(`tickshard_cluster_inbox_bytes_total`), each inbox counted on the master serving its slot."
    )
    out.append("")
    if cmd:
        out.append(f"Machine: {cmd.get('machine', '?')}. Command (load average before / after: "
                   f"{cmd.get('load_before', '?')} / {cmd.get('load', '?')}, {cmd.get('seconds', 0):.0f} s, "
                   f"at commit `{cmd.get('commit', '?')}`, {cmd.get('date', '?')}):")
        out.append("")
        out.append("```")
        out.append(cmd.get("cmd", "?"))
        out.append("```")
        out.append("")
    out.append("A rate counts only from a run held past every buffer (at least 15M ticks or 30 s of "
               "feeding); shorter runs are marked and not claimed.")
    out.append("")
    out.append("| masters | run | ticks | fed (s) | exact | sustained | applied ticks/s, each whole second (min / median / max) | forwarded |")
    out.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mid = middle_seconds(r)
        rates = (f"{min(mid):,} / {int(statistics.median(mid)):,} / {max(mid):,}" if mid else "-")
        held = r["ticks"] >= SUSTAINED_TICKS or r["secs"] >= SUSTAINED_SECS
        out.append(f"| {r['masters']} | {r['run']} | {r['ticks']:,} | {r['secs']:.1f} | {'yes' if r['exact'] else 'NO'} "
                   f"| {'yes' if held else 'no (not claimed)'} | {rates} | {r['forwarded']:,} |")
    out.append("")
    out.append("| masters | run | master | inboxes | CPU s | % of a core | net in MB | net out MB | pub/sub MB | SPUBLISH | EVALSHA |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for m in r["per_master"]:
            out.append(f"| {r['masters']} | {r['run']} | :{m['port']} | {', '.join(m['inboxes']) or '-'} | {m['cpu_s']:.2f} "
                       f"| {m['cpu_share'] * 100:.0f} | {mb(m['net_in_bytes'])} | {mb(m['net_out_bytes'])} "
                       f"| {mb(m['pubsub_bytes'])} | {m['spublish_calls']:,} | {m['evalsha_calls']:,} |")
    out.append("")
    by_masters = {}
    for r in rows:
        if r.get("exact"):
            by_masters.setdefault(r["masters"], []).append(r)
    out.append("Per tick, summed over the masters (median over the exact runs):")
    out.append("")
    out.append("| masters | Redis CPU µs/tick | network bytes/tick (in + out) | pub/sub bytes per forwarded tick | forwarded share | busiest master's share of the CPU |")
    out.append("|---|---|---|---|---|---|")
    for n in sorted(by_masters):
        p = per_tick(by_masters[n])
        out.append(f"| {n} | {p['cpu_us']:.2f} | {p['net_bytes']:.0f} | {p['pubsub_per_fwd']:.1f} "
                   f"| {p['fwd_share']:.2f} | {p['max_master_share']:.2f} |")
    out.append("")
    base = max(by_masters) if by_masters else None
    if base:
        p = per_tick(by_masters[base])
        e = estimate(p, base)
        out.append(f"### On paper: {TARGET_TICKS:,} ticks/s over {TARGET_PROCESSORS} processors")
        out.append("")
        out.append(
            f"Computed by `scripts/bench_redis_cluster.py` from the {base}-master figures above. In "
            f"round-robin over {TARGET_PROCESSORS} processors, {e['fwd_target']:.2f} of the ticks are "
            f"forwarded (against {p['fwd_share']:.2f} measured with 3). Taking every Redis cost "
            f"(CPU and bytes) as growing with the forwarded share, an upper bound since the "
            f"flushes do not, multiplies the per-tick figures by {e['scale']:.2f}:"
        )
        out.append("")
        out.append("| | needs |")
        out.append("|---|---|")
        out.append(f"| Redis CPU | {e['cores']:.1f} cores ({p['cpu_us']:.2f} µs/tick × {e['scale']:.2f} × {TARGET_TICKS:,}/s) |")
        out.append(f"| masters, each main thread at most {MASTER_BUSY:.0%} busy (assumed headroom) | {e['masters']} |")
        out.append(f"| network per master (in + out) | {e['net_per_master_gbit']:.2f} Gbit/s |")
        out.append(f"| pub/sub payload per master | {e['pubsub_per_master_mb']:.0f} MB/s |")
        out.append("")
        out.append(
            "Measured on one shared machine (Redis, the feed and the processors on the same cores), "
            "so the CPU per tick includes time lost to sharing; a master on a core of its own does "
            "better. The busiest master's share shows how evenly the slots spread the load: with "
            "64 partitions over the masters and one inbox per processor, a master with more inboxes "
            "carries more pub/sub."
        )
        out.append("")
    return "\n".join(out)


def replace_section(text, new_section):
    """`text` with its `## Redis Cluster` section replaced (or added before `## Plot`)."""
    start = text.find(HEADING + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(HEADING))
        end = len(text) if end < 0 else end + 1
        return text[:start] + new_section.rstrip("\n") + "\n\n" + text[end:]
    anchor = text.find("## Plot")
    if anchor < 0:
        return text.rstrip("\n") + "\n\n" + new_section
    return text[:anchor] + new_section.rstrip("\n") + "\n\n" + text[anchor:]
