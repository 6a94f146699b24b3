#!/usr/bin/env python3
"""Export the etmlx test fixtures with the OFFICIAL ExecuTorch exporter.

Each fixture is a folder `<out>/<name>/` holding `model.pte`, `input.bin`, `expected_output*.bin`
(the official op-test `.bin` format) and `meta.json`. Expected outputs always come from PyTorch
eager (or HF transformers for the LLMs), never from our own code.

Run inside the export venv (python/setup-export-env.sh):
    python python/export_fixtures.py --out tests/fixtures [--only REGEX] [--skip-llm]
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
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import binfmt  # noqa: E402

SEED = 42

# Operators the Rust runtime implements natively outside the delegate (architecture.md).
NATIVE_PORTABLE_OPS = {
    "aten::sym_size.int",
    "aten::copy_",
    "dim_order_ops::_to_dim_order_copy.out",
    "executorch_prim::et_view.default",
}
NATIVE_PORTABLE_PREFIX = "executorch_prim::"  # the scalar prim ops


def versions() -> dict:
    import executorch
    import numpy

    out = {"torch": torch.__version__, "numpy": numpy.__version__, "python": sys.version.split()[0]}
    try:
        from importlib.metadata import version

        out["executorch"] = version("executorch")
        out["torchao"] = version("torchao")
        try:
            out["transformers"] = version("transformers")
        except Exception:
            pass
        try:
            out["optimum-executorch"] = version("optimum-executorch")
        except Exception:
            pass
    except Exception:
        out["executorch"] = getattr(executorch, "__version__", "?")
    return out


# ---------------------------------------------------------------------------------------------
# Program introspection (uses ExecuTorch's own flatbuffer -> JSON converter)
# ---------------------------------------------------------------------------------------------


def describe_program(pte: bytes) -> dict:
    from executorch.exir._serialize._flatbuffer import _program_flatbuffer_to_json

    prog = json.loads(_program_flatbuffer_to_json(pte))
    plans = {}
    for plan in prog["execution_plan"]:
        ops = [f"{o['name']}.{o['overload']}" if o.get("overload") else o["name"] for o in plan.get("operators", [])]
        kinds = {}
        for chain in plan.get("chains", []):
            for ins in chain.get("instructions", []):
                k = ins.get("instr_args_type", "?")
                kinds[k] = kinds.get(k, 0) + 1
        values = plan.get("values", [])
        plans[plan["name"]] = {
            "inputs": [_value_summary(values, i) for i in plan.get("inputs", [])],
            "outputs": [_value_summary(values, i) for i in plan.get("outputs", [])],
            "operators": ops,
            "delegates": [d["id"] for d in plan.get("delegates", [])],
            "instruction_kinds": kinds,
            "n_inputs": len(plan.get("inputs", [])),
            "n_outputs": len(plan.get("outputs", [])),
        }
    return plans


def _value_summary(values: list, index: int):
    """Compact view of one EValue: tensor spec, or the scalar for constant getter methods."""
    if not 0 <= index < len(values):
        return {"bad_index": index}
    v = values[index]
    kind, val = v["val_type"], v["val"]
    if kind == "Tensor":
        out = {"tensor": val["scalar_type"], "sizes": val["sizes"], "dynamism": val.get("shape_dynamism")}
        if val.get("data_buffer_idx", 0) > 0 and not val.get("allocation_info"):
            out["constant"] = True
        return out
    if kind in ("Int", "Double", "Bool", "String"):
        return {kind: next(iter(val.values()), None)}
    return {kind: val}


def mlx_node_counts(pte_path: Path) -> dict:
    """MLX node counts summed over every MLX delegate, plus one dict per delegate (official inspector)."""
    try:
        from executorch.backends.mlx.pte_inspector import extract_delegate_payload, parse_mlx_payload

        pte = Path(pte_path).read_bytes()
        n_delegates = sum(
            1 for plan in describe_program(pte).values() for d in plan["delegates"] if "mlx" in d.lower()
        )
        per_delegate = []
        for i in range(n_delegates):
            graph = parse_mlx_payload(extract_delegate_payload(pte, "mlx", delegate_index=i)).get("graph", {})
            counts: dict = {}
            for chain in graph.get("instruction_chains", []):
                for ins in chain.get("instructions", []):
                    if ins.get("op_name"):
                        counts[ins["op_name"]] = counts.get(ins["op_name"], 0) + 1
            per_delegate.append(counts)
        total: dict = {}
        for counts in per_delegate:
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        return {"total": total, "per_delegate": per_delegate}
    except Exception as e:  # the inspector is best effort; record why it failed
        return {"error": repr(e)}


def tensor_desc(name: str, t: torch.Tensor) -> dict:
    return {"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}


def save_bin(tensors, path: Path) -> None:
    binfmt.write_bin([binfmt.from_torch(t) for t in tensors], path)


def as_list(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return list(out)


# ---------------------------------------------------------------------------------------------
# Generic small-model fixture
# ---------------------------------------------------------------------------------------------


def lower(model, export_args, *, dynamic_shapes=None, partition=True) -> bytes:
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.capture._config import ExecutorchBackendConfig

    ep = torch.export.export(model, export_args, dynamic_shapes=dynamic_shapes, strict=True)
    partitioner = []
    if partition:
        from executorch.backends.mlx.partitioner import MLXPartitioner

        partitioner = [MLXPartitioner()]
    edge = to_edge_transform_and_lower(ep, partitioner=partitioner)
    prog = edge.to_executorch(ExecutorchBackendConfig(extract_delegate_segments=True))
    return prog.buffer


def write_fixture(
    out: Path,
    name: str,
    *,
    description: str,
    proves: str,
    model: nn.Module,
    export_args: tuple,
    test_args: tuple | None = None,
    input_names: list[str],
    rtol: float,
    atol: float,
    dynamic_shapes=None,
    partition: bool = True,
    calls: int = 1,
    extra: dict | None = None,
) -> dict:
    """Export `model`, run it eagerly `calls` times on `test_args`, write the fixture folder."""
    d = out / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    test_args = test_args if test_args is not None else export_args
    model = model.eval()

    # Expected outputs first, from a fresh copy of the eager module (export must not see a
    # mutated state, and the eager run must start from the initial state).
    import copy

    eager = copy.deepcopy(model)
    expected = []
    with torch.no_grad():
        for _ in range(calls):
            expected.append([t.clone() for t in as_list(eager(*test_args))])

    pte = lower(model, export_args, dynamic_shapes=dynamic_shapes, partition=partition)
    (d / "model.pte").write_bytes(pte)
    save_bin(list(test_args), d / "input.bin")
    if calls == 1:
        save_bin(expected[0], d / "expected_output.bin")
        expected_files = ["expected_output.bin"]
    else:
        expected_files = []
        for i, outs in enumerate(expected, start=1):
            fname = f"expected_output_call{i}.bin"
            save_bin(outs, d / fname)
            expected_files.append(fname)
        # call 1 doubles as the single-call expectation the op_test_runner contract checks
        shutil.copy(d / expected_files[0], d / "expected_output.bin")

    plans = describe_program(pte)
    meta = {
        "name": name,
        "description": description,
        "proves": proves,
        "exporter": "torch.export(strict=True) -> to_edge_transform_and_lower("
        + ("partitioner=[MLXPartitioner()]" if partition else "no partitioner")
        + ") -> to_executorch(extract_delegate_segments=True)",
        "expected_source": "PyTorch eager (torch.no_grad) on the same module, seed %d" % SEED,
        "versions": versions(),
        "method": "forward",
        "inputs": [tensor_desc(n, t) for n, t in zip(input_names, test_args)],
        "export_inputs": [tensor_desc(n, t) for n, t in zip(input_names, export_args)],
        "outputs": [tensor_desc(f"out{i}", t) for i, t in enumerate(expected[0])],
        "tolerance": {"rtol": rtol, "atol": atol},
        "expected_files": expected_files,
        "program": plans,
        "mlx_node_counts": mlx_node_counts(d / "model.pte") if partition else {},
        "pte_bytes": len(pte),
    }
    if dynamic_shapes is not None:
        meta["dynamic_shapes"] = repr(dynamic_shapes)
    if extra:
        meta.update(extra)
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"[fixture] {name}: {len(pte)} B, plans={json.dumps(plans['forward'])}")
    return meta


# ---------------------------------------------------------------------------------------------
# Small fixtures
# ---------------------------------------------------------------------------------------------


class AddModel(nn.Module):
    def forward(self, x, y):
        return x + y


class MlpModel(nn.Module):
    def __init__(self, d_in=16, d_hidden=32, d_out=8):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DynamicSeqModel(nn.Module):
    """Linear + softmax over features, then a sum over the (dynamic) sequence axis."""

    def __init__(self, d=8):
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        h = torch.softmax(self.proj(x), dim=-1)
        return h, h.sum(dim=1)


class MutableCounterModel(nn.Module):
    """A zero-initialised buffer accumulates relu(2x+1) every call; returns 2 * buffer.

    Call N (1-based, same x every call) returns 2 * N * relu(2x + 1).
    With x = [-1, 0, 0.5, 1]: call N = N * [0, 2, 4, 6].
    The buffer must start at zero: the MLX delegate zero-fills buffers it owns at init.
    """

    def __init__(self, dim=4):
        super().__init__()
        self.register_buffer("acc", torch.zeros(1, dim))

    def forward(self, x):
        self.acc.add_(torch.relu(x * 2.0 + 1.0))
        return self.acc * 2.0


class PortableOnlyModel(nn.Module):
    """Only dtype conversions, views and a buffer write-back: nothing but natively-run ops.

    x is [b, 6] with b dynamic, so the view needs symbolic sizes (sym_size + prim math + et_view);
    a static view would be emitted as a plain alias with no instruction at all.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("last", torch.zeros(3, dtype=torch.float64))

    def forward(self, x, y):
        pairs = x.view(x.shape[0] * 3, 2)  # -> sym_size + executorch_prim::mul + et_view
        wide = pairs.to(torch.float64)  # -> _to_dim_order_copy (f32 -> f64)
        narrow = wide.to(torch.float32)  # -> _to_dim_order_copy (f64 -> f32)
        as_int = x.to(torch.int32)  # -> _to_dim_order_copy (f32 -> i32, truncation)
        self.last.copy_(y)  # -> aten::copy_ (f32 -> f64) write-back of a non-delegated buffer
        return narrow, as_int


