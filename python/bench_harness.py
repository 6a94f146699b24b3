#!/usr/bin/env python3
"""The side-by-side benchmark harness: one workload table, every runtime, one machine per `run`.

    # on a machine: run the plan for its kind, one child process per (runtime, workload), results appended
    python python/bench_harness.py run --plan cpu --out DIR [--only REGEX] [-p 128 -n 128 -r 3] [paths...]
    python python/bench_harness.py run --plan gpu --out DIR [--only REGEX] [-p 128,512,2048 -n 128,512 -r 5]
    # anywhere: turn result folders into docs tables (markdown) and a chart (SVG or PNG, needs matplotlib)
    python python/bench_harness.py report DIR [DIR ...] --markdown OUT.md --chart OUT.svg  (or .png)

Runtimes: `etmlx` (`etmlx bench --json`), and the peers of `bench_peers.py`: `mlx-lm` (same MLX library),
`hf` (HF transformers, PyTorch eager), `xnnpack` (the official ExecuTorch runtime with an XNNPACK export, CPU),
`llama.cpp` (`llama-bench` on GGUF files; CPU plan, `--llama-bench BIN`).
Each runs in its own process with a timeout; a failure is recorded with its reason and the plan goes on.

`DIR/results.jsonl` gets one record per run: the runtime's JSON (prefill/decode tests shaped like
`etmlx bench --json`) plus `workload`, `variant`, `runtime`, `machine` (CPU, cores, memory, GPU, measured copy
bandwidth), `load_before`/`load_after` (1-minute load average), `command`, `date`; or `error` instead of results.
Workloads (docs/benchmarks.md): W0 SmolLM2-135M, W1 Llama-3.2-1B shape, W2 Llama-3.1-8B shape.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ETMLX_HOME = Path(os.environ.get("ETMLX_HOME", Path.home() / ".cache/etmlx"))

# (workload, variant, runtime, options). Options: `pte` (etmlx/xnnpack), `gguf` (llama.cpp), `synthetic` (etmlx: weight-stripped
# export, --synthetic-weights), `hf_dir` (peers: real weights), `real` (xnnpack: the .pte has real weights).
# `cpp` (xnnpack: the C++ runner instead of the Python bindings). Paths use {smollm2} (the cached SmolLM2
# folder), {models} (the stripped benchmark exports) and {xnnpack} (the XNNPACK exports on the GPU machine).
PLANS = {
    "cpu": [
        ("W0", "fp32", "etmlx", dict(pte="{smollm2}/pte/smollm2-fp32.pte")),
        ("W0", "bf16", "etmlx", dict(pte="{smollm2}/pte/smollm2-bf16.pte")),
        ("W0", "fp32", "mlx-lm", dict(hf_dir="{smollm2}/hf")),
        ("W0", "bf16", "mlx-lm", dict(hf_dir="{smollm2}/hf")),
        ("W0", "fp32", "hf", dict(hf_dir="{smollm2}/hf")),
        ("W0", "fp32", "xnnpack", dict(pte="{smollm2}/xnnpack/out-fp32/model.pte", real=True)),
        ("W0", "8da4w", "xnnpack", dict(pte="{smollm2}/xnnpack/out-8da4w/model.pte", real=True)),
        # The plain recipe (no LLM custom ops), the one the GPU machine's host can run: shows what it costs.
        ("W0", "8da4w-plain", "xnnpack", dict(pte="{smollm2}/xnnpack/out-8da4w-plain/model.pte", real=True, cpp=True)),
        # llama.cpp on the same weights converted to GGUF (convert_hf_to_gguf.py), and the published Q4_1 file.
        ("W0", "fp32", "llama.cpp", dict(gguf="{smollm2}/gguf/smollm2-f32.gguf")),
        ("W0", "bf16", "llama.cpp", dict(gguf="{smollm2}/gguf/smollm2-bf16.gguf")),
        ("W0", "q4_1", "llama.cpp", dict(gguf="{smollm2}/gguf/SmolLM2-135M-Instruct.Q4_1.gguf")),
    ],
    "gpu": [
        *[(w, v, "etmlx", dict(pte=f"{{models}}/{w}-{v}.pte", synthetic=True))
          for w, vs in (("W0", ("fp32", "bf16", "8w", "4w")), ("W1", ("bf16", "8w", "4w")), ("W2", ("bf16", "4w")))
          for v in vs],
        *[(w, v, "mlx-lm", {})
          for w, vs in (("W0", ("bf16", "4w")), ("W1", ("bf16", "8w", "4w")), ("W2", ("bf16", "4w"))) for v in vs],
        *[(w, "bf16", "hf", {}) for w in ("W0", "W1", "W2")],
        # The official CPU path on the GPU machine's host CPU: the C++ runtime (tools/xnnpack-bench), since the
        # wheel's Python bindings need the exporting machine's CPython and torch. Plain recipe: see xnnpack_bench.cpp.
        ("W0", "8da4w", "xnnpack", dict(pte="{xnnpack}/model-8da4w-plain.pte", real=True, cpp=True)),
    ],
}
DEFAULT_LENGTHS = {"cpu": ("128", "128", 3), "gpu": ("128,512,2048", "128,512", 5)}


def sh(cmd: list[str], timeout: float = 30) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def copy_bandwidth(python: str, gpu: bool) -> dict:
    """Measured copy bandwidth (read + write bytes / time, best of 10 copies of 1 GiB): the roofline's denominator."""
    code = """
import json, time, torch
dev = 'cuda' if %s else 'cpu'
n = 1 << 30
a = torch.ones(n, dtype=torch.uint8, device=dev); b = torch.empty_like(a)
sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
best = 1e9
for _ in range(10):
    sync(); t = time.perf_counter(); b.copy_(a); sync(); best = min(best, time.perf_counter() - t)
print(json.dumps({'copy_bandwidth_bytes_s': 2 * n / best, 'copy_bandwidth_method': dev + ' torch copy_ of 1 GiB, read+write, best of 10'}))
""" % gpu
    out = sh([python, "-c", code], timeout=300)
    try:
        return json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        return {"copy_bandwidth_bytes_s": None, "copy_bandwidth_method": "measurement failed"}


