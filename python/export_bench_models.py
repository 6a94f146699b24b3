#!/usr/bin/env python3
"""Export the benchmark model shapes with the official exporter, then strip their weights.

Each shape is an HF Llama config with random weights (performance does not depend on the values). The official
`export_llm_hf` CLI exports it in the custom-component mode (MLX SDPA + MLX KV cache in delegate buffers), then
`strip_weights.py` removes every named-data blob of 64 KiB or more, so the `.pte` that travels to the GPU machine
holds the program, the payload graphs, the norms and RoPE tables, and no weights. etmlx runs it there with
`etmlx bench --synthetic-weights`.

Shapes (names used in docs/benchmarks.md):
    W0  SmolLM2-135M (the real config from ~/.cache/etmlx/models/smollm2/hf when present)   fp32, bf16, 8w, 4w
    W1  Llama-3.2-1B (16 layers, d=2048, 32/8 heads, head_dim 64, ffn 8192, vocab 128256, tied) bf16, 8w, 4w
    W2  Llama-3.1-8B (32 layers, d=4096, 32/8 heads, head_dim 128, ffn 14336, vocab 128256, untied) bf16, 4w
Quantized variants use `--qlinear 8w|4w --qlinear-group-size 64` (mlx-lm's default group size: 4.5 bits per
weight for 4-bit); embeddings stay unquantized. Every export uses `--use-custom-sdpa --use-custom-kv-cache
--max-ctx-len 4096 --prefill-chunk-size 2048`.

Usage (in the exporter venv; exports run one at a time, the machine has 2 cores):
    python python/export_bench_models.py --out .gpu/models/bench [--only 'W1-(bf16|4w)'] [--keep-full]
                                         [--max-ctx-len 4096] [--prefill-chunk-size 2048]

Writes OUT/<name>.pte (stripped), OUT/<name>.pte.strip.json (removed keys and bytes) and OUT/manifest.json.

Memory: W2 in bf16 is 16 GB of weights, and the exporter copies every weight into its named-data store (a second
16 GB) before serializing. For W2 every weight of a given shape therefore gets the same random values: the official
NamedDataStore keeps one buffer per distinct content, so the export holds ~1.3 GB of named data besides the model.
W2-bf16 saves such a model as an HF folder; W2-4w does not fit even so (the saved folder is reloaded as 16 GB of
distinct tensors before torchao quantizes it), so its child builds the model in-process with one shared storage
per weight shape (`shared_storage_model`) and calls the official `export_llm_hf.main()` on it. Either way the
stripped program is the same as with distinct values (constants stay separate keys). Child processes run with
oom_score_adj 1000 so that, on a shared machine, the kernel picks them first if memory runs out.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import strip_weights  # noqa: E402

SMOLLM2_HF = Path(os.environ.get("ETMLX_HOME", Path.home() / ".cache/etmlx")) / "models/smollm2/hf"

# SmolLM2-135M's published config, used when the converted model is not cached here.
SMOLLM2_CONFIG = dict(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
)
LLAMA32_1B_CONFIG = dict(
    vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
    num_key_value_heads=8, head_dim=64, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192},
    tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
)
LLAMA31_8B_CONFIG = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192},
    tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
)

# name -> (shape, exporter --dtype, extra exporter flags)
VARIANTS = {
    "W0-fp32": ("W0", "fp32", []),
    "W0-bf16": ("W0", "bf16", []),
    "W0-8w": ("W0", "bf16", ["--qlinear", "8w", "--qlinear-group-size", "64"]),
    "W0-4w": ("W0", "bf16", ["--qlinear", "4w", "--qlinear-group-size", "64"]),
    "W1-bf16": ("W1", "bf16", []),
    "W1-8w": ("W1", "bf16", ["--qlinear", "8w", "--qlinear-group-size", "64"]),
    "W1-4w": ("W1", "bf16", ["--qlinear", "4w", "--qlinear-group-size", "64"]),
    "W2-bf16": ("W2", "bf16", []),
    "W2-4w": ("W2", "bf16", ["--qlinear", "4w", "--qlinear-group-size", "64"]),
}
# Variants whose random model is built in the exporting process with shared weight storage (see
# `shared_storage_model`) instead of being saved as an HF folder first.
SHARED_STORAGE_VARIANTS = {"W2-4w"}
SHAPE_DESCRIPTIONS = {
    "W0": "SmolLM2-135M shape (30 layers, d=576, 9/3 heads, head_dim 64, ffn 1536, vocab 49152, tied)",
    "W1": "Llama-3.2-1B shape (16 layers, d=2048, 32/8 heads, head_dim 64, ffn 8192, vocab 128256, tied)",
    "W2": "Llama-3.1-8B shape (32 layers, d=4096, 32/8 heads, head_dim 128, ffn 14336, vocab 128256, untied)",
}


def shape_config(shape: str) -> dict:
    if shape == "W0":
        if (SMOLLM2_HF / "config.json").exists():
            cfg = json.loads((SMOLLM2_HF / "config.json").read_text())
            cfg.pop("_model_name_or_path", None)
            return cfg
        return dict(SMOLLM2_CONFIG)
    return dict(LLAMA32_1B_CONFIG if shape == "W1" else LLAMA31_8B_CONFIG)


def write_random_hf_model(shape: str, folder: Path, seed: int, identical_per_shape: bool) -> dict:
    """Saves a randomly initialised HF Llama of `shape` in bf16 (built on the meta device, then materialised once).

    With `identical_per_shape`, all weights of one shape share the same values (see the module docstring)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg_dict = shape_config(shape)
    cfg_dict.pop("architectures", None)
    cfg_dict.pop("model_type", None)
    cfg_dict.pop("transformers_version", None)
    cfg_dict["dtype"] = "bfloat16"
    cfg = LlamaConfig(**cfg_dict)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    gen = torch.Generator().manual_seed(seed)
    by_shape: dict[tuple, "torch.Tensor"] = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif identical_per_shape:
                key = tuple(p.shape)
                if key not in by_shape:
                    by_shape[key] = torch.empty_like(p).uniform_(-0.05, 0.05, generator=gen)
                p.copy_(by_shape[key])
            else:
                p.uniform_(-0.05, 0.05, generator=gen)
    by_shape.clear()
    model.tie_weights()
    model.save_pretrained(folder)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    return {"hf_config": cfg.to_dict(), "parameters": n_params}