class MixedPartitionModel(nn.Module):
    """Two MLX partitions separated by a float64 round trip the delegate cannot take."""

    def __init__(self, d=8):
        super().__init__()
        self.fc1 = nn.Linear(d, d)
        self.fc2 = nn.Linear(d, 4)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = h.to(torch.float64).to(torch.float32)  # float64 is outside MLX's dtype set
        return self.fc2(h)


class LinearModel(nn.Module):
    def __init__(self, d_in, d_out, bias=True):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=bias)

    def forward(self, x):
        return self.linear(x)


def export_small(out: Path, only: re.Pattern | None) -> list[str]:
    made = []

    def want(name):
        return only is None or only.search(name)

    if want("add"):
        torch.manual_seed(SEED)
        x, y = torch.randn(2, 3), torch.randn(2, 3)
        write_fixture(
            out, "add",
            description="x + y, float32 [2,3]",
            proves="end-to-end sanity: container, one DelegateCall, one AddNode, I/O binding",
            model=AddModel(), export_args=(x, y), input_names=["x", "y"], rtol=1e-5, atol=1e-5,
        )
        made.append("add")

    if want("mlp"):
        torch.manual_seed(SEED)
        m = MlpModel()
        x = torch.randn(4, 16)
        write_fixture(
            out, "mlp",
            description="Linear(16,32) -> GELU -> Linear(32,8), float32, input [4,16]",
            proves="constants (weights/biases in named data), linear (addmm) and GELU lowering",
            model=m, export_args=(x,), input_names=["x"], rtol=1e-5, atol=1e-5,
        )
        made.append("mlp")

    if want("dynamic_seq"):
        from torch.export import Dim

        torch.manual_seed(SEED)
        m = DynamicSeqModel()
        x_export = torch.randn(1, 16, 8)
        x_test = torch.randn(1, 5, 8)
        seq = Dim("seq", min=1, max=32)
        write_fixture(
            out, "dynamic_seq",
            description="softmax(Linear(8,8)(x)) and its sum over axis 1; x is [1, seq, 8] with "
            "seq dynamic in [1, 32]; exported at seq=16, tested at seq=5",
            proves="DYNAMIC_BOUND inputs/outputs, upper-bound planned sizes, output resize, "
            "symbolic shapes inside the MLX payload",
            model=m, export_args=(x_export,), test_args=(x_test,), input_names=["x"],
            dynamic_shapes=({1: seq},), rtol=1e-5, atol=1e-5,
            extra={"dynamic_dims": {"x": {"axis": 1, "min": 1, "max": 32}}},
        )
        made.append("dynamic_seq")

    if want("mutable_counter"):
        x = torch.tensor([[-1.0, 0.0, 0.5, 1.0]])
        write_fixture(
            out, "mutable_counter",
            description="zero-initialised buffer acc[1,4] += relu(2x+1) each call; returns 2*acc",
            proves="mutable buffer owned by the delegate persists across execute() calls and "
            "starts at zero",
            model=MutableCounterModel(), export_args=(x,), input_names=["x"], rtol=1e-6, atol=1e-6,
            calls=3,
            extra={
                "call_rule": "same input every call; output of call N (1-based) = 2 * N * relu(2x+1); "
                "with x = [-1, 0, 0.5, 1] that is N * [0, 2, 4, 6]. Load the method once and "
                "execute it 3 times; compare call N with expected_output_callN.bin. "
                "expected_output.bin = call 1.",
                "official_analogue": "backends/mlx/test/export_multi_thread_test_model.py: "
                "ones input, call N returns 6*N (KVCache-based accumulator)",
            },
        )
        made.append("mutable_counter")

    if want("portable_only"):
        from torch.export import Dim

        x_export = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 1.25 - 7.0
        x = torch.tensor([[1.5, -2.25, 3.75, -0.5, 100.9, -7.99], [0.0, 0.49, -0.51, 2.5, -3.5, 1e6]])
        y = torch.tensor([0.1, -0.2, 0.3])
        meta = write_fixture(
            out, "portable_only",
            description="x[b,6] f32 (b dynamic in [1,8]; exported at 4, tested at 2) -> view(-1,2) "
            "-> to(float64) -> to(float32); x.to(int32); buffer last[3] f64 .copy_(y[3] f32). "
            "No partitioner.",
            proves="the non-delegated path alone: KernelCalls for the native portable ops, "
            "symbolic sizes through prim ops, et_view aliasing, memory planning, dtype "
            "conversion with truncation, buffer write-back",
            model=PortableOnlyModel(), export_args=(x_export, y), test_args=(x, y),
            input_names=["x", "y"], rtol=0.0, atol=0.0, partition=False,
            dynamic_shapes=({0: Dim("b", min=1, max=8)}, None),
            extra={"dynamic_dims": {"x": {"axis": 0, "min": 1, "max": 8}},
                   "note": "float64 never crosses the method boundary (.bin has no f64 code)"},
        )
        check_portable(meta)
        made.append("portable_only")

    if want("mixed_partition"):
        torch.manual_seed(SEED)
        m = MixedPartitionModel()
        x = torch.randn(3, 8)
        write_fixture(
            out, "mixed_partition",
            description="relu(Linear(8,8)) -> to(float64) -> to(float32) -> Linear(8,4), float32",
            proves="two MLX delegates with portable KernelCalls in between (values flow "
            "delegate -> ET tensor -> kernel -> delegate)",
            model=m, export_args=(x,), input_names=["x"], rtol=1e-5, atol=1e-5,
        )
        made.append("mixed_partition")

    if want("bf16_linear"):
        torch.manual_seed(SEED)
        m = LinearModel(32, 16).to(torch.bfloat16)
        x = torch.randn(4, 32, dtype=torch.bfloat16)
        write_fixture(
            out, "bf16_linear",
            description="Linear(32,16) in bfloat16, input [4,32] bf16",
            proves="bf16 constants, inputs and outputs (raw u16 in .bin), bf16 matmul",
            model=m, export_args=(x,), input_names=["x"], rtol=2e-2, atol=2e-2,
        )
        made.append("bf16_linear")

    if want("q4_linear"):
        from torchao.quantization.granularity import PerGroup
        from torchao.quantization.quant_api import IntxWeightOnlyConfig, quantize_

        torch.manual_seed(SEED)
        m = LinearModel(64, 32)
        quantize_(m, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))
        x = torch.randn(2, 64)
        write_fixture(
            out, "q4_linear",
            description="Linear(64,32) float32, torchao IntxWeightOnlyConfig(int4, PerGroup(32))",
            proves="QuantizedMatmul (dequantize_affine -> linear pattern), packed int4 weights, "
            "scales/biases",
            model=m, export_args=(x,), input_names=["x"], rtol=1e-2, atol=1e-2,
            extra={"quantization": "IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)) "
                   "as in test_ops.py QuantizedLinearTest; expected = eager of the quantized module"},
        )
        made.append("q4_linear")
    return made