def machine_info(plan: str, python: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None)
    info = dict(host=platform.node(), kind=plan, cpu=cpu, cores=os.cpu_count(), memory_bytes=mem,
                os=platform.platform())
    if plan == "gpu":
        info["gpu"] = sh(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    info.update(copy_bandwidth(python, plan == "gpu"))
    return info


def expand(path: str, args) -> str:
    return path.format(smollm2=args.smollm2, models=args.models, xnnpack=args.xnnpack_models)


def command_for(workload: str, variant: str, runtime: str, opts: dict, args, device: str) -> list[str]:
    lengths = ["-p", args.prompt, "-n", args.gen, "-r", str(args.reps)]
    if opts.get("cpp"):
        threads = ["--threads", str(os.cpu_count() or 1)]
        return [args.xnnpack_bench, expand(opts["pte"], args), *lengths, *threads]
    if runtime == "etmlx":
        cmd = [args.etmlx, "bench", expand(opts["pte"], args), *lengths, "--json", "--device", device]
        cmd += ["--synthetic-weights"] if opts.get("synthetic") else []
        return cmd + shlex.split(args.etmlx_args) + shlex.split(opts.get("lever_args", ""))
    python = {"mlx-lm": args.python_mlx, "hf": args.python_torch, "xnnpack": args.python_executorch,
              "llama.cpp": sys.executable}[runtime]
    cmd = [python, str(HERE / "bench_peers.py"), runtime, "--shape", workload, "--dtype", variant,
           "--device", device, "--mlx-lm-path", args.mlx_lm_path, *lengths]
    if "hf_dir" in opts:
        cmd += ["--hf-dir", expand(opts["hf_dir"], args)]
    if "pte" in opts:
        cmd += ["--pte", expand(opts["pte"], args)]
    if "gguf" in opts:
        cmd += ["--gguf", expand(opts["gguf"], args), "--llama-bench", args.llama_bench]
    if opts.get("real"):
        cmd.append("--pte-has-real-weights")
    return cmd


def load_average() -> float:
    return os.getloadavg()[0]


def run_plan(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "gpu" if args.plan == "gpu" else "cpu"
    prompt, gen, reps = DEFAULT_LENGTHS[args.plan]
    args.prompt, args.gen, args.reps = args.prompt or prompt, args.gen or gen, args.reps or reps
    only = re.compile(args.only) if args.only else None
    machine = machine_info(args.plan, args.python_torch)
    print(f"[harness] machine: {json.dumps(machine)}", flush=True)
    entries = with_lever_sets([e for e in PLANS[args.plan] if not only or only.search(f"{e[2]} {e[0]}-{e[1]}")],
                              args.lever_set)
    failures = 0
    with open(out / "log.txt", "a") as log:
        for round_, entry in scheduled(entries, args.rounds):
            failures += run_entry(entry, round_, machine, device, args, out, log)
    return 1 if failures else 0


def with_lever_sets(entries: list, lever_sets: list[str]) -> list:
    """Each etmlx entry, then one copy of it per `--lever-set NAME=FLAGS` (run with those extra bench flags and
    labelled NAME), so that with --rounds every lever runs in each round next to the default and the peers."""
    out = []
    for e in entries:
        out.append(e)
        if e[2] == "etmlx":
            for spec in lever_sets:
                name, _, flags = spec.partition("=")
                out.append((e[0], e[1], e[2], dict(e[3], lever=name, lever_args=flags)))
    return out


def scheduled(entries: list, rounds: int | None):
    """(round, entry) in run order. Without rounds: the plan's order, once. With N rounds: each workload's runtimes
    back to back (a GPU machine's speed drifts over minutes, so only neighbours compare), the order reversed every
    other round so that neither runtime always goes first."""
    if not rounds:
        yield from ((None, e) for e in entries)
        return
    groups: dict[tuple, list] = {}
    for e in entries:
        groups.setdefault((e[0], e[1]), []).append(e)
    for r in range(1, rounds + 1):
        for members in groups.values():
            yield from ((r, e) for e in (members if r % 2 else members[::-1]))


def run_entry(entry, round_, machine, device, args, out: Path, log) -> int:
    """Runs one (workload, variant, runtime) and appends its record; returns 1 if it failed."""
    workload, variant, runtime, opts = entry
    label = f"{runtime} {workload}-{variant}" + (f" ({opts['lever']})" if opts.get("lever") else "")
    cmd = command_for(workload, variant, runtime, opts, args, device)
    record = dict(workload=workload, variant=variant, runtime=runtime, machine=machine,
                  command=" ".join(shlex.quote(c) for c in cmd), load_before=load_average(),
                  mlx_env={k: v for k, v in os.environ.items() if k.startswith("MLX_")},
                  lever=opts.get("lever", args.lever),
                  date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    if round_ is not None:
        record["round"] = round_
    missing = [p for p in (expand(opts[k], args) for k in ("pte", "hf_dir", "gguf") if k in opts) if not Path(p).exists()]
    t0 = time.time()
    if missing:
        record["error"] = f"missing input: {missing[0]}"
    else:
        log.write(f"== {label}: {record['command']}\n")
        log.flush()
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, timeout=args.timeout)
            last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
            if res.returncode != 0 or not last.startswith("{"):
                record["error"] = f"exit {res.returncode}; see log.txt"
            else:
                record.update(json.loads(last))
                record.setdefault("weights", "real" if opts.get("real") else "random")
        except subprocess.TimeoutExpired:
            record["error"] = f"timed out after {args.timeout} s"
    record["seconds"] = round(time.time() - t0, 1)
    record["load_after"] = load_average()
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    summary = record.get("error") or ", ".join(
        f"{t['test']} {t['tok_s_median']:.1f}" for t in record.get("prefill", []) + record.get("decode", []))
    where = f" (round {round_})" if round_ is not None else ""
    print(f"[harness] {label}{where}: {summary} ({record['seconds']} s)", flush=True)
    return int("error" in record)


# --- report ----------------------------------------------------------------------------------------------------

RUNTIME_ORDER = ["etmlx", "mlx-lm", "hf", "xnnpack", "llama.cpp"]
WEIGHTS_LABEL = {"file": "real", "SYNTHETIC WEIGHTS": "synthetic"}
RUNTIME_LABEL = {"etmlx": "etmlx", "mlx-lm": "mlx-lm", "hf": "HF eager", "xnnpack": "ExecuTorch XNNPACK",
                 "llama.cpp": "llama.cpp"}


def load_records(dirs: list[str]) -> list[dict]:
    records = []
    for d in dirs:
        for line in (Path(d) / "results.jsonl").read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                r["base_variant"] = r["variant"]
                if r.get("lever"):  # an A/B run: its own row
                    r["variant"] = f"{r['variant']} ({r['lever']})"
                records.append(r)
    return records


def test_row(record: dict, name: str) -> dict | None:
    return next((t for t in record.get("prefill", []) + record.get("decode", []) if t["test"] == name), None)


def fmt_rate(t: dict | None) -> str:
    if t is None:
        return "-"
    return f"{t['tok_s_median']:.1f} [{t['tok_s_min']:.1f}, {t['tok_s_max']:.1f}]"


def weight_bytes_by_workload(records: list[dict]) -> dict:
    """Declared weight bytes per (workload, variant), from etmlx's reports (the same model for every runtime)."""
    return {(r["workload"], r["variant"]): r["weight_bytes"] for r in records
            if r["runtime"] == "etmlx" and "weight_bytes" in r}


def render_markdown(records: list[dict]) -> str:
    out = []
    weights = weight_bytes_by_workload(records)
    for kind in ("cpu", "gpu"):
        rows = [r for r in records if r["machine"]["kind"] == kind]
        if not rows:
            continue
        m = rows[0]["machine"]
        bw = m.get("copy_bandwidth_bytes_s")
        out.append(f"#### {kind.upper()}: {m.get('gpu') or m['cpu']} ({m['cores']} host cores, "
                   f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB)")
        out.append("")
        out.append(f"Runs from {min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}; measured copy "
                   f"bandwidth {bw / 1e9:.0f} GB/s ({m.get('copy_bandwidth_method')})." if bw else "")
        out.append("")
        tests = sorted({t["test"] for r in rows for t in r.get("prefill", []) + r.get("decode", [])},
                       key=lambda s: (s[:2] != "pp", int(s[2:])))
        header = ["workload", "runtime", "weights", *tests, "TTFT pp128 (ms)", "peak memory", "% roofline (tg)"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        key = lambda r: (r["workload"], r["variant"], RUNTIME_ORDER.index(r["runtime"]))  # noqa: E731
        for r in sorted(rows, key=key):
            name = f"{r['workload']} {r['variant']}"
            if "error" in r:
                out.append(f"| {name} | {RUNTIME_LABEL[r['runtime']]} | - | failed: {r['error']} |"
                           + " |" * (len(header) - 4))
                continue
            wb = weights.get((r["workload"], r["variant"]))
            tg = [t for t in r.get("decode", [])]
            roof = f"{100 * wb * tg[0]['tok_s_median'] / bw:.1f}%" if (wb and bw and tg) else "-"
            pp128 = test_row(r, "pp128")
            peak = r.get("peak_memory_bytes")
            out.append("| " + " | ".join([
                name, RUNTIME_LABEL[r["runtime"]], WEIGHTS_LABEL.get(r.get("weights"), r.get("weights", "?")), *[fmt_rate(test_row(r, t)) for t in tests],
                f"{pp128['ms_median']:.1f}" if pp128 else "-",
                f"{peak / 2**30:.2f} GiB{' (RSS)' if 'RSS' in r.get('peak_memory_kind', '') else ''}" if peak else "-",
                roof]) + " |")
        out.append("")
        out.append("Peak memory: the MLX allocator's peak for etmlx and mlx-lm, PyTorch's CUDA allocator peak for HF on "
                   "the GPU, the process's peak resident set (RSS) otherwise. TTFT: the pp128 call (128-token prompt "
                   "to the first token's logits). % roofline: declared weight bytes × decode tok/s ÷ measured copy "
                   "bandwidth.")
        out.append("")
        single = [r for r in rows if r.get("round") is None]
        if single:
            out.append(render_ratios(single, tests))
        if len(single) < len(rows):
            out.append(render_rounds([r for r in rows if r.get("round") is not None], tests))
    return "\n".join(out) + "\n"


def render_ratios(rows: list[dict], tests: list[str]) -> str:
    """etmlx ÷ each peer, per workload and test (median tok/s)."""
    lines = ["| workload | test | " + " | ".join(f"etmlx ÷ {RUNTIME_LABEL[p]}" for p in RUNTIME_ORDER[1:]) + " |",
             "|---|---|" + "---|" * (len(RUNTIME_ORDER) - 1)]
    by = {(r["workload"], r["variant"], r["runtime"]): r for r in rows if "error" not in r}
    for (w, v, rt), r in sorted(by.items()):
        if rt != "etmlx":
            continue
        for t in tests:
            mine = test_row(r, t)
            if mine is None:
                continue
            cells = []
            for peer in RUNTIME_ORDER[1:]:
                pr, note = by.get((w, v, peer)), ""
                if pr is None and peer == "xnnpack":  # XNNPACK has its own quantization recipe (8da4w)
                    other = next((k for k in sorted(by) if k[0] == w and k[2] == peer), None)
                    pr, note = (by[other], f" (vs {other[1]})") if other else (None, "")
                theirs = test_row(pr, t) if pr else None
                cells.append(f"{mine['tok_s_median'] / theirs['tok_s_median']:.2f}{note}" if theirs else "-")
            if any(c != "-" for c in cells):
                lines.append(f"| {w} {v} | {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_rounds(rows: list[dict], tests: list[str]) -> str:
    """Runs of `run --rounds`: etmlx ÷ each peer that ran in the same round (its neighbour in time), median
    [min, max] over the rounds, beside each runtime's median tok/s over the rounds. An A/B lever of the same rounds
    (`--lever-set`) gets its own rows, against the peers and against etmlx's default."""
    def spread(values: list[float], digits: int) -> str:
        return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"

    def runner(r: dict) -> str:
        return f"etmlx ({r['lever']})" if r["runtime"] == "etmlx" and r.get("lever") else r["runtime"]

    by: dict[tuple, dict] = {}
    for r in rows:
        if "error" not in r:
            key = (r["workload"], r.get("base_variant", r["variant"]))
            by.setdefault(key, {}).setdefault(r["round"], {})[runner(r)] = r
    lines = ["| workload | test | peer | rounds | etmlx tok/s | peer tok/s | etmlx ÷ peer, per round |",
             "|---|---|---|---|---|---|---|"]
    for (w, v), rounds in sorted(by.items()):
        present = {rt for runs in rounds.values() for rt in runs}
        peers = sorted((rt for rt in present if not rt.startswith("etmlx")), key=RUNTIME_ORDER.index)
        levers = sorted(rt for rt in present if rt.startswith("etmlx ("))
        for mine in ["etmlx", *levers]:
            label = f"{w} {v}" + (mine[len("etmlx"):] if mine != "etmlx" else "")
            for t in tests:
                for peer in peers + (["etmlx"] if mine != "etmlx" else []):
                    pairs = [(test_row(runs[mine], t), test_row(runs[peer], t))
                             for runs in rounds.values() if mine in runs and peer in runs]
                    pairs = [(a["tok_s_median"], b["tok_s_median"]) for a, b in pairs if a and b]
                    if pairs:
                        ours, theirs = [a for a, _ in pairs], [b for _, b in pairs]
                        name = RUNTIME_LABEL.get(peer, peer)
                        lines.append(f"| {label} | {t} | {name} | {len(pairs)} | {spread(ours, 1)} | "
                                     f"{spread(theirs, 1)} | {spread([a / b for a, b in pairs], 2)} |")
    return "\n".join(lines) + "\n"


def render_chart(records: list[dict], path: str) -> None:
    """Grouped bars of decode tok/s per machine; the format follows the file extension (.svg, .png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("cpu", "gpu") if any(r["machine"]["kind"] == k for r in records)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(7 * len(kinds), 4.8), squeeze=False,
                             gridspec_kw={"width_ratios": [1 if k == "cpu" else 2.4 for k in kinds]})
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in records if r["machine"]["kind"] == kind and "error" not in r and r.get("decode")]
        groups = sorted({(r["workload"], r["variant"]) for r in rows})
        runtimes = [rt for rt in RUNTIME_ORDER if any(r["runtime"] == rt for r in rows)]
        width = 0.8 / max(len(runtimes), 1)
        for i, rt in enumerate(runtimes):
            xs, ys = [], []
            for g, (w, v) in enumerate(groups):
                r = next((r for r in rows if (r["workload"], r["variant"], r["runtime"]) == (w, v, rt)), None)
                if r:
                    xs.append(g + (i - (len(runtimes) - 1) / 2) * width)
                    ys.append(r["decode"][0]["tok_s_median"])
            bars = ax.bar(xs, ys, width, label=RUNTIME_LABEL[rt])
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(range(len(groups)), [f"{w}\n{v}" for w, v in groups], fontsize=8)
        test = rows[0]["decode"][0]["test"] if rows else "tg"
        m = rows[0]["machine"] if rows else {}
        ax.set_title(f"{kind.upper()} decode ({test}, batch 1): {m.get('gpu', '').split(',')[0] or m.get('cpu', '')}",
                     fontsize=9)
        ax.set_ylabel("tokens/s (median)")
        ax.legend(fontsize=8)
    fig.suptitle("etmlx and peers, decode throughput (python/bench_harness.py report)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a plan on this machine")
    run.add_argument("--plan", choices=sorted(PLANS), required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--only", help="regex on '<runtime> <workload>-<variant>'")
    run.add_argument("-p", "--prompt", help="prompt lengths (default: the plan's)")
    run.add_argument("-n", "--gen", help="generation lengths (default: the plan's)")
    run.add_argument("-r", "--reps", type=int)
    run.add_argument("--timeout", type=float, default=900, help="seconds per run")
    run.add_argument("--etmlx", default="etmlx", help="the etmlx binary")
    run.add_argument("--rounds", type=int,
                     help="run each workload's runtimes back to back N times, alternating their order (reports then "
                          "give per-round ratios)")
    run.add_argument("--lever", default="", help="label of an A/B run (reports show it after the variant)")
    run.add_argument("--lever-set", action="append", default=[], metavar="NAME=FLAGS",
                     help="also run every etmlx entry with these extra bench flags, labelled NAME, next to the "
                          "default in each round (repeatable; e.g. 'stage4=--mlx-option submit_every=4')")
    run.add_argument("--etmlx-args", default="",
                     help="extra `etmlx bench` flags for an A/B lever (e.g. --host-decode); kept in each command")
    run.add_argument("--smollm2", default=str(ETMLX_HOME / "models/smollm2"))
    run.add_argument("--models", default=".gpu/models/bench", help="folder of the stripped benchmark exports")
    run.add_argument("--xnnpack-models", default=".gpu/xnnpack", help="folder of the XNNPACK exports ({xnnpack})")
    run.add_argument("--xnnpack-bench", default=".gpu/xnnpack/xnnpack_bench", help="tools/xnnpack-bench binary")
    run.add_argument("--llama-bench", default=str(ETMLX_HOME / "llamacpp/build-cpu/bin/llama-bench"),
                     help="llama.cpp's llama-bench binary")
    run.add_argument("--mlx-lm-path", default="/tmp/mlx-lm", help="folder holding the unpacked mlx_lm package")
    run.add_argument("--python-mlx", default=sys.executable, help="interpreter with mlx (mlx-lm runs)")
    run.add_argument("--python-torch", default=sys.executable, help="interpreter with torch+transformers (hf)")
    run.add_argument("--python-executorch", default=sys.executable, help="interpreter with executorch (xnnpack)")
    rep = sub.add_parser("report", help="markdown tables and an SVG chart from result folders")
    rep.add_argument("dirs", nargs="+")
    rep.add_argument("--markdown")
    rep.add_argument("--chart", help="decode chart, .svg or .png (matplotlib)")
    args = ap.parse_args()
    if args.cmd == "run":
        return run_plan(args)
    records = load_records(args.dirs)
    md = render_markdown(records)
    if args.markdown:
        Path(args.markdown).write_text(md)
    else:
        print(md)
    if args.chart:
        render_chart(records, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
