//! `etmlx transcribe`: bad input fails with one clear message and exit status 1, never a panic; with the real
//! tiny.en export present (tools/demo-whisper.sh), `--json` gives HF's greedy text and `--format srt` cues.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn etmlx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etmlx"))
        .arg("transcribe")
        .args(args)
        .output()
        .expect("run etmlx")
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("etmlx-cli-transcribe");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs a failing command and returns its stderr after checking the exit status and that nothing panicked.
fn fails(args: &[&str]) -> String {
    let out = etmlx(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("etmlx: error:"), "{stderr}");
    stderr
}

fn tiny_pte_dir() -> String {
    fixtures()
        .join("whisper/tiny_random/pte")
        .display()
        .to_string()
}

#[test]
fn missing_audio_file() {
    let err = fails(&[&tiny_pte_dir(), "/nonexistent/talk.wav"]);
    assert!(
        err.contains("audio file not found: /nonexistent/talk.wav"),
        "{err}"
    );
}

#[test]
fn file_that_is_not_audio() {
    let notes = scratch("notes.mp3", b"not audio at all");
    let err = fails(&[&tiny_pte_dir(), notes.to_str().unwrap()]);
    assert!(
        err.contains("notes.mp3") && err.contains("not a supported audio file"),
        "{err}"
    );
}

#[test]
fn empty_and_truncated_audio() {
    let empty = scratch("empty.wav", b"");
    let err = fails(&[&tiny_pte_dir(), empty.to_str().unwrap()]);
    assert!(err.contains("empty"), "{err}");
    let fox = std::fs::read(fixtures().join("whisper/audio/fox.wav")).unwrap();
    let cut = scratch("cut.wav", &fox[..fox.len() / 2]);
    let err = fails(&[&tiny_pte_dir(), cut.to_str().unwrap()]);
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn missing_model_dir_and_tokenizer() {
    let fox = fixtures().join("whisper/audio/fox.wav");
    let err = fails(&["/nonexistent/whisper", fox.to_str().unwrap()]);
    assert!(err.contains("model directory not found"), "{err}");
    // The tiny random export has programs but no tokenizer.
    let err = fails(&[&tiny_pte_dir(), fox.to_str().unwrap()]);
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn model_dir_of_another_architecture() {
    let fox = fixtures().join("whisper/audio/fox.wav");
    let llm = fixtures().join("tiny_llama_default");
    let err = fails(&[llm.to_str().unwrap(), fox.to_str().unwrap()]);
    assert!(err.contains("not a Whisper model directory"), "{err}");
}

#[test]
fn unknown_format_is_a_usage_error() {
    let out = etmlx(&[&tiny_pte_dir(), "x.wav", "--format", "docx"]);
    assert_eq!(out.status.code(), Some(2));
}

fn real_export() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETMLX_WHISPER_DIR") {
        return Some(PathBuf::from(p));
    }
    etmlx_speech::transcribe::default_model_dir().filter(|p| p.join("decoder.pte").is_file())
}

#[test]
fn tiny_en_json_and_srt_match_hf() {
    let Some(dir) = real_export() else {
        eprintln!(
            "NOTICE: tiny_en_json_and_srt_match_hf did not run: no Whisper tiny.en export (run tools/demo-whisper.sh \
             or set ETMLX_WHISPER_DIR); see crates/etmlx-speech/tests/conditional_tests.txt"
        );
        return;
    };
    let clips = dir.parent().unwrap().join("clips");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clips.join("hf_reference.json")).unwrap())
            .unwrap();
    let hf = &reference["clips"]["weather.wav"];
    let clip = clips.join("weather.wav");
    let out = etmlx(&[
        dir.to_str().unwrap(),
        clip.to_str().unwrap(),
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["text"], hf["text"]);
    assert_eq!(last["segments"].as_array().unwrap().len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RTF") && stderr.contains("tok/s"),
        "{stderr}"
    );

    let out = etmlx(&[
        dir.to_str().unwrap(),
        clip.to_str().unwrap(),
        "--format",
        "srt",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success());
    let srt = String::from_utf8(out.stdout).unwrap();
    let segments = hf["segments"].as_array().unwrap();
    let first = &segments[0];
    let start = etmlx_speech::subtitles::timestamp(first["start"].as_f64().unwrap(), ',');
    let end = etmlx_speech::subtitles::timestamp(first["end"].as_f64().unwrap(), ',');
    assert!(
        srt.starts_with(&format!(
            "1\n{start} --> {end}\n{}\n\n",
            first["text"].as_str().unwrap().trim()
        )),
        "{srt}"
    );
    assert_eq!(srt.matches(" --> ").count(), segments.len());
}

#[test]
fn outputs_that_would_overwrite_each_other() {
    let audio = fixtures().join("whisper/audio");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("etmlx-cli-transcribe/out");
    let err = fails(&[
        &tiny_pte_dir(),
        audio.join("fox.flac").to_str().unwrap(),
        audio.join("fox.mp3").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("share the name"), "{err}");
}
