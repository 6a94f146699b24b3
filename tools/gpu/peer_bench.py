"""Peer baselines for docs/benchmarks.md, on the same machine as `etmlx bench`, same shapes, random weights:

  mlx-lm  (same MLX engine): mlx_lm.models.llama built from the shape, random init, bf16 or
          nn.quantize(group 64, bits 4/8); prefill = one call on N random tokens; decode = mlx-lm's
          pipelined generate_step loop (async_eval of step t+1 before reading step t), greedy.
  hf      HF transformers eager (PyTorch CUDA), LlamaForCausalLM random init in bf16, DynamicCache;
          prefill = one forward on N tokens; decode = N single-token forwards with greedy argmax.

Method as `etmlx bench`: one warm-up run of both shapes, then R repetitions, median/min/max tok/s.
Prints one JSON object per (runtime, shape, dtype) line and writes them to --out.
Usage: python3 peer_bench.py --mlx-lm-path DIR --shape W1 --dtype bf16|8w|4w --runtime mlx-lm|hf
"""

import argparse
import json
import statistics
import sys
import time
import types

SHAPES = {
    # SmolLM2-135M
    "W0": dict(hidden_size=576, num_hidden_layers=30, intermediate_size=1536, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, rope_theta=100000.0, tie_word_embeddings=True,
               head_dim=64),
    # Llama-3.2-1B
    "W1": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=True,
               head_dim=64),
    # Llama-3.1-8B
    "W2": dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=14336, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False,
               head_dim=128),
}


def summarize(times, tokens):
    rates = [tokens / t for t in times]
    return dict(tok_s_median=statistics.median(rates), tok_s_min=min(rates), tok_s_max=max(rates),
                ms_median=1e3 * statistics.median(times))


def bench_mlx_lm(args, shape):
    import mlx.core as mx
    import mlx.nn as nn
    pkg = types.ModuleType("mlx_lm")  # import the model code without mlx_lm/__init__ (CLI, tokenizers)
    pkg.__path__ = [args.mlx_lm_path + "/mlx_lm"]
    sys.modules["mlx_lm"] = pkg
    from mlx_lm.models import llama
    from mlx_lm.models.cache import make_prompt_cache

    margs = llama.ModelArgs(model_type="llama", rms_norm_eps=1e-5, **shape)
    model = llama.Model(margs)
    model.set_dtype(mx.bfloat16)
    if args.dtype in ("4w", "8w"):
        nn.quantize(model, group_size=64, bits=4 if args.dtype == "4w" else 8)
    mx.eval(model.parameters())
    prompt = mx.random.randint(0, shape["vocab_size"], (1, args.prompt))

    def prefill():
        cache = make_prompt_cache(model)
        t = time.perf_counter()
        logits = model(prompt, cache=cache)
        mx.eval(logits)
        return time.perf_counter() - t

    def decode():
        cache = make_prompt_cache(model)
        y = mx.array([[1]])

        def step(tok):
            logits = model(tok, cache=cache)
            return mx.argmax(logits[:, -1, :], axis=-1, keepdims=True)

        y = step(y)
        mx.eval(y)
        t = time.perf_counter()
        nxt = step(y)
        mx.async_eval(nxt)
        for _ in range(args.gen - 1):
            cur = nxt
            nxt = step(cur)
            mx.async_eval(nxt)
            cur.item()
        nxt.item()
        return time.perf_counter() - t

    prefill(), decode()
    mx.reset_peak_memory()
    p = [prefill() for _ in range(args.reps)]
    d = [decode() for _ in range(args.reps)]
    return dict(prefill=summarize(p, args.prompt), decode=summarize(d, args.gen),
                peak_memory_bytes=mx.get_peak_memory(), engine=f"mlx {mx.__version__}")


def bench_hf(args, shape):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.cache_utils import DynamicCache

    cfg = LlamaConfig(**shape, max_position_embeddings=8192)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    prompt = torch.randint(0, shape["vocab_size"], (1, args.prompt), device="cuda")

    @torch.no_grad()
    def prefill():
        torch.cuda.synchronize()
        t = time.perf_counter()
        model(prompt, past_key_values=DynamicCache(), use_cache=True)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    @torch.no_grad()
    def decode():
        cache = DynamicCache()
        out = model(prompt[:, :1], past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.gen):
            out = model(tok, past_key_values=cache, use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    prefill(), decode()
    torch.cuda.reset_peak_memory_stats()
    p = [prefill() for _ in range(args.reps)]
    d = [decode() for _ in range(args.reps)]
    return dict(prefill=summarize(p, args.prompt), decode=summarize(d, args.gen),
                peak_memory_bytes=torch.cuda.max_memory_allocated(), engine=f"torch {torch.__version__}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", choices=["mlx-lm", "hf"], required=True)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--dtype", choices=["bf16", "8w", "4w"], default="bf16")
    ap.add_argument("--mlx-lm-path", default="/tmp/mlx-lm")
    ap.add_argument("-p", "--prompt", type=int, default=128)
    ap.add_argument("-n", "--gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    shape = SHAPES[args.shape]
    run = bench_mlx_lm if args.runtime == "mlx-lm" else bench_hf
    result = dict(runtime=args.runtime, shape=args.shape, dtype=args.dtype, prompt=args.prompt,
                  gen=args.gen, reps=args.reps, weights="random", **run(args, shape))
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
