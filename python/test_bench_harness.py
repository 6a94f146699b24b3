#!/usr/bin/env python3
"""Checks of bench_harness.py's round scheduling and per-round report on hand-made records (stdlib only; run by
tools/test.sh): `--rounds` must put each workload's runtimes next to each other, alternate who goes first, and the
report must pair each etmlx run with the peer run of the same round; `--lever-set` runs must join every round and
be reported against the peers and against etmlx's default."""

from __future__ import annotations

import importlib.util
import sys
import unittest
from pathlib import Path

spec = importlib.util.spec_from_file_location("bench_harness", Path(__file__).with_name("bench_harness.py"))
harness = importlib.util.module_from_spec(spec)
spec.loader.exec_module(harness)


def record(workload, variant, runtime, round_, pp128, tg128):
    test = lambda name, rate: dict(test=name, tok_s_median=rate, tok_s_min=rate, tok_s_max=rate,  # noqa: E731
                                   ms_median=1.0)
    return dict(workload=workload, variant=variant, runtime=runtime, round=round_,
                machine=dict(kind="gpu", gpu="H200", cpu="x", cores=16, memory_bytes=2**37),
                date=f"2026-12-01T00:0{round_}:00+00:00", weights="random",
                prefill=[test("pp128", pp128)], decode=[test("tg128", tg128)])


class Rounds(unittest.TestCase):
    def test_schedule_pairs_each_workload_and_alternates_the_order(self):
        entries = [("W1", "bf16", "etmlx", {}), ("W1", "4w", "etmlx", {}),
                   ("W1", "bf16", "mlx-lm", {}), ("W1", "4w", "mlx-lm", {})]
        got = [(r, e[1], e[2]) for r, e in harness.scheduled(entries, 2)]
        self.assertEqual(got, [
            (1, "bf16", "etmlx"), (1, "bf16", "mlx-lm"), (1, "4w", "etmlx"), (1, "4w", "mlx-lm"),
            (2, "bf16", "mlx-lm"), (2, "bf16", "etmlx"), (2, "4w", "mlx-lm"), (2, "4w", "etmlx"),
        ])
        # Without --rounds: the plan's order, once, untagged.
        self.assertEqual([(r, e[2]) for r, e in harness.scheduled(entries, None)],
                         [(None, "etmlx"), (None, "etmlx"), (None, "mlx-lm"), (None, "mlx-lm")])

    def test_report_pairs_runs_of_the_same_round(self):
        # Round 1: 600 vs 400 (1.5x); round 2: 300 vs 300 (1.0x); round 3: 800 vs 400 (2.0x).
        rows = [record("W1", "bf16", "etmlx", 1, 1000, 600), record("W1", "bf16", "mlx-lm", 1, 500, 400),
                record("W1", "bf16", "mlx-lm", 2, 1000, 300), record("W1", "bf16", "etmlx", 2, 1000, 300),
                record("W1", "bf16", "etmlx", 3, 3000, 800), record("W1", "bf16", "mlx-lm", 3, 1000, 400)]
        table = harness.render_rounds(rows, ["pp128", "tg128"])
        self.assertIn("| W1 bf16 | tg128 | mlx-lm | 3 | 600.0 [300.0, 800.0] | 400.0 [300.0, 400.0] | "
                      "1.50 [1.00, 2.00] |", table)
        self.assertIn("| W1 bf16 | pp128 | mlx-lm | 3 | 1000.0 [1000.0, 3000.0] | 1000.0 [500.0, 1000.0] | "
                      "2.00 [1.00, 3.00] |", table)
        # A round without its peer (a failed run) is left out of the ratios.
        broken = rows[:2] + [dict(rows[2], error="timed out"), rows[3]]
        self.assertIn("| W1 bf16 | tg128 | mlx-lm | 1 | 600.0 [600.0, 600.0] |", harness.render_rounds(broken, ["tg128"]))

    def test_lever_sets_run_next_to_the_default_and_report_against_it(self):
        entries = [("W1", "bf16", "etmlx", {"pte": "x"}), ("W1", "bf16", "mlx-lm", {})]
        expanded = harness.with_lever_sets(entries, ["stage4=--mlx-option submit_every=4"])
        self.assertEqual([(e[2], e[3].get("lever")) for e in expanded],
                         [("etmlx", None), ("etmlx", "stage4"), ("mlx-lm", None)])
        self.assertEqual(expanded[1][3], {"pte": "x", "lever": "stage4", "lever_args": "--mlx-option submit_every=4"})
        # Every round runs all three back to back.
        self.assertEqual([r for r, _ in harness.scheduled(expanded, 2)], [1, 1, 1, 2, 2, 2])
        # Round 1: default 600, lever 900, mlx-lm 400; round 2: 300, 600, 300.
        lever = lambda rec: dict(rec, lever="stage4", base_variant="bf16", variant="bf16 (stage4)")  # noqa: E731
        rows = [record("W1", "bf16", "etmlx", 1, 1000, 600), lever(record("W1", "bf16", "etmlx", 1, 1000, 900)),
                record("W1", "bf16", "mlx-lm", 1, 500, 400),
                record("W1", "bf16", "mlx-lm", 2, 1000, 300), lever(record("W1", "bf16", "etmlx", 2, 1000, 600)),
                record("W1", "bf16", "etmlx", 2, 1000, 300)]
        table = harness.render_rounds(rows, ["tg128"])
        self.assertIn("| W1 bf16 | tg128 | mlx-lm | 2 | 450.0 [300.0, 600.0] | 350.0 [300.0, 400.0] | "
                      "1.25 [1.00, 1.50] |", table)
        self.assertIn("| W1 bf16 (stage4) | tg128 | mlx-lm | 2 | 750.0 [600.0, 900.0] | 350.0 [300.0, 400.0] | "
                      "2.12 [2.00, 2.25] |", table)
        self.assertIn("| W1 bf16 (stage4) | tg128 | etmlx | 2 | 750.0 [600.0, 900.0] | 450.0 [300.0, 600.0] | "
                      "1.75 [1.50, 2.00] |", table)


if __name__ == "__main__":
    sys.exit(unittest.main())
