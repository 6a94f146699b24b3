#!/usr/bin/env python3
"""Recomputes the session-7 tables of docs/benchmarks.md from the results.jsonl files here: per-round ratios
etmlx (default options) ÷ mlx-lm of the same round, median [min, max], for the final builds (0340c86 and 06bcf0c,
which stage every W1/W2 call alike; 06bcf0c only stops staging calls whose products stay small, i.e. W0's), and
each staging lever ÷ etmlx's default of the same round."""
import json, statistics, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FINAL = {"W1 bf16": ["r5-work-w1", "r7-final-w0-w1bf16"], "W1 4w": ["r5-work-w1", "r8-final-w0-w1q-w2"],
         "W1 8w": ["r4-work-all", "r8-final-w0-w1q-w2"], "W0 bf16": ["r7-final-w0-w1bf16", "r8-final-w0-w1q-w2"],
         "W2 bf16": ["r4-work-all", "r8-final-w0-w1q-w2"]}
TESTS = ["pp128", "pp512", "pp2048", "tg128"]


def rounds(run: str, workload: str):
    by = {}
    for line in (HERE / run / "rounds/results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "error" in r or f"{r['workload']} {r['variant']}" != workload:
            continue
        key = r["runtime"] + (f" ({r['lever']})" if r.get("lever") else "")
        by.setdefault((run, r["round"]), {})[key] = r
    return by


def rate(r, test):
    return next((t["tok_s_median"] for t in r.get("prefill", []) + r.get("decode", []) if t["test"] == test), None)


def spread(v):
    return f"{statistics.median(v):.2f} [{min(v):.2f}, {max(v):.2f}]"


def ratios(all_rounds, mine, theirs, test):
    out = []
    for runs in all_rounds.values():
        if mine in runs and theirs in runs:
            a, b = rate(runs[mine], test), rate(runs[theirs], test)
            if a and b:
                out.append(a / b)
    return out


print("Final builds, etmlx default ÷ mlx-lm per round, median [min, max] (rounds):")
for w, runs in FINAL.items():
    all_rounds = {}
    for run in runs:
        all_rounds.update(rounds(run, w))
    cells = []
    for t in TESTS:
        v = ratios(all_rounds, "etmlx", "mlx-lm", t)
        behind = sum(x < 1 for x in v)
        cells.append(f"{t} {spread(v)} ({len(v)} rounds, behind in {behind})" if v else f"{t} -")
    tg = [rate(r["etmlx"], "tg128") for r in all_rounds.values() if "etmlx" in r]
    print(f"  {w}: " + "; ".join(cells) + f"; etmlx tg128 {statistics.median(tg):.0f} [{min(tg):.0f}, {max(tg):.0f}] tok/s")
print()
print("Levers ÷ etmlx default of the same round (prefill tests), per run:")
for run in sorted(p.name for p in HERE.iterdir() if (p / "rounds/results.jsonl").exists()):
    workloads = sorted({f"{json.loads(l)['workload']} {json.loads(l)['variant']}"
                        for l in (HERE / run / "rounds/results.jsonl").read_text().splitlines()})
    for w in workloads:
        rs = rounds(run, w)
        levers = sorted({k for runs in rs.values() for k in runs if k.startswith("etmlx (")})
        for lever in levers:
            cells = [f"{t} {spread(v)}" for t in TESTS[:3] if (v := ratios(rs, lever, "etmlx", t))]
            print(f"  {run} {w} {lever}: " + "; ".join(cells))
