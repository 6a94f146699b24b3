//! `etmlx transcribe`: speech to text with an official Whisper export. Text streams to stdout as segments
//! finish; stats (audio seconds, real-time factor, encoder ms, decoder tok/s) go to stderr; a progress bar
//! shows on a terminal for audio longer than one window.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use etmlx_runtime::BackendOptions;
use etmlx_speech::subtitles::{self, Format};
use etmlx_speech::{DecodeOptions, Event, Transcriber, Transcript};

#[derive(clap::Args, Clone, Debug)]
pub struct TranscribeArgs {
    /// The export directory: encoder.pte, cross_kv.pte, decoder.pte, processor/ (tokenizer, feature extractor),
    /// generation_config.json, metadata.json.
    pub model_dir: PathBuf,
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis; any rate, any channels).
    #[arg(required = true)]
    pub audio: Vec<PathBuf>,
    /// Spoken language as a code (en, de, ...); default: the model's, else detected (multilingual models).
    #[arg(long)]
    pub language: Option<String>,
    /// transcribe or translate (to English; multilingual models).
    #[arg(long, value_parser = ["transcribe", "translate"])]
    pub task: Option<String>,
    /// Predict timestamps and print segment times (always on for audio longer than 30 s).
    #[arg(long)]
    pub timestamps: bool,
    /// Output format of the transcript (--output, or stdout).
    #[arg(long, default_value = "txt", value_parser = ["txt", "json", "srt", "vtt"])]
    pub format: String,
    /// Write the transcript in --format to this file (with several audio files: a directory, one file each).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print one JSON object {text, segments, language, stats} as the last stdout line instead of streaming.
    #[arg(long)]
    pub json: bool,
}

/// What stdout shows while segments arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// Plain text (with times when timestamps were asked for).
    Text { times: bool },
    /// SRT or WebVTT cues.
    Cues(Format),
    /// Nothing until the end (JSON).
    Quiet,
}

