//! Log-mel features vs HF `WhisperFeatureExtractor` (tests/fixtures/whisper/mel, written by
//! `python/whisper_reference.py mel`): a speech clip and a synthetic chirp, 80 and 128 bins, the padded 30-s
//! window (short form) and the unpadded whole signal (long form). Tolerance: 1e-4 max-abs.

use etmlx_speech::audio::decode_file;
use etmlx_speech::{MelConfig, MelExtractor};

mod common;

const TOLERANCE: f32 = 1e-4;

fn check(clip: &str, reference: &str) {
    let (audio, report) = decode_file(&common::clip(clip)).expect("decode");
    assert_eq!(audio.sample_rate, 16_000);
    assert_eq!(report.channels, 1);
    let meta = common::read_json(common::fixtures().join(format!("mel/{reference}.json")));
    assert_eq!(
        audio.samples.len() as u64,
        meta["samples"].as_u64().unwrap()
    );
    let n_mels = meta["n_mels"].as_u64().unwrap() as usize;
    let mel = MelExtractor::new(MelConfig::whisper(n_mels)).expect("mel config");

    // Short form: the 30-s window. HF's frames past the stored ones all equal `tail_value`.
    let window = mel.window_features(&audio.samples);
    assert_eq!(window.n_mels, n_mels);
    assert_eq!(
        window.n_frames,
        meta["window_frames"].as_u64().unwrap() as usize
    );
    let (shape, hf) =
        common::read_npy_f32(common::fixtures().join(format!("mel/{reference}.window.npy")));
    let stored = shape[1];
    assert_eq!(shape[0], n_mels);
    let ours = window.window(0, stored);
    let (diff, at) = common::max_abs_diff(&ours, &hf);
    assert!(
        diff <= TOLERANCE,
        "{reference} window: max |diff| {diff} at bin {}, frame {}",
        at / stored,
        at % stored
    );
    let tail = meta["tail_value"].as_f64().unwrap() as f32;
    for m in 0..n_mels {
        for t in stored..window.n_frames {
            let v = window.data[m * window.n_frames + t];
            assert!(
                (v - tail).abs() <= TOLERANCE,
                "{reference} padded tail: bin {m} frame {t}: {v} vs HF {tail}"
            );
        }
    }

    // Long form: the unpadded signal, normalised over all of it.
    let longest = mel.features(&audio.samples);
    let (shape, hf) =
        common::read_npy_f32(common::fixtures().join(format!("mel/{reference}.longest.npy")));
    assert_eq!(
        (longest.n_mels, longest.n_frames),
        (shape[0], shape[1]),
        "{reference} longest shape"
    );
    let (diff, at) = common::max_abs_diff(&longest.data, &hf);
    assert!(
        diff <= TOLERANCE,
        "{reference} longest: max |diff| {diff} at bin {}, frame {}",
        at / shape[1],
        at % shape[1]
    );
}

#[test]
fn speech_clip_matches_hf_features() {
    check("fox.wav", "fox");
}

#[test]
fn synthetic_chirp_matches_hf_features() {
    check("chirp.wav", "chirp");
}

#[test]
fn chirp_with_128_bins_matches_hf_features() {
    check("chirp.wav", "chirp128");
}
