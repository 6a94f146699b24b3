#!/usr/bin/env python3
"""Run the official MLX-delegate op-test suite against any `op_test_runner`-compatible binary.

The official suite (executorch/backends/mlx/test/test_ops.py) exports, runs and compares in one
process. Here the steps are decoupled (executorch-mlx-format.md §4.5, option 3):

  export  (needs the export venv: torch + executorch)  one folder per config:
          DIR/<index:04d>_<config name>/{model.pte,input.bin,expected_output.bin,config.json}
  run     (needs only numpy)  runs RUNNER --pte --input --output [--kv-cache] per config and
          compares with the suite's own rules; writes a JSON (and optional Markdown) report
  check   exits 1 when a config outside the known-gaps list fails; lists gaps that now pass
  subset  copies one config per registered test (the smallest) into the repo for CI

Examples:
  python python/conformance.py export --out /work/opsuite --jobs 2
  python python/conformance.py run --suite /work/opsuite --runner target/release/op_test_runner \
      --report out/conformance.json --md out/conformance.md
  python python/conformance.py check --report out/conformance.json \
      --known-gaps tests/conformance/known_gaps.txt
  python python/conformance.py subset --suite /work/opsuite --out tests/conformance/subset
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

RUN_TIMEOUT_S = 300  # the official suite's DEFAULT_TEST_TIMEOUT
STDERR_TAIL = 2000
METAL_NODE = "MetalKernelNode"
METAL_ERROR_RE = re.compile(r"metal", re.IGNORECASE)
SUITE_FILES = ("model.pte", "input.bin", "expected_output.bin", "config.json")


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


def install_torchtune_stubs() -> None:
    """test_ops imports executorch.extension.llm.modules, which imports torchtune; torchtune 0.6
    does not import with torchao 0.18. The names it needs at import time are enough."""
    import types

    try:
        import torchtune  # noqa: F401

        return
    except Exception:
        pass
    import torch

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class MultiHeadAttention(torch.nn.Module):
        pass

    class KVCache(torch.nn.Module):
        pass

    def _sdpa_or_flex_attention(*_a, **_k):
        raise RuntimeError("torchtune stub: not available in this environment")

    module("torchtune")
    module("torchtune.modules")
    module("torchtune.modules.attention", MultiHeadAttention=MultiHeadAttention)
    module("torchtune.modules.attention_utils", _MaskType=object, _sdpa_or_flex_attention=_sdpa_or_flex_attention)
    module("torchtune.modules.kv_cache", KVCache=KVCache)
    sys.modules["torchtune"].modules = sys.modules["torchtune.modules"]
    for sub in ("attention", "attention_utils", "kv_cache"):
        setattr(sys.modules["torchtune.modules"], sub, sys.modules[f"torchtune.modules.{sub}"])


def load_suite():
    """Import the official suite; return [(index, base_name, config)] in registry order."""
    import logging
    import warnings

    logging.disable(logging.INFO)  # the partitioner logs a banner per export
    warnings.filterwarnings("ignore")
    install_torchtune_stubs()
    import executorch.backends.mlx.test.test_ops  # noqa: F401  (registers every test)
    from executorch.backends.mlx.test import test_utils

    out = []
    for base_name, cls in test_utils._TEST_REGISTRY.items():
        configs = cls.get_test_configs() if hasattr(cls, "get_test_configs") else [cls()]
        for cfg in configs:
            out.append((len(out), base_name, cfg))
    # Same order as the public helper: guard against a registry layout change.
    assert [c.name for _, _, c in out] == [n for n, _ in test_utils.get_all_test_configs()]
    return out


def safe_dir_name(index: int, name: str) -> str:
    return f"{index:04d}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _export_one(args) -> dict:
    index, out_dir, verbose = args
    import torch
    from executorch.backends.mlx.test import test_utils

    _, base_name, cfg = _SUITE[index]
    d = Path(out_dir) / safe_dir_name(index, cfg.name)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    # Repeated config names would share op_tests/<name>/: give every config its own folder.
    cfg.get_test_dir = lambda: d
    info = {
        "index": index,
        "dir": d.name,
        "name": cfg.name,
        "base_name": base_name,
        "class": type(cfg).__name__,
        "rtol": float(cfg.rtol),
        "atol": float(cfg.atol),
        "skip_comparison": bool(cfg.skip_comparison),
        "skip_comparison_reason": cfg.skip_comparison_reason or "",
        "kv_cache": cfg.kv_cache,
        "seed": cfg.seed,
        "timeout_s": int(getattr(cfg, "timeout", RUN_TIMEOUT_S)),
        "dynamic_shapes": cfg.get_dynamic_shapes() is not None,
    }
    t0 = time.time()
    try:
        import contextlib
        import io

        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            cfg.generate_test_files(verbose=verbose)
        info["export_s"] = round(time.time() - t0, 2)
        pte = d / "model.pte"
        segments = test_utils.count_mlx_delegate_segments(pte)
        counts = test_utils.get_mlx_node_counts(pte)
        info["mlx_segments"] = segments
        info["expected_mlx_segments"] = cfg.expected_mlx_segments
        info["mlx_node_counts"] = counts
        info["expected_node_counts"] = cfg.expected_node_counts
        mismatches = []
        if segments != cfg.expected_mlx_segments:
            mismatches.append(f"mlx segments {segments} != expected {cfg.expected_mlx_segments}")
        for node, n in (cfg.expected_node_counts or {}).items():
            if counts.get(node, 0) != n:
                mismatches.append(f"{node}: {counts.get(node, 0)} != expected {n}")
        info["static_check"] = "pass" if not mismatches else "; ".join(mismatches)
        # Derived from the payload, not from test names.
        info["needs_metal_kernel"] = counts.get(METAL_NODE, 0) > 0
        info["bytes"] = sum((d / f).stat().st_size for f in ("model.pte", "input.bin", "expected_output.bin"))
        (d / "config.json").write_text(json.dumps(info, indent=2) + "\n")
        info["ok"] = True
    except BaseException as e:  # noqa: BLE001 - record every failure, keep going
        info["ok"] = False
        info["error"] = f"{type(e).__name__}: {e}"
        info["traceback"] = traceback.format_exc()[-4000:]
        shutil.rmtree(d, ignore_errors=True)
    finally:
        torch.set_grad_enabled(True)
    return info


_SUITE: list = []


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def cmd_export(args) -> int:
    global _SUITE
    _SUITE = load_suite()
    pat = re.compile(args.filter) if args.filter else None
    chosen = [
        i for i, base, cfg in _SUITE
        if pat is None or pat.search(cfg.name) or pat.search(base) or pat.search(type(cfg).__name__)
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(_SUITE)} configs in the suite, exporting {len(chosen)} to {out} with {args.jobs} job(s)")
    work = [(i, str(out), args.verbose) for i in chosen]
    results = []
    t0 = time.time()
    if args.jobs > 1:
        import multiprocessing as mp

        # fork: the workers inherit the imported suite (and the stubs) without re-importing.
        ctx = mp.get_context("fork")
        with ctx.Pool(args.jobs, initializer=_init_worker, initargs=(max(1, (os.cpu_count() or 2) // args.jobs),),
                      maxtasksperchild=50) as pool:
            for n, info in enumerate(pool.imap_unordered(_export_one, work), 1):
                results.append(info)
                _progress(n, len(work), info)
    else:
        for n, w in enumerate(work, 1):
            info = _export_one(w)
            results.append(info)
            _progress(n, len(work), info)
    results.sort(key=lambda r: r["index"])
    failures = [
        {k: r[k] for k in ("index", "dir", "name", "class", "error", "traceback")} for r in results if not r["ok"]
    ]
    (out / "export_failures.json").write_text(json.dumps(failures, indent=2) + "\n")
    index = {
        "total_configs_in_suite": len(_SUITE),
        "selected": len(chosen),
        "exported": sum(r["ok"] for r in results),
        "failed": len(failures),
        "needs_metal_kernel": sorted(r["dir"] for r in results if r.get("needs_metal_kernel")),
        "static_check_mismatches": {r["dir"]: r["static_check"] for r in results if r["ok"] and r["static_check"] != "pass"},
        "seconds": round(time.time() - t0, 1),
        "versions": _versions(),
    }
    (out / "suite.json").write_text(json.dumps(index, indent=2) + "\n")
    print(json.dumps({k: v for k, v in index.items() if k != "versions"}, indent=2))
    return 0 if not failures else 2


def _progress(n, total, info):
    status = "ok" if info["ok"] else "FAILED: " + info["error"][:200]
    print(f"[{n}/{total}] {info['dir']} {status}", flush=True)


def _versions() -> dict:
    from importlib.metadata import version

    out = {}
    for pkg in ("torch", "executorch", "torchao", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def suite_configs(suite: Path) -> list[tuple[Path, dict]]:
    out = []
    for d in sorted(p for p in suite.iterdir() if p.is_dir()):
        cfg_path = d / "config.json"
        if cfg_path.exists() and (d / "model.pte").exists():
            out.append((d, json.loads(cfg_path.read_text())))
    return out


def run_one(d: Path, cfg: dict, runner: str, work: Path, timeout: int) -> dict:
    import binfmt

    wd = work / d.name
    wd.mkdir(parents=True, exist_ok=True)
    actual = wd / "actual_output.bin"
    if actual.exists():
        actual.unlink()
    cmd = [runner, "--pte", str(d / "model.pte"), "--input", str(d / "input.bin"), "--output", str(actual)]
    if cfg.get("kv_cache"):
        cmd += ["--kv-cache", cfg["kv_cache"]]
    res = {
        "dir": d.name,
        "name": cfg["name"],
        "class": cfg["class"],
        "base_name": cfg.get("base_name"),
        "needs_metal_kernel": bool(cfg.get("needs_metal_kernel")),
        "max_abs_err": None,
    }
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        res.update(status="timeout", message=f"no exit within {timeout} s", seconds=timeout)
        return res
    except OSError as e:
        res.update(status="crash", message=f"could not start runner: {e}", seconds=0.0)
        return res
    res["seconds"] = round(time.time() - t0, 3)
    stderr = p.stderr.decode("utf-8", "replace")[-STDERR_TAIL:]
    if p.returncode != 0:
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit code {p.returncode}"
        res.update(status="crash", message=f"{how}: {stderr.strip()}")
        if res["needs_metal_kernel"]:
            res["metal_error_is_clear"] = bool(METAL_ERROR_RE.search(stderr))
        return res
    if cfg.get("skip_comparison"):
        res.update(status="pass", message="ran; comparison skipped: " + (cfg.get("skip_comparison_reason") or "skip_comparison"))
        return res
    try:
        expected = binfmt.read_bin(d / "expected_output.bin")
        got = binfmt.read_bin(actual)
    except (OSError, binfmt.BinFormatError) as e:
        res.update(status="fail", message=f"unreadable output: {e}")
        return res
    ok, msg, err = binfmt.compare(expected, got, rtol=cfg["rtol"], atol=cfg["atol"])
    res.update(status="pass" if ok else "fail", message=msg, max_abs_err=err)
    return res


def summarize(results: list[dict]) -> dict:
    def counts(rs):
        c = {"pass": 0, "fail": 0, "crash": 0, "timeout": 0}
        for r in rs:
            c[r["status"]] += 1
        return c

    core = [r for r in results if not r["needs_metal_kernel"]]
    metal = [r for r in results if r["needs_metal_kernel"]]
    core_c = counts(core)
    return {
        "total": len(results),
        "core": {**core_c, "total": len(core), "pass_rate": round(core_c["pass"] / len(core), 4) if core else None},
        "metal_kernel": {
            **counts(metal),
            "total": len(metal),
            "failed_with_clear_metal_error": sum(1 for r in metal if r.get("metal_error_is_clear")),
        },
    }


def cmd_run(args) -> int:
    suite = Path(args.suite)
    configs = suite_configs(suite)
    if args.filter:
        pat = re.compile(args.filter)
        configs = [(d, c) for d, c in configs if pat.search(d.name) or pat.search(c.get("class", ""))]
    runner = str(Path(args.runner).resolve()) if os.path.sep in args.runner else args.runner
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="etmlx-conformance-"))
    print(f"running {len(configs)} configs from {suite} with {runner} ({args.jobs} jobs, outputs in {work})")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, d, c, runner, work, args.timeout) for d, c in configs]
        results = []
        for n, f in enumerate(futures, 1):
            r = f.result()
            results.append(r)
            if args.verbose or r["status"] != "pass":
                print(f"[{n}/{len(futures)}] {r['dir']}: {r['status']} {r['message'][:160]}", flush=True)
    summary = summarize(results)
    report = {"suite": str(suite), "runner": runner, "summary": summary, "results": results}
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(markdown(report))
    print(json.dumps(summary, indent=2))
    return 0


def markdown(report: dict) -> str:
    s = report["summary"]
    core, metal = s["core"], s["metal_kernel"]
    lines = [
        "# MLX op-suite conformance",
        "",
        f"Runner: `{report['runner']}`  ",
        f"Suite: `{report['suite']}` ({s['total']} configs)",
        "",
        "| group | total | pass | fail | crash | timeout | pass rate |",
        "|---|---|---|---|---|---|---|",
        f"| core (no Metal kernels) | {core['total']} | {core['pass']} | {core['fail']} | {core['crash']} | "
        f"{core['timeout']} | {core['pass_rate']} |",
        f"| MetalKernelNode (expected to fail) | {metal['total']} | {metal['pass']} | {metal['fail']} | "
        f"{metal['crash']} | {metal['timeout']} | clear error: {metal['failed_with_clear_metal_error']} |",
        "",
        "## Not passing",
        "",
        "| config | class | status | message |",
        "|---|---|---|---|",
    ]
    for r in report["results"]:
        if r["status"] != "pass":
            msg = r["message"].replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(f"| {r['dir']} | {r['class']} | {r['status']} | {msg} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------------


def read_known_gaps(path: Path) -> dict[str, str]:
    gaps = {}
    if not path.exists():
        return gaps
    for raw in path.read_text().splitlines():
        line, _, reason = raw.partition("#")
        key = line.strip()
        if key:
            gaps[key] = reason.strip()
    return gaps


def cmd_check(args) -> int:
    report = json.loads(Path(args.report).read_text())
    gaps = read_known_gaps(Path(args.known_gaps))

    def gap_for(r):
        for key in (r["dir"], r["name"]):
            if key in gaps:
                return key
        return None

    regressions, now_passing, known = [], [], 0
    for r in report["results"]:
        key = gap_for(r)
        if r["status"] == "pass":
            if key:
                now_passing.append(key)
        elif key or (r["needs_metal_kernel"] and args.allow_metal):
            known += 1
        else:
            regressions.append(r)
    print(f"{len(report['results'])} configs: {len(regressions)} unexpected failures, {known} known gaps, "
          f"{len(now_passing)} known gaps now pass")
    for r in regressions:
        print(f"  REGRESSION {r['dir']} ({r['status']}): {r['message'][:300]}")
    for k in sorted(set(now_passing)):
        print(f"  NOW PASSING (remove from known gaps): {k}")
    # The plain closing line test runners print; known gaps (listed with a reason) count as skipped.
    passed = sum(r["status"] == "pass" for r in report["results"])
    print(f"conformance: {passed} passed, {len(regressions)} failed, {known} skipped")
    return 1 if regressions else 0


# ---------------------------------------------------------------------------------------------
# subset
# ---------------------------------------------------------------------------------------------


def cmd_subset(args) -> int:
    suite = Path(args.suite)
    configs = suite_configs(suite)
    best: dict[str, tuple[int, Path, dict]] = {}
    for d, c in configs:
        size = sum((d / f).stat().st_size for f in SUITE_FILES if (d / f).exists())
        group = c.get("base_name") or c["class"]
        if group not in best or size < best[group][0]:
            best[group] = (size, d, c)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    total = 0
    chosen = []
    for group, (size, d, c) in sorted(best.items(), key=lambda kv: kv[1][1].name):
        if total + size > args.max_bytes:
            print(f"skipping {d.name} ({size} B): subset budget {args.max_bytes} B reached")
            continue
        (out / d.name).mkdir()
        for f in SUITE_FILES:
            shutil.copy(d / f, out / d.name / f)
        total += size
        chosen.append({"dir": d.name, "group": group, "class": c["class"], "bytes": size,
                       "needs_metal_kernel": bool(c.get("needs_metal_kernel"))})
    src_index = suite / "suite.json"
    meta = {
        "rule": "one config per registered test name (test_utils._TEST_REGISTRY key), the one with the "
        "fewest bytes (model.pte + input.bin + expected_output.bin + config.json); ties -> lowest index",
        "source_suite": json.loads(src_index.read_text()) if src_index.exists() else None,
        "configs": chosen,
        "total_bytes": total,
    }
    (out / "subset.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"subset: {len(chosen)} configs, {total / 1e6:.2f} MB -> {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("export", help="export every config of the official suite (needs the export venv)")
    p.add_argument("--out", required=True)
    p.add_argument("--filter", help="regex on config name, registered name or class name")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("run", help="run a runner binary over an exported suite and compare")
    p.add_argument("--suite", required=True)
    p.add_argument("--runner", required=True)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--timeout", type=int, default=RUN_TIMEOUT_S)
    p.add_argument("--filter", help="regex on the config folder name or class")
    p.add_argument("--work", help="where actual outputs go (default: a new temp dir)")
    p.add_argument("--report")
    p.add_argument("--md")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("check", help="fail on failures outside the known-gaps list")
    p.add_argument("--report", required=True)
    p.add_argument("--known-gaps", required=True)
    p.add_argument("--no-allow-metal", dest="allow_metal", action="store_false",
                   help="treat MetalKernelNode configs like any other (default: they may fail)")
    p.set_defaults(fn=cmd_check)

    p = sub.add_parser("subset", help="copy a representative subset for CI")
    p.add_argument("--suite", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-bytes", type=int, default=8_000_000)
    p.set_defaults(fn=cmd_subset)

    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
