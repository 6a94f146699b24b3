"""Runs every fixture under tests/fixtures through an op_test_runner binary and compares with the
PyTorch/HF expected outputs (tolerances from each meta.json). LLM fixtures: the prefill step.
Usage: python3 tools/gpu/check_fixtures.py RUNNER [--device gpu|cpu]. Prints one line per fixture."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import binfmt  # noqa: E402

runner = sys.argv[1]
extra = sys.argv[2:]
root = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
failures = 0
for d in sorted(p for p in root.iterdir() if (p / "model.pte").exists()):
    meta = json.loads((d / "meta.json").read_text())
    if "stripped" in d.name:
        print(f"{d.name}: skipped (weight-stripped: runs only with etmlx --synthetic-weights)")
        continue
    if (d / "input.bin").exists():
        inp, exp = d / "input.bin", d / "expected_output.bin"
    else:
        inp, exp = d / "input_prefill.bin", d / "expected_prefill_logits.bin"
    tol = meta.get("tolerance", {"rtol": 1e-4, "atol": 1e-4})
    args = [runner, "--pte", str(d / "model.pte"), "--input", str(inp)]
    if "offgraph" in d.name:
        args += ["--kv-cache", "64,2,2,16,6"]
    with tempfile.TemporaryDirectory() as t:
        out = Path(t) / "out.bin"
        r = subprocess.run(args + ["--output", str(out)] + extra, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{d.name}: CRASH {r.stderr.strip()[:300]}")
            failures += 1
            continue
        ok, msg, err = binfmt.compare(binfmt.read_bin(exp), binfmt.read_bin(out), tol["rtol"], tol["atol"])
        print(f"{d.name}: {'pass' if ok else 'FAIL'} max_abs_err={err} {'' if ok else msg}")
        failures += not ok
print(f"fixtures: {failures} failing")