def shared_storage_model(shape: str, attn_implementation: str | None, seed: int):
    """A random HF Llama of `shape` in bf16 whose weights of one shape share one storage (built on the meta device).

    Used for W2-4w: 16 GB of distinct bf16 weights plus their quantized copies do not fit a 24 GB machine.
    With shared storage the bf16 model costs one tensor per distinct shape (~2.6 GB in all for W2); torchao's
    quantization then gives every layer its own (identical) packed weight, and the official NamedDataStore stores
    each distinct content once. The program still binds every weight to its own key, so the stripped export is the
    one distinct weights would give. Norm weights are ones; RoPE buffers are recomputed on the CPU."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg_dict = shape_config(shape)
    for key in ("architectures", "model_type", "transformers_version"):
        cfg_dict.pop(key, None)
    cfg = LlamaConfig(**cfg_dict)
    with torch.device("meta"):
        model = LlamaForCausalLM._from_config(cfg, attn_implementation=attn_implementation, dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(seed)
    shared: dict[tuple, "torch.Tensor"] = {}
    with torch.no_grad():
        for module_name, module in model.named_modules():
            for name, p in list(module._parameters.items()):
                if p is None:
                    continue
                key = ("norm" in module_name or "norm" in name, tuple(p.shape))
                if key not in shared:
                    t = torch.empty(p.shape, dtype=torch.bfloat16)
                    shared[key] = t.fill_(1.0) if key[0] else t.uniform_(-0.05, 0.05, generator=gen)
                module._parameters[name] = torch.nn.Parameter(shared[key], requires_grad=False)
        rotary_type = type(model.model.rotary_emb)
        model.model.rotary_emb = rotary_type(config=cfg, device="cpu")
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if leftover:
        raise RuntimeError(f"tensors left on the meta device: {leftover[:5]}")
    model.tie_weights()
    return model.eval()


def export_shared_storage_in_process(shape: str, cli_args: list[str], seed: int) -> int:
    """Runs the official `export_llm_hf` CLI (its own argument parsing and export path) with one change: the HF
    model comes from `shared_storage_model` instead of `from_pretrained` on a saved folder."""
    import transformers
    from executorch.backends.mlx.examples.llm import export_llm_hf

    def from_pretrained(cls, model_id, **kwargs):
        return shared_storage_model(shape, kwargs.get("attn_implementation"), seed)

    transformers.AutoModelForCausalLM.from_pretrained = classmethod(from_pretrained)
    sys.argv = ["export_llm_hf", *cli_args]
    export_llm_hf.main()
    return 0


def lower_oom_priority() -> None:
    """Makes this process the OOM killer's first choice (raising the score needs no privilege)."""
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass


def make_hf_in_child(shape: str, folder: Path, seed: int) -> dict:
    """Builds the random HF model in a child process, so its memory is returned before the export starts."""
    info_path = folder.with_suffix(".json")
    cmd = [sys.executable, __file__, "--make-hf", shape, str(folder), "--seed", str(seed)]
    subprocess.run(cmd, check=True, preexec_fn=lower_oom_priority)
    return json.loads(info_path.read_text())


