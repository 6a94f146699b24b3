//! Bad input gives one clear error naming the problem, never a panic: files that are not audio, empty,
//! truncated, of an unsupported codec or with a sample rate of 0; samples that are unusable; model directories
//! that lack a program, the tokenizer or the feature extractor config, or hold another architecture's export.

use std::path::{Path, PathBuf};

use etmlx_speech::audio::{decode_file, load_for_whisper, resample, validate_samples};
use etmlx_speech::{Audio, Transcriber};

mod common;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("speech_bad_input");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A RIFF/WAVE file: `format` tag, channels, rate, bits, the data chunk's declared size and its bytes.
fn wav(format: u16, channels: u16, rate: u32, bits: u16, declared: u32, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + declared).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&declared.to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn audio_error(name: &str, bytes: &[u8]) -> String {
    let path = scratch(name);
    std::fs::write(&path, bytes).unwrap();
    let err = decode_file(&path)
        .expect_err("bad audio must fail")
        .to_string();
    assert!(err.contains(name), "the error names the file: {err}");
    err
}

#[test]
fn not_audio_is_refused() {
    let err = audio_error("notes.wav", b"these are meeting notes, not a recording\n");
    assert!(err.contains("not a supported audio file"), "{err}");
}

#[test]
fn empty_file_is_refused() {
    let err = audio_error("empty.wav", b"");
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn truncated_wav_is_refused() {
    let samples = vec![0u8; 3200];
    // The header declares 1 s of 16-bit mono; only 0.1 s is there.
    let err = audio_error("cut.wav", &wav(1, 1, 16_000, 16, 32_000, &samples));
    assert!(err.contains("truncated"), "{err}");
    // Cut inside the header.
    let full = std::fs::read(common::clip("fox.wav")).unwrap();
    let err = audio_error("cut_header.wav", &full[..30]);
    assert!(
        err.contains("not a supported audio file") || err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn unsupported_codec_is_refused() {
    // WAVE_FORMAT_DOLBY_AC3_SPDIF (0x0092): a real tag symphonia has no decoder for.
    let err = audio_error("ac3.wav", &wav(0x0092, 2, 48_000, 16, 4, &[0; 4]));
    assert!(err.to_lowercase().contains("unsupported"), "{err}");
}

#[test]
fn zero_sample_rate_is_refused() {
    let err = audio_error("rate0.wav", &wav(1, 1, 0, 16, 4, &[0; 4]));
    assert!(err.contains("sample rate") || err.contains("0 Hz"), "{err}");
}

#[test]
fn missing_audio_file_is_named() {
    let err = load_for_whisper(Path::new("/nonexistent/clip.wav"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not found") && err.contains("/nonexistent/clip.wav"),
        "{err}"
    );
}

#[test]
fn unusable_samples_are_refused() {
    assert!(validate_samples(&[], 16_000)
        .unwrap_err()
        .to_string()
        .contains("no samples"));
    assert!(validate_samples(&[0.0], 0)
        .unwrap_err()
        .to_string()
        .contains("0 Hz"));
    let err = validate_samples(&[0.0, f32::NAN], 16_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sample 1"), "{err}");
    let zero_rate = Audio {
        samples: vec![0.0; 10],
        sample_rate: 0,
    };
    assert!(resample(&zero_rate, 16_000).is_err());
}

/// A copy of the tiny random export's programs, minus `drop`, plus the named extra files.
fn model_dir(name: &str, drop: &str, extra: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = common::fixtures().join("tiny_random/pte");
    for f in [
        "encoder.pte",
        "cross_kv.pte",
        "decoder.pte",
        "metadata.json",
    ] {
        if f != drop {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }
    for (file, bytes) in extra {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

const PREPROCESSOR: &[u8] =
    br#"{"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80}"#;

fn open_error(dir: &Path) -> String {
    Transcriber::open(dir)
        .expect_err("a broken model dir must fail")
        .to_string()
}

#[test]
fn missing_program_is_named() {
    let dir = model_dir(
        "no_decoder",
        "decoder.pte",
        &[
            ("preprocessor_config.json", PREPROCESSOR),
            ("tokenizer.json", b"{}"),
        ],
    );
    let err = open_error(&dir);
    assert!(err.contains("decoder.pte is missing"), "{err}");
}

#[test]
fn missing_tokenizer_is_named() {
    let dir = model_dir(
        "no_tokenizer",
        "",
        &[("preprocessor_config.json", PREPROCESSOR)],
    );
    let err = open_error(&dir);
    assert!(err.contains("no tokenizer.json"), "{err}");
}

#[test]
fn missing_feature_extractor_config_is_named() {
    let dir = model_dir("no_preprocessor", "", &[("tokenizer.json", b"{}")]);
    let err = open_error(&dir);
    assert!(err.contains("preprocessor_config.json"), "{err}");
}

#[test]
fn another_architectures_export_is_refused() {
    // An LLM export renamed into place: its `forward` takes token ids, not mel features.
    let llm = common::fixtures().join("../tiny_llama_default/model.pte");
    let bytes = std::fs::read(&llm).expect("tiny llama fixture");
    let dir = model_dir(
        "llm_as_whisper",
        "encoder.pte",
        &[
            ("preprocessor_config.json", PREPROCESSOR),
            ("tokenizer.json", b"{}"),
            ("encoder.pte", &bytes),
        ],
    );
    let err = open_error(&dir);
    assert!(
        err.contains("encoder.pte") && err.contains("input_features"),
        "{err}"
    );
    // A directory with no Whisper programs at all.
    let err = open_error(&common::fixtures().join("../tiny_llama_default"));
    assert!(err.contains("not a Whisper model directory"), "{err}");
}

#[test]
fn mismatched_feature_extractor_is_refused() {
    let dir = model_dir(
        "mels128",
        "",
        &[
            (
                "preprocessor_config.json",
                br#"{"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128}"#,
            ),
            ("tokenizer.json", b"{}"),
        ],
    );
    let err = open_error(&dir);
    assert!(
        err.contains("[80, 3000]") && err.contains("[128, 3000]"),
        "{err}"
    );
}
