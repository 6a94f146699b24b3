#!/usr/bin/env python3
"""Reference data for etmlx's speech runner, all produced by HF transformers / PyTorch / the official exporter.

  clips OUT_DIR [--long]      speech clips made with espeak-ng (resampled to 16 kHz mono int16 WAV with scipy)
                              and a synthetic chirp; --long adds the >30 s clips (kept out of the repository)
  mel CLIP.wav OUT_PREFIX     HF WhisperFeatureExtractor features: OUT_PREFIX.window.npy (padding="max_length",
                              the first frames of the 3000 and the constant the rest equal) and
                              OUT_PREFIX.longest.npy (padding="longest", truncation=False)
  tiny-random OUT_DIR         a tiny random WhisperForConditionalGeneration, exported with the official
                              export_whisper (fp32), plus PyTorch's encoder output, decoder logits and greedy ids
  transcribe HF_DIR OUT.json CLIP...   HF greedy transcripts: no timestamps, timestamps (segments), long form
  prompts OUT.json            HF's decoder prompts (language, task, timestamps) for English-only and multilingual configs
  rules OUT_DIR               HF's Whisper logits processors on random logits (suppression, timestamp rules)
  bench HF_DIR EXPORT_DIR CLIP...      real-time factor and decoder tok/s, HF transformers vs etmlx transcribe

Runs in the exporter environment (python/setup-export-env.sh).
"""

import argparse
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

SR = 16000

# Short clips (committed): sentences a TTS voice says clearly.
SHORT_CLIPS = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "weather": "Tomorrow morning the weather will be cold and windy, with light rain in the north "
    "and sunny spells in the south.",
}

# Longer clips (generated into the cache by tools/demo-whisper.sh): 3-30 s and > 30 s.
LONG_CLIPS = {
    "library": "The city library opens at nine in the morning and closes at eight in the evening. "
    "Visitors can borrow up to ten books at a time, and the reading room on the second floor is quiet "
    "all day. Children's stories are read aloud every Saturday at eleven.",
    "history": "In the early days of computing, machines filled entire rooms and used thousands of vacuum "
    "tubes. Programs were entered with switches and punched cards, and a single calculation could take hours. "
    "Over the following decades, transistors replaced the tubes, integrated circuits replaced the transistors, "
    "and computers became small enough to sit on a desk. Today a phone in your pocket is millions of times "
    "faster than those early machines, and it runs on a battery that lasts all day. Engineers still study the "
    "old designs, because many of the ideas they introduced are used in every processor built since then.",
}


