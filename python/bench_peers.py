#!/usr/bin/env python3
"""The peer runtimes of the benchmark harness, one per call, measured the way `etmlx bench` measures.

Run by `bench_harness.py` in the interpreter that has the runtime installed (mlx-lm needs `mlx`; `hf` and
`xnnpack` need torch / executorch); prints one JSON object (the last stdout line) shaped like `etmlx bench --json`:
`prefill` / `decode` lists of {test, tokens, calls, tok_s_median, tok_s_min, tok_s_max, ms_median, ms_min, ms_max},
plus `peak_memory_bytes`, `peak_memory_kind`, `load_ms`, `engine`, `sampling`.

Method (the same as `etmlx bench`, see docs/benchmarks.md):
  ppN  N random token ids (seeded) prefilled from position 0 in one call; tok/s = N / wall time, the call made
       synchronous (logits evaluated / copied).
  tgN  a 1-token prompt (untimed), then N single-token steps, each feeding back the greedy argmax of the previous
       step; tok/s = N / wall time of the N steps.
  warm-up: every prompt length once plus 8 decode steps, before any measurement; repetitions: median/min/max.

Runtimes:
  mlx-lm   mlx_lm.models.llama on the same MLX library etmlx uses (imported from an unpacked mlx-lm wheel without
           its CLI); bf16/fp32 or nn.quantize(group 64, 4/8 bits) like mlx-lm's converter. Decode uses mlx-lm's
           pipelined loop (async_eval of step t+1 before reading step t), as `generate_step` does.
  hf       HF transformers LlamaForCausalLM, PyTorch eager (no torch.compile), default attention (SDPA),
           DynamicCache, on CUDA or CPU.
  xnnpack  the official ExecuTorch runtime (Python bindings of the executorch wheel) running an XNNPACK export made
           by optimum-executorch (`forward(input_ids [1,T], cache_position [T])`), CPU.
  llama.cpp  `llama-bench` on a GGUF file (its own method: one warm-up run per test, ppN = N-token prompt batch,
           tgN = N tokens generated one at a time from an empty context); its per-repetition samples are turned
           into median/min/max here, and the peak RSS is that of the llama-bench process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import types

# Model shapes (HF config fields) of the workloads; W0 with real weights reads its config instead.
SHAPES = {
    "W0": dict(hidden_size=576, num_hidden_layers=30, intermediate_size=1536, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, rope_theta=100000.0, tie_word_embeddings=True,
               head_dim=64),
    "W1": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=True,
               head_dim=64),
    "W2": dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=14336, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False,
               head_dim=128),
}
DECODE_WARMUP_STEPS = 8


def summarize(name: str, tokens: int, calls: int, seconds: list[float]) -> dict:
    rates = [tokens / s for s in seconds]
    ms = [1e3 * s for s in seconds]
    return dict(test=name, tokens=tokens, calls=calls, tok_s_median=statistics.median(rates),
                tok_s_min=min(rates), tok_s_max=max(rates), ms_median=statistics.median(ms),
                ms_min=min(ms), ms_max=max(ms))


def random_prompt(vocab: int, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(vocab) for _ in range(n)]


def measure(args, vocab: int, prefill, decode) -> dict:
    """`prefill(ids) -> seconds`, `decode(n) -> seconds`; runs the warm-up, then every test `args.reps` times."""
    prompts = {p: random_prompt(vocab, p, args.seed) for p in args.prompt}
    for p in args.prompt:
        prefill(prompts[p])
    decode(DECODE_WARMUP_STEPS)
    pre = [summarize(f"pp{p}", p, 1, [prefill(prompts[p]) for _ in range(args.reps)]) for p in args.prompt]
    dec = [summarize(f"tg{n}", n, n, [decode(n) for _ in range(args.reps)]) for n in args.gen]
    return dict(prefill=pre, decode=dec)


def config_dict(args) -> dict:
    if args.hf_dir:
        with open(os.path.join(args.hf_dir, "config.json")) as f:
            cfg = json.load(f)
        keep = set(SHAPES["W0"]) | {"rms_norm_eps", "max_position_embeddings", "rope_scaling"}
        return {k: v for k, v in cfg.items() if k in keep}
    return dict(SHAPES[args.shape])


# --- mlx-lm -------------------------------------------------------------------------------------------------


def bench_mlx_lm(args) -> dict:
    import mlx.core as mx
    import mlx.nn as nn

    if args.device == "cpu":
        mx.set_default_device(mx.cpu)
    pkg = types.ModuleType("mlx_lm")  # the model code only: mlx_lm/__init__ pulls in the CLI and tokenizers
    pkg.__path__ = [os.path.join(args.mlx_lm_path, "mlx_lm")]
    sys.modules["mlx_lm"] = pkg
    from mlx_lm.models import llama
    from mlx_lm.models.cache import make_prompt_cache

    cfg = config_dict(args)
    cfg.pop("max_position_embeddings", None)
    cfg.pop("rope_scaling", None)
    cfg.setdefault("rms_norm_eps", 1e-5)
    t0 = time.perf_counter()
    model = llama.Model(llama.ModelArgs(model_type="llama", **cfg))
    if args.hf_dir:
        weights = mx.load(os.path.join(args.hf_dir, "model.safetensors"))
        model.load_weights(list(model.sanitize(weights).items()))
    model.set_dtype(mx.float32 if args.dtype == "fp32" else mx.bfloat16)
    if args.dtype in ("4w", "8w"):
        nn.quantize(model, group_size=64, bits=4 if args.dtype == "4w" else 8)
    mx.eval(model.parameters())
    load_ms = 1e3 * (time.perf_counter() - t0)

    def prefill(ids):
        cache = make_prompt_cache(model)
        prompt = mx.array([ids])
        t = time.perf_counter()
        logits = model(prompt, cache=cache)
        mx.eval(logits)
        return time.perf_counter() - t

    def decode(n):
        cache = make_prompt_cache(model)

        def step(tok):
            logits = model(tok, cache=cache)
            return mx.argmax(logits[:, -1, :], axis=-1, keepdims=True)

        y = step(mx.array([[1]]))
        mx.eval(y)
        t = time.perf_counter()
        nxt = step(y)
        mx.async_eval(nxt)
        for _ in range(n - 1):
            cur = nxt
            nxt = step(cur)
            mx.async_eval(nxt)
            cur.item()
        nxt.item()
        return time.perf_counter() - t

    mx.reset_peak_memory()
    out = measure(args, cfg["vocab_size"], prefill, decode)
    return dict(out, peak_memory_bytes=mx.get_peak_memory(), peak_memory_kind="MLX allocator peak",
                load_ms=load_ms, engine=f"mlx {mx.__version__}", sampling="device argmax, pipelined")


# --- HF transformers eager -------------------------------------------------------------------------------------


def bench_hf(args) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.cache_utils import DynamicCache

    device = "cuda" if args.device == "gpu" else "cpu"
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    if args.dtype not in ("fp32", "bf16"):
        raise SystemExit(f"hf: dtype {args.dtype} is not run (only fp32/bf16)")
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    if args.hf_dir:
        model = LlamaForCausalLM.from_pretrained(args.hf_dir, dtype=dtype).to(device).eval()
    else:
        cfg = LlamaConfig(**config_dict(args), max_position_embeddings=8192)
        with torch.device(device):
            model = LlamaForCausalLM(cfg).to(dtype).eval()
    load_ms = 1e3 * (time.perf_counter() - t0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    @torch.inference_mode()
    def prefill(ids):
        prompt = torch.tensor([ids], device=device)
        sync()
        t = time.perf_counter()
        out = model(prompt, past_key_values=DynamicCache(), use_cache=True)
        out.logits[:, -1].argmax(-1).item()
        return time.perf_counter() - t

    @torch.inference_mode()
    def decode(n):
        cache = DynamicCache()
        out = model(torch.tensor([[1]], device=device), past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1:].argmax(-1)
        sync()
        t = time.perf_counter()
        for _ in range(n):
            out = model(tok, past_key_values=cache, use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        tok.item()
        return time.perf_counter() - t

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = measure(args, model.config.vocab_size, prefill, decode)
    if device == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(), "PyTorch CUDA allocator peak"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"
    return dict(out, peak_memory_bytes=peak, peak_memory_kind=kind, load_ms=load_ms,
                engine=f"torch {torch.__version__}, attention {model.config._attn_implementation}",
                sampling="device argmax")


# --- ExecuTorch XNNPACK ----------------------------------------------------------------------------------------


def bench_xnnpack(args) -> dict:
    import torch
    from executorch.runtime import Runtime

    # The LLM recipe's custom_sdpa / update_cache kernels and the quantized kernels live in these libraries;
    # importing them registers the kernels with the runtime.
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401
    import executorch.kernels.quantized  # noqa: F401

    if not args.pte:
        raise SystemExit("xnnpack: --pte is required")
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    program = Runtime.get().load_program(args.pte)
    method = program.load_method("forward")
    load_ms = 1e3 * (time.perf_counter() - t0)
    vocab = int(program.load_method("get_vocab_size").execute([])[0]) if "get_vocab_size" in \
        program.method_names else SHAPES[args.shape]["vocab_size"]

    def forward(ids: list[int], start: int):
        input_ids = torch.tensor([ids], dtype=torch.long)
        positions = torch.arange(start, start + len(ids), dtype=torch.long)
        return method.execute([input_ids, positions])[0]

    def prefill(ids):
        t = time.perf_counter()
        logits = forward(ids, 0)
        int(logits[0, -1].argmax())
        return time.perf_counter() - t

    def decode(n):
        tok = int(forward([1], 0)[0, -1].argmax())
        t = time.perf_counter()
        for pos in range(1, n + 1):
            tok = int(forward([tok], pos)[0, -1].argmax())
        return time.perf_counter() - t

    out = measure(args, vocab, prefill, decode)
    from importlib.metadata import version

    return dict(out, peak_memory_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                peak_memory_kind="process peak RSS", load_ms=load_ms,
                engine=f"executorch {version('executorch')} XNNPACK, {os.cpu_count()} threads",
                sampling="host argmax")


# --- llama.cpp -----------------------------------------------------------------------------------------------


def bench_llama_cpp(args) -> dict:
    if not (args.gguf and args.llama_bench):
        raise SystemExit("llama.cpp: --gguf and --llama-bench are required")
    threads = str(args.threads or os.cpu_count() or 1)
    cmd = [args.llama_bench, "-m", args.gguf, "-p", ",".join(map(str, args.prompt)),
           "-n", ",".join(map(str, args.gen)), "-r", str(args.reps), "-t", threads, "-o", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"llama.cpp: llama-bench exited with {os.waitstatus_to_exitcode(status)}")
    tests = json.loads(stdout)
    prefill, decode = [], []
    for test in tests:
        tokens, is_prompt = (test["n_prompt"], True) if test["n_prompt"] else (test["n_gen"], False)
        row = summarize(f"{'pp' if is_prompt else 'tg'}{tokens}", tokens, 1 if is_prompt else tokens,
                        [ns / 1e9 for ns in test["samples_ns"]])
        (prefill if is_prompt else decode).append(row)
    first = tests[0]
    return dict(prefill=prefill, decode=decode, peak_memory_bytes=usage.ru_maxrss * 1024,
                peak_memory_kind="process peak RSS", load_ms=None,
                engine=f"llama.cpp {first.get('build_commit', '?')} ({first.get('backends', 'CPU')}), "
                       f"{first.get('type_k', '')} KV, {threads} threads, {first.get('model_type', '')}",
                sampling="none (llama-bench decodes without sampling)")


RUNTIMES = {"mlx-lm": bench_mlx_lm, "hf": bench_hf, "xnnpack": bench_xnnpack, "llama.cpp": bench_llama_cpp}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runtime", choices=sorted(RUNTIMES))
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--dtype", choices=["fp32", "bf16", "8w", "4w", "8da4w", "q4_1"], default="bf16")
    ap.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    ap.add_argument("--hf-dir", help="real weights: an HF folder (config.json + model.safetensors)")
    ap.add_argument("--pte", help="xnnpack: the exported program")
    ap.add_argument("--gguf", help="llama.cpp: the model file")
    ap.add_argument("--llama-bench", help="llama.cpp: the llama-bench binary")
    ap.add_argument("--threads", type=int, help="llama.cpp: threads (default: all cores)")
    ap.add_argument("--pte-has-real-weights", action="store_true", help="xnnpack: label the run 'real' weights")
    ap.add_argument("--mlx-lm-path", default="/tmp/mlx-lm", help="folder holding the unpacked mlx_lm package")
    ap.add_argument("-p", "--prompt", default="128", help="comma-separated prompt lengths")
    ap.add_argument("-n", "--gen", default="128", help="comma-separated generation lengths")
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.prompt = [int(x) for x in args.prompt.split(",") if x and int(x) > 0]
    args.gen = [int(x) for x in args.gen.split(",") if x and int(x) > 0]
    result = RUNTIMES[args.runtime](args)
    print(json.dumps(dict(runtime=args.runtime, shape=args.shape, dtype=args.dtype, device=args.device,
                          weights="real" if args.hf_dir or args.gguf or args.pte_has_real_weights else "random",
                          repetitions=args.reps, warmup=1, seed=args.seed, **result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
