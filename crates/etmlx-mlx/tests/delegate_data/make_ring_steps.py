#!/usr/bin/env python3
"""Expected outputs for `delegate_offgraph.rs::suite_model_with_a_sliding_window_layer_over_steps`.

The op suite's `update_and_attend` module (two `kvcache::update_and_attend` layers, layer l fed
k*(l+1), v*(l+1), outputs summed; head_dim 8, 4 query heads, 2 KV heads) is run eagerly over
several steps with the official reference cache (`ContiguousReferenceCache`), configured with a
sliding window of 3 on layer 0 and a flat layer 1. Cache windows are run-time geometry (not in the
.pte), so the suite's exported `model.pte` (dynamic T <= 16) runs the same steps in the Rust test.

Run with the export venv:  $VENV/bin/python crates/etmlx-mlx/tests/delegate_data/make_ring_steps.py
"""

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3] / "python"))
import binfmt  # noqa: E402

from executorch.extension.llm.cache.reference_cache import (  # noqa: E402
    CacheConfig,
    CacheSizing,
    ContiguousReferenceCache,
    LayerPolicy,
)
from executorch.extension.llm.cache.update_and_attend import REGISTRY  # noqa: E402

N_LAYERS, N_HEADS, N_KV_HEADS, HEAD_DIM, CAPACITY = 2, 4, 2, 8, 16
WINDOWS = [3, 0]
MAX_WRITE = 4
# (start, tokens): the ring of layer 0 has 3 + 4 - 1 = 6 slots, so these wrap it twice.
STEPS = [(0, 4), (4, 1), (5, 3), (8, 4), (12, 1), (13, 2)]


def forward(q, k, v, position):
    scale = HEAD_DIM**-0.5
    total = None
    for layer in range(N_LAYERS):
        s = layer + 1
        out = torch.ops.kvcache.update_and_attend(q, k * s, v * s, position, layer, scale, torch.float32)
        total = out if total is None else total + out
    return total


def main():
    torch.manual_seed(7)
    policies = [LayerPolicy.ring(w) if w else LayerPolicy.flat() for w in WINDOWS]
    cache = ContiguousReferenceCache(
        CacheConfig(
            n_layers=N_LAYERS,
            n_kv_heads=N_KV_HEADS,
            head_dim=HEAD_DIM,
            capacity=CAPACITY,
            sizing=CacheSizing.DYNAMIC,
            dtype=torch.float32,
            layers=policies,
        )
    )
    REGISTRY.install("ring_steps", cache)
    out_dir = HERE / "ring_steps"
    out_dir.mkdir(exist_ok=True)
    with torch.no_grad(), REGISTRY.active("ring_steps"):
        for i, (start, t) in enumerate(STEPS):
            q = torch.randn(1, N_HEADS, t, HEAD_DIM)
            k = torch.randn(1, N_KV_HEADS, t, HEAD_DIM)
            v = torch.randn(1, N_KV_HEADS, t, HEAD_DIM)
            position = torch.arange(start, start + t, dtype=torch.int32).reshape(t, 1)
            out = forward(q, k, v, position)
            binfmt.write_bin([binfmt.from_torch(x) for x in (q, k, v, position)], out_dir / f"input_step{i}.bin")
            binfmt.write_bin([binfmt.from_torch(out)], out_dir / f"expected_step{i}.bin")
    meta = {
        "source": "executorch 1.5.1 ContiguousReferenceCache (PyTorch eager, float32), seed 7",
        "windows": WINDOWS,
        "max_write": MAX_WRITE,
        "capacity": CAPACITY,
        "steps": STEPS,
        "tolerance": {"rtol": 1e-4, "atol": 1e-5},
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
