#!/usr/bin/env python3
"""Rewrite an official `.pte` without its large named-data blobs (the weights), keeping everything else.

A stripped file keeps the program, the delegate payloads (graph + tensor shapes/dtypes), the constant methods and
the small named-data entries (scalars, norms, RoPE tables: anything under --keep-under bytes). It is what lets a
Llama-shaped export travel to a GPU machine in kilobytes or megabytes instead of gigabytes; there etmlx runs it with
`--synthetic-weights`, which fills every constant whose key is missing with deterministic pseudo-random values of the
declared shape and dtype. Without that flag, loading a stripped file fails with the usual missing-constant error.

Only the official ExecuTorch serializer is used (`executorch.exir._serialize._program`): the file is deserialized
into a PTEFile, its NamedDataStoreOutput is filtered, and the PTEFile is serialized again with delegate segments
extracted, as the exporters write them.

Usage (in the exporter venv):
    python python/strip_weights.py IN.pte OUT.pte [--keep-under BYTES] [--report OUT.json]

A report (`OUT.pte.strip.json` unless --report is given) lists the removed keys and byte counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_KEEP_UNDER = 64 * 1024
# Alignment written for the entries we keep: deserialization does not preserve the original one, and 16 bytes covers
# every element type the MLX delegate stores.
KEPT_ALIGNMENT = 16


def strip_named_data(named, keep_under: int):
    """Returns (new NamedDataStoreOutput or None, report dict): entries of at least `keep_under` bytes dropped."""
    from executorch.exir._serialize._named_data_store import NamedDataStore

    store = NamedDataStore()
    kept, removed = {}, {}
    for key, entry in sorted(named.pte_data.items()):
        data = named.buffers[entry.buffer_index]
        size = len(data)
        if size < keep_under:
            store.add_named_data(key, bytes(data), alignment=max(entry.alignment, KEPT_ALIGNMENT))
            kept[key] = size
        else:
            removed[key] = size
    out = store.get_named_data_store_output()
    report = {
        "keep_under_bytes": keep_under,
        "kept": kept,
        "removed": removed,
        "kept_bytes": sum(kept.values()),
        "removed_bytes": sum(removed.values()),
    }
    return (out if kept else None), report


def strip_pte_file(pte_file, keep_under: int):
    """Returns (new PTEFile, report) for a deserialized PTEFile."""
    from executorch.exir._serialize._program import PTEFile

    if pte_file.named_data is None or not pte_file.named_data.pte_data:
        return pte_file, {"keep_under_bytes": keep_under, "kept": {}, "removed": {}, "kept_bytes": 0,
                          "removed_bytes": 0}
    named, report = strip_named_data(pte_file.named_data, keep_under)
    return PTEFile(program=pte_file.program, mutable_data=pte_file.mutable_data, named_data=named), report


def serialize(pte_file) -> bytes:
    from executorch.exir._serialize._program import serialize_pte_binary

    return bytes(serialize_pte_binary(pte_file, extract_delegate_segments=True))


def strip_file(src: Path, dst: Path, keep_under: int = DEFAULT_KEEP_UNDER) -> dict:
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte_file = deserialize_pte_binary(src.read_bytes())
    stripped, report = strip_pte_file(pte_file, keep_under)
    data = serialize(stripped)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)
    report.update({"source": str(src), "source_bytes": src.stat().st_size, "output_bytes": len(data)})
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--keep-under", type=int, default=DEFAULT_KEEP_UNDER,
                    help=f"keep named-data entries smaller than this many bytes (default {DEFAULT_KEEP_UNDER})")
    ap.add_argument("--report", type=Path, help="where to write the JSON report (default DST.strip.json)")
    args = ap.parse_args()
    if args.keep_under < 0:
        ap.error("--keep-under must be >= 0")
    report = strip_file(args.src, args.dst, args.keep_under)
    report_path = args.report or args.dst.with_name(args.dst.name + ".strip.json")
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.src} ({report['source_bytes']} bytes) -> {args.dst} ({report['output_bytes']} bytes): "
          f"kept {len(report['kept'])} entries ({report['kept_bytes']} bytes), removed {len(report['removed'])} "
          f"({report['removed_bytes']} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