def versions() -> dict:
    out = {}
    for pkg in ("torch", "executorch", "torchao", "transformers"):
        try:
            from importlib.metadata import version

            out[pkg] = version(pkg)
        except Exception:  # a missing package is reported, not fatal
            out[pkg] = None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", help="regex on variant names (" + ", ".join(VARIANTS) + ")")
    ap.add_argument("--max-ctx-len", type=int, default=4096)
    ap.add_argument("--prefill-chunk-size", type=int, default=2048)
    ap.add_argument("--keep-under", type=int, default=strip_weights.DEFAULT_KEEP_UNDER)
    ap.add_argument("--keep-full", action="store_true", help="also keep the unstripped .pte (OUT/full/)")
    ap.add_argument("--work", type=Path, help="scratch folder for HF models and full exports (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    if len(sys.argv) > 1 and sys.argv[1] == "--make-hf":  # internal: the child of make_hf_in_child
        sub = argparse.ArgumentParser()
        sub.add_argument("--make-hf", nargs=2, metavar=("SHAPE", "DIR"))
        sub.add_argument("--seed", type=int, default=0)
        a = sub.parse_args()
        shape, folder = a.make_hf[0], Path(a.make_hf[1])
        info = write_random_hf_model(shape, folder, a.seed, identical_per_shape=(shape == "W2"))
        folder.with_suffix(".json").write_text(json.dumps(info, default=str))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--export-shared":  # internal: SHARED_STORAGE_VARIANTS' child
        shape, seed, cli_args = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
        return export_shared_storage_in_process(shape, cli_args, seed)
    args = ap.parse_args()

    only = re.compile(args.only) if args.only else None
    wanted = [n for n in VARIANTS if only is None or only.search(n)]
    if not wanted:
        ap.error("--only matches no variant")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    work_ctx = tempfile.TemporaryDirectory(prefix="bench-export-") if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    work.mkdir(parents=True, exist_ok=True)
    failures = 0
    try:
        hf_dirs: dict[str, tuple[Path, dict]] = {}
        for name in wanted:
            shape, dtype, flags = VARIANTS[name]
            shared_storage = name in SHARED_STORAGE_VARIANTS
            if shared_storage:
                cfg = shape_config(shape)
                info = {"hf_config": cfg, "parameters": None}
            elif shape not in hf_dirs:
                # One random HF model per shape at a time keeps the disk and RAM footprint to one shape.
                for old, _ in hf_dirs.values():
                    shutil.rmtree(old, ignore_errors=True)
                hf_dirs.clear()
                folder = work / f"hf-{shape}"
                t0 = time.time()
                info = make_hf_in_child(shape, folder, args.seed)
                print(f"[bench-export] {shape}: random HF model ({info['parameters']} parameters) in "
                      f"{time.time() - t0:.0f} s", flush=True)
                hf_dirs[shape] = (folder, info)
            if not shared_storage:
                folder, info = hf_dirs[shape]
            full = work / f"{name}.full.pte"
            cli_args = [
                "--model-id", f"<random {shape}>" if shared_storage else str(folder), "--output", str(full),
                "--max-ctx-len", str(args.max_ctx_len), "--prefill-chunk-size", str(args.prefill_chunk_size),
                "--use-custom-sdpa", "--use-custom-kv-cache", "--dtype", dtype, *flags,
            ]
            if shared_storage:
                cmd = [sys.executable, __file__, "--export-shared", shape, str(args.seed), *cli_args]
            else:
                cmd = [sys.executable, "-m", "executorch.backends.mlx.examples.llm.export_llm_hf", *cli_args]
            t0 = time.time()
            res = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lower_oom_priority)
            export_s = time.time() - t0
            if res.returncode != 0 or not full.exists():
                print(f"[bench-export] {name}: export FAILED after {export_s:.0f} s\n{res.stderr[-3000:]}", flush=True)
                manifest[name] = {"failed": True, "stderr_tail": res.stderr[-3000:]}
                failures += 1
                continue
            dst = args.out / f"{name}.pte"
            report = strip_weights.strip_file(full, dst, args.keep_under)
            (args.out / f"{name}.pte.strip.json").write_text(json.dumps(report, indent=2) + "\n")
            if args.keep_full:
                (args.out / "full").mkdir(exist_ok=True)
                shutil.move(str(full), args.out / "full" / f"{name}.pte")
            else:
                full.unlink()
            manifest[name] = {
                "shape": shape,
                "description": SHAPE_DESCRIPTIONS[shape],
                "dtype": dtype,
                "flags": flags,
                "synthetic_weights_required": True,
                "identical_weights_per_shape": shape == "W2",
                "model_source": "in-process shared-storage random model (export_llm_hf.main, from_pretrained "
                                "replaced)" if shared_storage else "random HF folder (from_pretrained)",
                "export_command": " ".join(["python", "-m", "executorch.backends.mlx.examples.llm.export_llm_hf",
                                            "--model-id", f"<random {shape}>", "--output", f"{name}.full.pte",
                                            *cli_args[4:]]),
                "hf_config": info["hf_config"],
                "parameters": info["parameters"],
                "full_pte_bytes": report["source_bytes"],
                "stripped_pte_bytes": report["output_bytes"],
                "removed_named_data_bytes": report["removed_bytes"],
                "kept_named_data_bytes": report["kept_bytes"],
                "export_seconds": round(export_s, 1),
                "versions": versions(),
                "max_ctx_len": args.max_ctx_len,
                "prefill_chunk_size": args.prefill_chunk_size,
            }
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
            print(f"[bench-export] {name}: exported in {export_s:.0f} s, {report['source_bytes']} bytes -> "
                  f"{dst} ({report['output_bytes']} bytes)", flush=True)
    finally:
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        if work_ctx:
            work_ctx.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