def check_portable(meta: dict) -> None:
    ops = meta["program"]["forward"]["operators"]
    stray = [o for o in ops if o not in NATIVE_PORTABLE_OPS and not o.startswith(NATIVE_PORTABLE_PREFIX)]
    if stray or meta["program"]["forward"]["delegates"]:
        raise SystemExit(f"portable_only uses ops outside the native set: {stray} "
                         f"(delegates {meta['program']['forward']['delegates']})")


# ---------------------------------------------------------------------------------------------
# Tiny LLM fixtures
# ---------------------------------------------------------------------------------------------

LLAMA_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    head_dim=16,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,  # tied + small init makes greedy repeat one token
    initializer_range=0.1,  # larger than HF's 0.02 so greedy decoding is not degenerate
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
PROMPT = [1, 17, 42, 99, 256, 7, 311, 450]  # 8 tokens, positions 0..7
DECODE_TOKEN = 123  # fed at position 8
GREEDY_NEW_TOKENS = 12
MAX_CTX = 64
PREFILL_CHUNK = 16

LLM_VARIANTS = {
    # name: (extra CLI flags, --dtype, eager reference variant, tolerance, needs optimum)
    "tiny_llama_default": ([], "fp32", "fp32", 1e-4, True),
    "tiny_llama_custom": (["--use-custom-sdpa", "--use-custom-kv-cache"], "fp32", "fp32", 1e-4, False),
    "tiny_llama_offgraph": (["--use-offgraph-cache"], "fp32", "fp32", 1e-4, False),
    "tiny_llama_custom_bf16": (["--use-custom-sdpa", "--use-custom-kv-cache"], "bf16", "bf16", 6e-2, False),
    "tiny_llama_custom_4w": (["--use-custom-sdpa", "--use-custom-kv-cache", "--qlinear", "4w"], "fp32", "q4w", 1e-3,
                             False),
}
REFERENCE_VARIANTS = {
    "fp32": "HF eager, float32",
    "bf16": "HF eager on model.to(torch.bfloat16) (logits stored as bf16, as the .pte returns them)",
    "q4w": "HF eager, float32, after executorch.extension.llm.export.quantize.quantize_model_(model, "
    "qlinear_config='4w', qlinear_group_size=32) -- the same call export_llm_hf makes for --qlinear 4w",
}