pub fn run(args: &TranscribeArgs, backend: BackendOptions) -> Result<()> {
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    let several = args.audio.len() > 1;
    if let (Some(out), true) = (&args.output, several) {
        // One file per input, named after it: two inputs with the same stem would overwrite each other.
        let mut stems = std::collections::HashSet::new();
        for path in &args.audio {
            if !stems.insert(path.file_stem().unwrap_or_default().to_owned()) {
                bail!(
                    "two audio files share the name {:?}: their transcripts would both be written to {}",
                    path.file_stem().unwrap_or_default(),
                    out.join(Path::new(path.file_stem().unwrap_or_default()).with_extension(&args.format))
                        .display()
                );
            }
        }
        std::fs::create_dir_all(out)
            .with_context(|| format!("creating output directory {}", out.display()))?;
    }
    // Check every input exists before loading the model (seconds), so a typo fails at once.
    for path in &args.audio {
        if !path.is_file() {
            bail!("audio file not found: {}", path.display());
        }
    }
    if !args.model_dir.is_dir() {
        bail!("model directory not found: {}", args.model_dir.display());
    }
    // The model loads after the first file decodes: bad audio fails before seconds of loading.
    let mut transcriber: Option<Transcriber> = None;
    let stream = match (args.json, args.output.is_some(), format) {
        (true, _, _) => Stream::Quiet,
        (false, true, _) | (false, false, Format::Txt) => Stream::Text {
            times: args.timestamps,
        },
        (false, false, Format::Srt | Format::Vtt) => Stream::Cues(format),
        (false, false, Format::Json) => Stream::Quiet,
    };
    let options = DecodeOptions {
        language: args.language.clone(),
        task: args.task.clone(),
        timestamps: args.timestamps || matches!(format, Format::Srt | Format::Vtt),
    };
    let mut results = Vec::new();
    for path in &args.audio {
        let (audio, report) = etmlx_speech::audio::load_for_whisper(path)?;
        if report.bad_packets > 0 {
            eprintln!(
                "etmlx: warning: {}: {} packets did not decode and were skipped",
                path.display(),
                report.bad_packets
            );
        }
        let transcriber = match &mut transcriber {
            Some(t) => t,
            None => {
                let t = Transcriber::open_with(&args.model_dir, &backend).with_context(|| {
                    format!(
                        "cannot load the Whisper model in {}",
                        args.model_dir.display()
                    )
                })?;
                for w in t.warnings() {
                    eprintln!("etmlx: warning: {w}");
                }
                transcriber.insert(t)
            }
        };
        let transcript = transcribe_one(transcriber, &audio.samples, &options, stream)
            .with_context(|| format!("transcribing {}", path.display()))?;
        eprintln!("[{}] {}", path.display(), summary(&transcript));
        if let Some(out) = &args.output {
            let file = if several {
                out.join(
                    Path::new(path.file_stem().unwrap_or_default()).with_extension(&args.format),
                )
            } else {
                out.clone()
            };
            std::fs::write(&file, subtitles::render(&transcript, format))
                .with_context(|| format!("writing {}", file.display()))?;
        } else if !args.json && format == Format::Json {
            print!("{}", subtitles::render(&transcript, format));
        }
        results.push((path.clone(), transcript));
    }
    if args.json {
        let value = if let [(path, t)] = results.as_slice() {
            let mut v = subtitles::to_json(t);
            v["file"] = serde_json::json!(path.display().to_string());
            v
        } else {
            let files: Vec<serde_json::Value> = results
                .iter()
                .map(|(path, t)| {
                    let mut v = subtitles::to_json(t);
                    v["file"] = serde_json::json!(path.display().to_string());
                    v
                })
                .collect();
            let text: Vec<&str> = results.iter().map(|(_, t)| t.text.as_str()).collect();
            let segments: Vec<serde_json::Value> = files
                .iter()
                .flat_map(|f| {
                    f["segments"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|mut s| {
                            s["file"] = f["file"].clone();
                            s
                        })
                })
                .collect();
            serde_json::json!({"text": text.join("\n"), "segments": segments, "files": files})
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{value}")?;
        stdout.flush()?;
    }
    Ok(())
}

fn transcribe_one(
    transcriber: &mut Transcriber,
    samples: &[f32],
    options: &DecodeOptions,
    stream: Stream,
) -> Result<Transcript> {
    let seconds = samples.len() as f64 / f64::from(etmlx_speech::audio::WHISPER_SAMPLE_RATE);
    let progress = (seconds > 30.0 && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new((seconds * 10.0).round() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {msg} [{elapsed_precise}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let mut cues = 0usize;
    if stream == Stream::Cues(Format::Vtt) {
        write_error = stdout.write_all(subtitles::VTT_HEADER.as_bytes()).err();
    }
    let mut on_event = |event: Event<'_>| match event {
        Event::Segment(segment) => {
            let text = match stream {
                Stream::Text { times: true } => format!(
                    "[{} --> {}] {}\n",
                    subtitles::timestamp(segment.start, '.'),
                    subtitles::timestamp(segment.end, '.'),
                    segment.text.trim()
                ),
                Stream::Text { times: false } => segment.text.clone(),
                Stream::Cues(Format::Srt) => {
                    cues += 1;
                    subtitles::srt_cue(cues, segment)
                }
                Stream::Cues(_) => subtitles::vtt_cue(segment),
                Stream::Quiet => String::new(),
            };
            if !text.is_empty() && write_error.is_none() {
                let mut emit = || {
                    stdout
                        .write_all(text.as_bytes())
                        .and_then(|()| stdout.flush())
                };
                // The bar is cleared while the text is written, so the two do not garble each other.
                let written = match &progress {
                    Some(bar) => bar.suspend(emit),
                    None => emit(),
                };
                write_error = written.err();
            }
        }
        Event::Progress { done, total } => {
            if let Some(bar) = &progress {
                bar.set_position((done * 10.0).round() as u64);
                bar.set_message(format!("{done:.0}/{total:.0} s"));
            }
        }
    };
    let transcript = transcriber.transcribe_with(samples, options, &mut on_event)?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(e) = write_error {
        return Err(e).context("writing to stdout");
    }
    if matches!(stream, Stream::Text { times: false }) {
        writeln!(stdout)?;
    }
    stdout.flush()?;
    Ok(transcript)
}

fn summary(t: &Transcript) -> String {
    let s = &t.stats;
    format!(
        "audio {:.1} s | RTF {:.3} ({:.0} ms) | encoder {:.0} ms ({} windows) | decoder {} tokens, {:.1} tok/s",
        s.audio_seconds,
        s.real_time_factor(),
        s.total_ms,
        s.encoder_ms,
        s.windows,
        s.decoder_tokens,
        s.decoder_tokens_per_second()
    )
}