def write_wav(path: Path, samples: np.ndarray):
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == SR, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def espeak(text: str, path: Path):
    from scipy.signal import resample_poly

    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    with wave.open(str(raw), "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    raw.unlink()
    # espeak-ng writes 22050 Hz; 16000/22050 = 320/441.
    resampled = resample_poly(data, SR, rate)
    peak = np.abs(resampled).max()
    write_wav(path, resampled * (0.8 / peak))


def cmd_clips(args):
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = dict(SHORT_CLIPS)
    if args.long:
        clips = dict(LONG_CLIPS)
    for name, text in clips.items():
        espeak(text, out / f"{name}.wav")
    if not args.long:
        # A synthetic clip: a 2 s linear chirp 100 Hz -> 4 kHz plus seeded noise.
        t = np.arange(2 * SR) / SR
        chirp = 0.5 * np.sin(2 * np.pi * (100 * t + (3900 / 4) * t**2))
        noise = np.random.default_rng(7).normal(0, 0.05, t.size)
        write_wav(out / "chirp.wav", chirp + noise)
    if not args.long:
        # The same speech in other containers and codecs (soundfile / libsndfile), and as 44.1 kHz stereo WAV,
        # for the decoder, mixing and resampling tests.
        import soundfile
        from scipy.signal import resample_poly

        fox = read_wav(out / "fox.wav")
        soundfile.write(out / "fox.flac", fox, SR, subtype="PCM_16")
        soundfile.write(out / "fox.ogg", fox, SR, format="OGG", subtype="VORBIS")
        soundfile.write(out / "fox.mp3", fox, SR, format="MP3", subtype="MPEG_LAYER_III")
        up = resample_poly(fox[: 3 * SR // 2].astype(np.float64), 441, 160)  # 1.5 s keeps the file small
        soundfile.write(out / "fox_44k_stereo.wav", np.stack([up, up], axis=1), 44100, subtype="PCM_16")
    for p in sorted(out.glob("*.wav")):
        if "stereo" not in p.name:
            print(f"{p}: {len(read_wav(p)) / SR:.2f} s")


def cmd_mel(args):
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=args.n_mels)
    audio = read_wav(Path(args.clip))
    window = fe(audio, sampling_rate=SR, return_tensors="np").input_features[0]
    frames = (len(audio) + fe.hop_length - 1) // fe.hop_length + 2
    tail = window[:, frames:]
    if not np.all(tail == tail.flat[0]):
        raise SystemExit("the padded tail of HF's features is not constant")
    np.save(f"{args.out_prefix}.window.npy", np.ascontiguousarray(window[:, :frames]))
    longest = fe(audio, sampling_rate=SR, return_tensors="np", padding="longest", truncation=False).input_features[0]
    np.save(f"{args.out_prefix}.longest.npy", np.ascontiguousarray(longest))
    meta = {"tail_value": float(tail.flat[0]), "window_frames": int(window.shape[1]), "stored_frames": frames,
            "n_mels": args.n_mels, "samples": len(audio), "feature_extractor": "torch" if _has_torch() else "numpy"}
    Path(f"{args.out_prefix}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(meta)


def _has_torch():
    try:
        import torch  # noqa: F401

        return True
    except ImportError:
        return False


def cmd_tiny_random(args):
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration)

    out = Path(args.out_dir)
    hf_dir = out / "hf"
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=320, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=64, decoder_start_token_id=300,
        bos_token_id=300, eos_token_id=299, pad_token_id=299, tie_word_embeddings=True,
    )
    model = WhisperForConditionalGeneration(config).eval()
    # Larger-than-default weights so logits are far from uniform and greedy choices are not near ties.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.2)
    model.generation_config = GenerationConfig(decoder_start_token_id=300, eos_token_id=299, pad_token_id=299)
    model.save_pretrained(hf_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(hf_dir)
    # The exporter loads a processor: give it the feature extractor plus a minimal tokenizer-free processor.
    _save_processor_for_export(hf_dir)
    pte_dir = out / "pte"
    subprocess.run([sys.executable, "-m", "executorch.backends.mlx.examples.whisper.export_whisper",
                    "--model-id", str(hf_dir), "--output-dir", str(pte_dir), "--dtype", "fp32",
                    "--max-decoder-seq-len", "32"], check=True)

    fe = WhisperFeatureExtractor(feature_size=80)
    audio = read_wav(Path(args.clip))
    features = torch.from_numpy(fe(audio, sampling_rate=SR, return_tensors="np").input_features)
    with torch.no_grad():
        enc = model.model.encoder(input_features=features).last_hidden_state
        prefix = [300, 7, 42]
        ids = list(prefix)
        for _ in range(12):
            logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits
            ids.append(int(logits[0, -1].argmax()))
        # Teacher-forced logits of a fixed id sequence (greedy output of a random model repeats one token).
        forced = prefix + torch.randint(0, config.vocab_size - 30, (13,), generator=torch.Generator().manual_seed(1)).tolist()
        full_logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([forced])).logits[0]
    np.save(out / "encoder_out.npy", enc[0, :64].numpy().astype(np.float32))
    np.save(out / "decoder_logits.npy", full_logits.numpy().astype(np.float32))
    ref = {"clip": Path(args.clip).name, "prefix": prefix, "greedy_ids": ids, "forced_ids": forced,
           "encoder_rows_stored": 64,
           "encoder_shape": list(enc.shape)}
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    for p in pte_dir.glob("processor"):
        subprocess.run(["rm", "-rf", str(p)], check=True)
    import shutil
    shutil.rmtree(hf_dir)
    print(ref)


def _save_processor_for_export(hf_dir: Path):
    """export_whisper calls AutoProcessor.from_pretrained: a Whisper processor needs a tokenizer, so write a tiny
    byte-level BPE one (never used by the test: it only checks ids)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor, WhisperProcessor

    vocab = {chr(i): i for i in range(ord("a"), ord("z") + 1)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="a")
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), fast).save_pretrained(hf_dir)


def cmd_transcribe(args):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(args.hf_dir)
    model = WhisperForConditionalGeneration.from_pretrained(args.hf_dir, torch_dtype=torch.float32).eval()
    tok = processor.tokenizer
    results = {}
    for clip in args.clips:
        audio = read_wav(Path(clip))
        seconds = len(audio) / SR
        entry = {"seconds": seconds}
        with torch.no_grad():
            if seconds <= 30.0:
                feats = processor.feature_extractor(audio, sampling_rate=SR, return_tensors="pt").input_features
                ids = model.generate(feats)[0].tolist()
                entry["ids"] = ids
                entry["text"] = tok.decode(ids, skip_special_tokens=True)
                out = model.generate(feats, return_timestamps=True, return_segments=True)
            else:
                inputs = processor.feature_extractor(audio, sampling_rate=SR, return_tensors="pt", truncation=False,
                                                     padding="longest", return_attention_mask=True)
                out = model.generate(inputs.input_features, attention_mask=inputs.attention_mask,
                                     return_timestamps=True, return_segments=True)
            seq = out["sequences"][0].tolist()
            entry["timestamp_ids"] = seq
            entry["timestamp_text"] = tok.decode(seq, skip_special_tokens=True)
            entry["segments"] = [
                {"start": round(float(s["start"]), 2), "end": round(float(s["end"]), 2),
                 "ids": s["tokens"].tolist(),
                 "text": tok.decode([i for i in s["tokens"].tolist() if i < model.generation_config.no_timestamps_token_id], skip_special_tokens=True)}
                for s in out["segments"][0]
            ]
        results[Path(clip).name] = entry
        print(f"{Path(clip).name} ({seconds:.1f} s): {entry.get('text', entry['timestamp_text'])!r}")
    Path(args.out).write_text(json.dumps({"model": str(args.hf_dir), "clips": results}, indent=1) + "\n")


def cmd_rules(args):
    """HF's Whisper logits processors (SuppressTokensAtBegin, SuppressTokens, WhisperTimeStamp, in generate()'s
    order) applied to random logits after assorted token histories, for a small synthetic vocabulary."""
    import torch
    from transformers import GenerationConfig
    from transformers.generation.logits_process import (SuppressTokensAtBeginLogitsProcessor,
                                                        SuppressTokensLogitsProcessor,
                                                        WhisperTimeStampLogitsProcessor)

    vocab, eos, sot, no_ts = 120, 50, 51, 60
    ts = no_ts + 1
    gen = GenerationConfig(eos_token_id=eos, decoder_start_token_id=sot, no_timestamps_token_id=no_ts,
                           suppress_tokens=[1, 2, 55], begin_suppress_tokens=[3, eos], max_initial_timestamp_index=5)
    histories = [
        ([sot], True), ([sot], False), ([sot, no_ts], False), ([sot, no_ts, 7], False),
        ([sot, ts], True), ([sot, ts, 7], True), ([sot, ts, 7, ts + 9], True), ([sot, ts, 7, ts + 9, ts + 9], True),
        ([sot, ts + 2, 7, 8, ts + 20, ts + 20, 9], True), ([sot, ts + 2, 7, 8, ts + 20, ts + 20, 9, ts + 30], True),
        ([sot, ts, 4, ts + 3, ts + 3, 5, 6, 7], True),
    ]
    g = torch.Generator().manual_seed(3)
    cases, inputs, outputs = [], [], []
    for tokens, timestamps in histories:
        for scale in (1.0, 4.0):
            logits = torch.randn(1, vocab, generator=g) * scale
            if scale > 1.0:
                logits[0, ts:] += 2.0  # timestamps' total mass beats every text token
            else:
                logits[0, 7] += 8.0  # one text token beats the timestamps' total mass
            begin = 1 if timestamps else 2
            if not timestamps and tokens == [sot]:
                begin = 1
            procs = [SuppressTokensAtBeginLogitsProcessor(gen.begin_suppress_tokens, begin_index=begin, device="cpu"),
                     SuppressTokensLogitsProcessor(gen.suppress_tokens, device="cpu")]
            if timestamps:
                procs.append(WhisperTimeStampLogitsProcessor(gen, begin_index=begin))
            ids = torch.tensor([tokens])
            out = logits.clone()
            for proc in procs:
                out = proc(ids, out)
            cases.append({"tokens": tokens, "begin_index": begin, "timestamps": timestamps})
            inputs.append(logits[0].numpy())
            outputs.append(out[0].numpy())
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "logits_in.npy", np.stack(inputs).astype(np.float32))
    np.save(out_dir / "logits_out.npy", np.stack(outputs).astype(np.float32))
    config = {"vocab": vocab, "generation_config": gen.to_diff_dict(), "cases": cases}
    (out_dir / "cases.json").write_text(json.dumps(config, indent=1) + "\n")
    print(f"{len(cases)} cases")


def cmd_prompts(args):
    """HF's decoder prompts (`WhisperForConditionalGeneration._retrieve_init_tokens` after `_set_language_and_task`
    and `_set_return_timestamps`) for an English-only and a multilingual generation config, with and without
    language, task and timestamps."""
    import copy

    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=51865, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
        decoder_attention_heads=1, encoder_ffn_dim=8, decoder_ffn_dim=8, max_source_positions=1500,
        max_target_positions=448)).eval()
    langs = {"<|en|>": 50259, "<|zh|>": 50260, "<|de|>": 50261, "<|es|>": 50262, "<|fr|>": 50265}
    configs = {
        "english_only": GenerationConfig(decoder_start_token_id=50257, eos_token_id=50256, no_timestamps_token_id=50362,
                                         is_multilingual=False, forced_decoder_ids=[[1, 50362]]),
        "multilingual": GenerationConfig(decoder_start_token_id=50258, eos_token_id=50257, no_timestamps_token_id=50363,
                                         is_multilingual=True, lang_to_id=langs,
                                         task_to_id={"transcribe": 50359, "translate": 50358},
                                         forced_decoder_ids=[[1, None], [2, 50359]]),
    }
    cases = []
    for name, base in configs.items():
        options = [(None, None, False), (None, None, True)]
        if name == "multilingual":
            options += [("de", None, False), ("de", None, True), ("fr", "translate", False), ("<|es|>", "transcribe", True),
                        (None, "translate", False)]
        for language, task, timestamps in options:
            gen = copy.deepcopy(base)
            model._set_return_timestamps(return_timestamps=timestamps, is_shortform=True, generation_config=gen)
            model._set_language_and_task(language=language, task=task, is_multilingual=None, generation_config=gen)
            features = torch.zeros(1, 80, 3000)
            if gen.forced_decoder_ids and gen.forced_decoder_ids[0][1] is None and language is None:
                # Language detection would run the model; give it the detected id the way HF inserts it.
                detected = 50261
            else:
                detected = None
            if detected is not None:
                model.detect_language = lambda *a, **k: torch.tensor([detected])
            tokens = model._retrieve_init_tokens(features, batch_size=1, generation_config=gen, config=model.config,
                                                 num_segment_frames=3000, kwargs={})[0].tolist()
            cases.append({"config": name, "language": language, "task": task, "timestamps": timestamps,
                          "detected_language": detected, "prompt": tokens})
    out = {"generation_configs": {k: v.to_diff_dict() for k, v in configs.items()}, "cases": cases}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for c in cases:
        print(c)


def cmd_bench(args):
    """Real-time factor and decoder tok/s of HF transformers (eager, fp32, CPU) and `etmlx transcribe` on the same
    clips; prints a Markdown table. HF's decoder time is its generate() time minus one encoder forward."""
    import os
    import time

    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    # One thread by default: on a shared machine, torch's spinning OpenMP threads collapse under oversubscription.
    torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
    processor = WhisperProcessor.from_pretrained(args.hf_dir)
    model = WhisperForConditionalGeneration.from_pretrained(args.hf_dir, torch_dtype=torch.float32).eval()
    rows = []
    for clip in args.clips:
        audio = read_wav(Path(clip))
        seconds = len(audio) / SR
        with torch.no_grad():
            if seconds <= 30.0:
                feats = processor.feature_extractor(audio, sampling_rate=SR, return_tensors="pt").input_features
                kwargs = {}
            else:
                inputs = processor.feature_extractor(audio, sampling_rate=SR, return_tensors="pt", truncation=False,
                                                     padding="longest", return_attention_mask=True)
                feats, kwargs = inputs.input_features, {"attention_mask": inputs.attention_mask, "return_timestamps": True}
            model.generate(feats[..., :3000] if seconds > 30 else feats)  # warm-up
            t0 = time.perf_counter()
            model.model.encoder(feats[..., :3000])
            enc = time.perf_counter() - t0
            best = None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ids = model.generate(feats, **kwargs)
                total = time.perf_counter() - t0
                best = total if best is None else min(best, total)
            windows = max(1, -(-feats.shape[-1] // 3000))
            tokens = ids.shape[-1]
        hf_dec = max(best - enc * windows, 1e-9)
        cmd = [args.etmlx, "transcribe", args.model_dir, clip, "--json", "--device", "cpu"]
        runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                for _ in range(args.repeat)]
        st = min(runs, key=lambda r: r["stats"]["total_ms"])["stats"]
        rows.append((Path(clip).name, seconds, best / seconds, enc * 1000, tokens / hf_dec,
                     st["real_time_factor"], st["encoder_ms"] / max(st["windows"], 1), st["decoder_tokens_per_second"]))
    print("| clip | audio s | HF RTF | HF encoder ms | HF decoder tok/s | etmlx RTF | etmlx encoder ms/window | etmlx decoder tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.3f} | {r[3]:.0f} | {r[4]:.1f} | {r[5]:.3f} | {r[6]:.0f} | {r[7]:.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clips")
    c.add_argument("out_dir")
    c.add_argument("--long", action="store_true")
    c.set_defaults(fn=cmd_clips)
    m = sub.add_parser("mel")
    m.add_argument("clip")
    m.add_argument("out_prefix")
    m.add_argument("--n-mels", type=int, default=80)
    m.set_defaults(fn=cmd_mel)
    t = sub.add_parser("tiny-random")
    t.add_argument("out_dir")
    t.add_argument("--clip", required=True)
    t.set_defaults(fn=cmd_tiny_random)
    r = sub.add_parser("transcribe")
    r.add_argument("hf_dir")
    r.add_argument("out")
    r.add_argument("clips", nargs="+")
    r.set_defaults(fn=cmd_transcribe)
    ru = sub.add_parser("rules")
    ru.add_argument("out_dir")
    ru.set_defaults(fn=cmd_rules)
    pr = sub.add_parser("prompts")
    pr.add_argument("out")
    pr.set_defaults(fn=cmd_prompts)
    b = sub.add_parser("bench")
    b.add_argument("hf_dir")
    b.add_argument("model_dir", help="the etmlx export directory")
    b.add_argument("clips", nargs="+")
    b.add_argument("--etmlx", default="target/release/etmlx")
    b.add_argument("--repeat", type=int, default=2)
    b.add_argument("--torch-threads", type=int, default=1, help="0: one per core")
    b.set_defaults(fn=cmd_bench)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