def reference_model(base, variant: str):
    import copy

    m = copy.deepcopy(base)
    if variant == "bf16":
        return m.to(torch.bfloat16)
    if variant == "q4w":
        from executorch.extension.llm.export.quantize import quantize_model_

        quantize_model_(m, qlinear_config="4w", qlinear_group_size=32,
                        tie_word_embeddings=LLAMA_CONFIG["tie_word_embeddings"])
    return m


def make_tiny_llama(model_dir: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    cfg = LlamaConfig(**LLAMA_CONFIG)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(model_dir)
    return model


def hf_reference(model) -> dict:
    """Prefill logits (positions 0..7), decode logits (position 8), greedy ids, in fp32 eager."""
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        out = model(input_ids=ids, use_cache=True)
        prefill = out.logits
        dec = model(input_ids=torch.tensor([[DECODE_TOKEN]]), past_key_values=out.past_key_values, use_cache=True)
        decode = dec.logits
        gen = model.generate(
            ids, max_new_tokens=GREEDY_NEW_TOKENS, do_sample=False, use_cache=True,
            eos_token_id=None, pad_token_id=LLAMA_CONFIG["pad_token_id"],
        )
    return {"prefill": prefill, "decode": decode, "greedy": gen[0, len(PROMPT):].tolist()}


def export_llm(out: Path, only: re.Pattern | None) -> list[str]:
    wanted = [n for n in LLM_VARIANTS if only is None or only.search(n)]
    if not wanted:
        return []
    made = []
    with tempfile.TemporaryDirectory(prefix="tiny-llama-") as tmp:
        model_dir = Path(tmp) / "tiny-llama"
        model = make_tiny_llama(model_dir)
        refs = {}
        for name in wanted:
            flags, dtype, ref_variant, tol, needs_optimum = LLM_VARIANTS[name]
            if ref_variant not in refs:
                refs[ref_variant] = hf_reference(reference_model(model, ref_variant))
            ref = refs[ref_variant]
            d = out / name
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            cmd = [
                sys.executable, "-m", "executorch.backends.mlx.examples.llm.export_llm_hf",
                "--model-id", str(model_dir), "--output", str(d / "model.pte"),
                "--max-ctx-len", str(MAX_CTX), "--prefill-chunk-size", str(PREFILL_CHUNK),
                "--dtype", dtype, *flags,
            ]
            meta = {
                "name": name,
                "description": f"tiny random HF Llama (seed {SEED}) exported by export_llm_hf, "
                f"dtype {dtype}, flags {flags or ['(default optimum mode)']}",
                "versions": versions(),
                "hf_config": LLAMA_CONFIG,
                "export_command": " ".join(
                    ["python"] + cmd[1:4] + ["<tmp>/tiny-llama"] + [c if not c.endswith("model.pte") else f"tests/fixtures/{name}/model.pte" for c in cmd[5:]]
                ),
                "method": "forward",
                "inputs": [
                    {"name": "input_ids", "dtype": "int64", "shape": [1, "T"]},
                    {"name": "cache_position", "dtype": "int64", "shape": ["T"], "note": "absolute positions"},
                ],
                "output": {"name": "logits", "dtype": "float32" if dtype == "fp32" else "bfloat16",
                           "shape": [1, "T", LLAMA_CONFIG["vocab_size"]]},
                "runtime_requirements": (
                    "off-graph KV cache: the host must provide an MLXSequenceCache (op_test_runner "
                    f"--kv-cache {MAX_CTX},{LLAMA_CONFIG['num_hidden_layers']},"
                    f"{LLAMA_CONFIG['num_key_value_heads']},{LLAMA_CONFIG['head_dim']}) -- see getters "
                    "get_n_caches/get_kv_heads/get_head_dims/get_windows"
                    if "--use-offgraph-cache" in flags
                    else "KV cache lives in delegate-owned mutable buffers (zero-filled at init)"
                ),
                "max_ctx_len": MAX_CTX,
                "prefill_chunk_size": PREFILL_CHUNK,
                "prompt_ids": PROMPT,
                "decode_token": DECODE_TOKEN,
                "decode_position": len(PROMPT),
                "expected_source": REFERENCE_VARIANTS[ref_variant]
                + "; same saved weights the exporter loaded",
                "expected_files": {
                    "expected_prefill_logits.bin": "logits [1,8,512] for prompt_ids at positions 0..7",
                    "expected_decode_logits.bin": "logits [1,1,512] for decode_token at position 8 after the prefill",
                    "greedy.json": f"greedy generate(): {GREEDY_NEW_TOKENS} new token ids after the prompt",
                    "input_prefill.bin": "input_ids [1,8] i64, cache_position [8] i64",
                    "input_decode.bin": "input_ids [1,1] i64, cache_position [1] i64",
                },
                "tolerance": {"rtol": tol, "atol": tol},
            }
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                ok = res.returncode == 0 and (d / "model.pte").exists()
                err = (res.stderr or "")[-3000:]
            except Exception as e:  # timeout etc.
                ok, err = False, repr(e)
            if not ok:
                meta["skipped"] = True
                meta["skip_reason"] = ("optimum-executorch mode failed or is not installed: " if needs_optimum else "export failed: ") + err
                (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
                print(f"[fixture] {name}: SKIPPED\n{err[-1500:]}")
                continue
            pte = (d / "model.pte").read_bytes()
            meta["program"] = describe_program(pte)
            meta["mlx_node_counts"] = mlx_node_counts(d / "model.pte")
            meta["pte_bytes"] = len(pte)
            n = len(PROMPT)
            save_bin([torch.tensor([PROMPT]), torch.arange(n)], d / "input_prefill.bin")
            save_bin([torch.tensor([[DECODE_TOKEN]]), torch.tensor([n])], d / "input_decode.bin")
            save_bin([ref["prefill"]], d / "expected_prefill_logits.bin")
            save_bin([ref["decode"]], d / "expected_decode_logits.bin")
            (d / "greedy.json").write_text(
                json.dumps({"prompt_ids": PROMPT, "max_new_tokens": GREEDY_NEW_TOKENS, "do_sample": False,
                            "use_cache": True, "eos_token_id": None, "new_token_ids": ref["greedy"]}, indent=2) + "\n"
            )
            (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            print(f"[fixture] {name}: {len(pte)} B, ops={meta['program']['forward']['operators']}")
            made.append(name)
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--only", type=str, default=None, help="regex on fixture names")
    ap.add_argument("--skip-llm", action="store_true")
    args = ap.parse_args()
    only = re.compile(args.only) if args.only else None
    args.out.mkdir(parents=True, exist_ok=True)
    made = export_small(args.out, only)
    if not args.skip_llm:
        made += export_llm(args.out, only)
    print("made:", ", ".join(made))


if __name__ == "__main__":
    main()
