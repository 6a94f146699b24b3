//! A tiny random Whisper (2+2 layers, d 32, vocab 320) exported by the official `export_whisper` (fp32),
//! through all three programs, against PyTorch (tests/fixtures/whisper/tiny_random, written by
//! `python/whisper_reference.py tiny-random`): encoder output, teacher-forced decoder logits with the KV cache
//! one token per call, and greedy ids.
//!
//! The input is HF's own features of fox.wav (tests/fixtures/whisper/mel: the stored frames plus the constant
//! padded tail), so the programs are checked apart from our log-mel.

use etmlx_runtime::BackendOptions;
use etmlx_speech::decoding::argmax;
use etmlx_speech::WhisperModel;

mod common;

const TOLERANCE: f32 = 1e-4;

fn hf_window_features() -> Vec<f32> {
    let meta = common::read_json(common::fixtures().join("mel/fox.json"));
    let frames = meta["window_frames"].as_u64().unwrap() as usize;
    let tail = meta["tail_value"].as_f64().unwrap() as f32;
    let (shape, stored) = common::read_npy_f32(common::fixtures().join("mel/fox.window.npy"));
    let (n_mels, kept) = (shape[0], shape[1]);
    let mut out = vec![tail; n_mels * frames];
    for m in 0..n_mels {
        out[m * frames..][..kept].copy_from_slice(&stored[m * kept..][..kept]);
    }
    out
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn open() -> WhisperModel {
    let dir = common::fixtures().join("tiny_random/pte");
    let metadata = common::read_json(dir.join("metadata.json"));
    let max_len = metadata["max_decoder_seq_len"].as_u64().unwrap() as usize;
    WhisperModel::open(&dir, &BackendOptions::default(), max_len).expect("open the three programs")
}

#[test]
fn tiny_random_whisper_matches_pytorch() {
    let reference = common::read_json(common::fixtures().join("tiny_random/reference.json"));
    let mut model = open();
    assert_eq!(model.dims().decoder_layers, 2);
    assert_eq!((model.dims().n_mels, model.dims().n_frames), (80, 3000));

    let hidden = model
        .encode(&hf_window_features())
        .expect("encoder + cross-KV");
    assert_eq!(hidden.sizes, vec![1, 1500, 32]);
    let (shape, expected) =
        common::read_npy_f32(common::fixtures().join("tiny_random/encoder_out.npy"));
    let rows = shape[0] * shape[1];
    let ours: Vec<f32> = hidden.bytes[..rows * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (diff, at) = common::max_abs_diff(&ours, &expected);
    assert!(
        diff <= TOLERANCE * 10.0,
        "encoder output: max |diff| {diff} at {at}"
    );

    // Teacher-forced logits, one token per decoder call (the official decoder is traced with one token).
    let forced = ids(&reference["forced_ids"]);
    let (shape, expected) =
        common::read_npy_f32(common::fixtures().join("tiny_random/decoder_logits.npy"));
    let vocab = shape[1];
    for (pos, &token) in forced.iter().enumerate() {
        let logits = model.decode(&[token], pos).expect("decoder step");
        assert_eq!(logits.len(), vocab);
        let (diff, at) = common::max_abs_diff(&logits, &expected[pos * vocab..][..vocab]);
        assert!(
            diff <= TOLERANCE * 10.0,
            "logits at position {pos}: max |diff| {diff} at id {at}"
        );
    }

    // Greedy from the prefix; a new sequence overwrites the cache from position 0.
    let greedy = ids(&reference["greedy_ids"]);
    let prefix = ids(&reference["prefix"]);
    let mut tokens = prefix.clone();
    let mut logits = model.decode(&tokens, 0).expect("prefix");
    while tokens.len() < greedy.len() {
        let next = argmax(&logits) as u32;
        tokens.push(next);
        logits = model.decode(&[next], tokens.len() - 1).expect("step");
    }
    assert_eq!(tokens, greedy, "greedy ids vs PyTorch");
}

#[test]
fn decode_checks_positions_and_order() {
    let mut model = open();
    let before = model.decode(&[1], 0).unwrap_err().to_string();
    assert!(before.contains("decode before encode"), "{before}");
    model.encode(&hf_window_features()).unwrap();
    let max = model.dims().max_decoder_len;
    let past = model.decode(&[1], max).unwrap_err().to_string();
    assert!(past.contains("exceed"), "{past}");
    let wrong = model.encode(&[0.0; 10]).unwrap_err().to_string();
    assert!(wrong.contains("feature values"), "{wrong}");
}
