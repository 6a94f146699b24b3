//! The transcriber: features → windows → greedy decoding → segments, as HF `WhisperForConditionalGeneration.generate`
//! does with greedy search and no temperature fallback.
//!
//! - Without timestamps, audio of up to one window (30 s) is decoded once from the zero-padded window.
//! - With timestamps, and for any audio longer than a window, windows are decoded in sequence: features of the
//!   whole signal are computed once, a window is cut at `seek` (zero-padded at the end), and after decoding it
//!   the next window starts at the last complete segment's end timestamp (or after the window when the model
//!   says the speech ended), as openai-whisper and HF long-form do. Each window runs the encoder and the
//!   cross-KV program once, then the decoder token by token with its KV cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etmlx_runtime::BackendOptions;
use serde::Serialize;

use crate::audio::{self, WHISPER_SAMPLE_RATE};
use crate::config::{self, ExportMetadata, GenerationSettings};
use crate::decoding::{
    argmax, initial_tokens, needs_language_detection, DecodeOptions, LogitsRules,
};
use crate::error::{Result, SpeechError};
use crate::mel::{LogMel, MelExtractor};
use crate::model::{ModelTimings, WhisperModel};

/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;
/// `export_whisper`'s default `--max-decoder-seq-len`.
pub const DEFAULT_MAX_DECODER_SEQ_LEN: usize = 256;

/// Mel frames per encoder position (the encoder's two convolutions have strides 1 and 2).
pub const INPUT_STRIDE: usize = 2;

/// One transcribed span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Generated ids, timestamps included.
    pub tokens: Vec<u32>,
}

/// Timing of one transcription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TranscribeStats {
    pub audio_seconds: f64,
    /// Wall time of [`Transcriber::transcribe_with`] (features, programs, decoding).
    pub total_ms: f64,
    pub features_ms: f64,
    /// Encoder plus cross-KV programs.
    pub encoder_ms: f64,
    pub decoder_ms: f64,
    pub windows: usize,
    pub decoder_tokens: usize,
}

impl TranscribeStats {
    /// Processing time over audio time (< 1: faster than real time).
    pub fn real_time_factor(&self) -> f64 {
        if self.audio_seconds > 0.0 {
            self.total_ms / 1000.0 / self.audio_seconds
        } else {
            0.0
        }
    }

    pub fn decoder_tokens_per_second(&self) -> f64 {
        if self.decoder_ms > 0.0 {
            self.decoder_tokens as f64 / (self.decoder_ms / 1000.0)
        } else {
            0.0
        }
    }
}

/// The result of one transcription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// The language token used (`<|en|>`), when the model is multilingual.
    pub language: Option<String>,
    pub stats: TranscribeStats,
}

/// What the transcriber reports while it works.
#[derive(Debug)]
pub enum Event<'a> {
    /// A segment is final (segments arrive in order).
    Segment(&'a Segment),
    /// Audio decoded so far, in seconds, of `total`.
    Progress { done: f64, total: f64 },
}

/// A loaded Whisper export with its tokenizer, generation settings and feature extractor.
pub struct Transcriber {
    model: WhisperModel,
    tokenizer: etmlx_llm::Tokenizer,
    generation: GenerationSettings,
    mel: MelExtractor,
    metadata: Option<ExportMetadata>,
    warnings: Vec<String>,
    vocab_checked: bool,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("model", &self.model)
            .finish()
    }
}

impl Transcriber {
    /// Opens an export directory with default backend options (the GPU if this libmlx has one).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, &BackendOptions::default())
    }

    /// Opens an export directory: `encoder.pte`, `cross_kv.pte`, `decoder.pte`, the tokenizer and feature
    /// extractor config (in `processor/` or the directory itself), `generation_config.json` (recommended)
    /// and `metadata.json` (optional).
    pub fn open_with(dir: impl AsRef<Path>, backend: &BackendOptions) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(SpeechError::NotFound {
                what: "model directory",
                path: dir.to_path_buf(),
            });
        }
        let near = |name: &str| vec![dir.join("processor").join(name), dir.join(name)];
        let tokenizer_json = config::first_existing(&near("tokenizer.json")).ok_or_else(|| {
            SpeechError::NotWhisper {
                dir: dir.to_path_buf(),
                reason: "no tokenizer.json (looked in processor/ and the directory)".into(),
            }
        })?;
        let mut candidates = near("preprocessor_config.json");
        candidates.extend(near("processor_config.json"));
        let mel_config_path =
            config::first_existing(&candidates).ok_or_else(|| SpeechError::NotWhisper {
                dir: dir.to_path_buf(),
                reason:
                    "no preprocessor_config.json or processor_config.json (the feature extractor's \
                         parameters; looked in processor/ and the directory)"
                        .into(),
            })?;
        let mel_config = config::read_mel_config(&mel_config_path)?;
        let mut warnings = Vec::new();
        let metadata = match dir.join("metadata.json") {
            p if p.is_file() => Some(ExportMetadata::from_file(&p)?),
            _ => None,
        };
        let max_decoder_len = match metadata.as_ref().and_then(|m| m.max_decoder_seq_len) {
            Some(n) => n,
            None => {
                warnings.push(format!(
                    "{} has no metadata.json with max_decoder_seq_len: assuming the exporter's default of \
                     {DEFAULT_MAX_DECODER_SEQ_LEN} decoder positions",
                    dir.display()
                ));
                DEFAULT_MAX_DECODER_SEQ_LEN
            }
        };
        let model = WhisperModel::open(dir, backend, max_decoder_len)?;
        let dims = model.dims();
        if dims.n_mels != mel_config.n_mels || dims.n_frames != mel_config.frames_per_chunk() {
            return Err(SpeechError::NotWhisper {
                dir: dir.to_path_buf(),
                reason: format!(
                    "the encoder takes [{}, {}] features but {} describes [{}, {}]",
                    dims.n_mels,
                    dims.n_frames,
                    mel_config_path.display(),
                    mel_config.n_mels,
                    mel_config.frames_per_chunk()
                ),
            });
        }
        let tokenizer = etmlx_llm::Tokenizer::from_path(&tokenizer_json)?;
        let generation = match config::first_existing(&near("generation_config.json")) {
            Some(path) => GenerationSettings::from_file(&path)?,
            None => {
                warnings.push(format!(
                    "{} has no generation_config.json: special ids come from the tokenizer and no tokens are \
                     suppressed, so transcripts can differ from HF's (copy the HF model's generation_config.json \
                     into the directory)",
                    dir.display()
                ));
                GenerationSettings::from_tokenizer(&tokenizer)?
            }
        };
        if let Some(layers) = metadata.as_ref().and_then(|m| m.num_decoder_layers) {
            if layers != model.dims().decoder_layers {
                return Err(SpeechError::NotWhisper {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "metadata.json says {layers} decoder layers but the programs have {}",
                        model.dims().decoder_layers
                    ),
                });
            }
        }
        let mel = MelExtractor::new(mel_config)?;
        Ok(Transcriber {
            model,
            tokenizer,
            generation,
            mel,
            metadata,
            warnings,
            vocab_checked: false,
        })
    }

    /// Problems found while opening that do not stop transcription.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn model(&self) -> &WhisperModel {
        &self.model
    }

    pub fn generation(&self) -> &GenerationSettings {
        &self.generation
    }

    pub fn metadata(&self) -> Option<&ExportMetadata> {
        self.metadata.as_ref()
    }

    pub fn tokenizer(&self) -> &etmlx_llm::Tokenizer {
        &self.tokenizer
    }

    /// Transcribes 16 kHz mono samples with the default options (greedy, no timestamps unless longer than 30 s).
    pub fn transcribe(&mut self, samples: &[f32]) -> Result<Transcript> {
        self.transcribe_with(samples, &DecodeOptions::default(), &mut |_| {})
    }

    /// Decodes, mixes and resamples an audio file, then transcribes it.
    pub fn transcribe_file(
        &mut self,
        path: &Path,
        options: &DecodeOptions,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Transcript> {
        let (audio, _) = audio::load_for_whisper(path)?;
        self.transcribe_with(&audio.samples, options, on_event)
    }

    /// Transcribes 16 kHz mono samples; `on_event` sees each segment as it is final and the progress.
    pub fn transcribe_with(
        &mut self,
        samples: &[f32],
        options: &DecodeOptions,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Transcript> {
        audio::validate_samples(samples, WHISPER_SAMPLE_RATE)?;
        let began = Instant::now();
        self.model.reset_timings();
        let audio_seconds = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        let chunk = self.mel.config().chunk_samples;
        let long_form = samples.len() > chunk;
        let timestamps = options.timestamps || long_form;
        let options = DecodeOptions {
            timestamps,
            ..options.clone()
        };

        let features_began = Instant::now();
        let features = if long_form {
            self.mel.features(samples)
        } else {
            self.mel.window_features(samples)
        };
        let features_time = features_began.elapsed();

        let detected = if needs_language_detection(&self.generation, &options) {
            Some(self.detect_language(&features)?)
        } else {
            None
        };
        let prompt = initial_tokens(&self.generation, &options, detected)?;
        let language = self.language_of(&prompt);

        let segments = if timestamps {
            self.decode_with_timestamps(&features, &prompt, audio_seconds, on_event)?
        } else {
            let window = features.window(0, self.model.dims().n_frames);
            let mut generated = self.decode_window(&window, &prompt, false)?;
            if generated.last() == Some(&self.generation.eos_token_id) {
                generated.pop();
            }
            let segment = Segment {
                start: 0.0,
                end: audio_seconds,
                text: self.text_of(&generated)?,
                tokens: generated,
            };
            on_event(Event::Segment(&segment));
            on_event(Event::Progress {
                done: audio_seconds,
                total: audio_seconds,
            });
            vec![segment]
        };
        let all: Vec<u32> = segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        let text = self.text_of(&all)?;
        let t: ModelTimings = self.model.timings();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok(Transcript {
            text,
            segments,
            language,
            stats: TranscribeStats {
                audio_seconds,
                total_ms: ms(began.elapsed()),
                features_ms: ms(features_time),
                encoder_ms: ms(t.encoder + t.cross_kv),
                decoder_ms: ms(t.decoder),
                windows: t.windows,
                decoder_tokens: t.decoder_tokens,
            },
        })
    }

    fn language_of(&self, prompt: &[u32]) -> Option<String> {
        let id = prompt.get(1)?;
        self.generation
            .lang_to_id
            .iter()
            .find(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
    }

    /// HF `detect_language`: the most likely language token after the start token on the first window.
    fn detect_language(&mut self, features: &LogMel) -> Result<u32> {
        let window = features.window(0, self.model.dims().n_frames);
        self.model.encode(&window)?;
        let logits = self
            .model
            .decode(&[self.generation.decoder_start_token_id], 0)?;
        self.generation
            .lang_to_id
            .values()
            .copied()
            .filter(|&id| (id as usize) < logits.len())
            .max_by(|&a, &b| {
                logits[a as usize]
                    .total_cmp(&logits[b as usize])
                    .then(b.cmp(&a))
            })
            .ok_or_else(|| {
                SpeechError::Unsupported("the model has no language tokens to detect".into())
            })
    }

    /// Greedy decoding of one window: returns the generated ids (the end token included when produced).
    fn decode_window(
        &mut self,
        window: &[f32],
        prompt: &[u32],
        timestamps: bool,
    ) -> Result<Vec<u32>> {
        self.model.encode(window)?;
        let rules = LogitsRules::new(&self.generation, prompt.len(), timestamps);
        let max_len = self
            .generation
            .max_length
            .min(self.model.dims().max_decoder_len);
        if prompt.len() >= max_len {
            return Err(SpeechError::Unsupported(format!(
                "a prompt of {} tokens leaves no room in {max_len} decoder positions",
                prompt.len()
            )));
        }
        let mut tokens = prompt.to_vec();
        let mut logits = self.model.decode(&tokens, 0)?;
        if !self.vocab_checked {
            self.generation.validate(logits.len())?;
            self.vocab_checked = true;
        }
        let eos = self.generation.eos_token_id;
        loop {
            rules.apply(&tokens, &mut logits);
            let next = argmax(&logits) as u32;
            tokens.push(next);
            if next == eos || tokens.len() >= max_len {
                break;
            }
            logits = self.model.decode(&[next], tokens.len() - 1)?;
        }
        Ok(tokens.split_off(prompt.len()))
    }

    /// The sequential-window loop of HF long-form generation (also used for timestamps on short audio).
    fn decode_with_timestamps(
        &mut self,
        features: &LogMel,
        prompt: &[u32],
        audio_seconds: f64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<Segment>> {
        let frames_per_window = self.model.dims().n_frames;
        let max_frames = features.n_frames;
        let ts_begin = self.generation.timestamp_begin();
        let mut seek = 0usize;
        let mut segments = Vec::new();
        while seek < max_frames {
            let time_offset = seek as f64 * TIME_PRECISION / INPUT_STRIDE as f64;
            let seek_num_frames = (max_frames - seek).min(frames_per_window);
            let window = features.window(seek, frames_per_window);
            let mut generated = self.decode_window(&window, prompt, true)?;
            if generated.last() == Some(&self.generation.eos_token_id) {
                generated.pop();
            }
            let (found, advance) =
                split_segments(&generated, ts_begin, time_offset, seek_num_frames);
            for (start, end, tokens) in found {
                if !tokens.iter().any(|&t| t < ts_begin) {
                    continue;
                }
                let segment = Segment {
                    start,
                    end,
                    text: self.text_of(&tokens)?,
                    tokens,
                };
                on_event(Event::Segment(&segment));
                segments.push(segment);
            }
            // A window that ends on a timestamp of position 0 would not move; HF would loop forever there.
            seek += advance.max(1);
            on_event(Event::Progress {
                done: (seek as f64 * TIME_PRECISION / INPUT_STRIDE as f64).min(audio_seconds),
                total: audio_seconds,
            });
        }
        Ok(segments)
    }

    /// Text of ids, timestamps and special tokens left out.
    fn text_of(&self, ids: &[u32]) -> Result<String> {
        let ts = self.generation.timestamp_begin();
        let text_ids: Vec<u32> = ids.iter().copied().filter(|&t| t < ts).collect();
        Ok(self.tokenizer.decode(&text_ids, true)?)
    }
}

/// HF `_retrieve_segment`: splits a window's generated ids (end token removed) at consecutive timestamp pairs
/// into `(start s, end s, ids)` segments and says how many mel frames to advance.
pub fn split_segments(
    seq: &[u32],
    ts_begin: u32,
    time_offset: f64,
    seek_num_frames: usize,
) -> (Vec<(f64, f64, Vec<u32>)>, usize) {
    let is_ts: Vec<bool> = seq.iter().map(|&t| t >= ts_begin).collect();
    let n = seq.len();
    let single_timestamp_ending = n >= 2 && !is_ts[n - 2] && is_ts[n - 1];
    let pair_ends: Vec<usize> = (1..n).filter(|&i| is_ts[i - 1] && is_ts[i]).collect();
    let time = |id: u32| time_offset + f64::from(id.saturating_sub(ts_begin)) * TIME_PRECISION;
    if pair_ends.is_empty() {
        // One segment: up to the last timestamp, else the whole window.
        // HF computes the window's length in timestamp positions in float32: int(frames * 0.01 / 0.02).
        let mut end_position = (seek_num_frames as f32 * 0.01f32 / 0.02f32) as u32;
        if let Some(&last) = seq.iter().rev().find(|&&t| t >= ts_begin) {
            if last != ts_begin {
                end_position = last - ts_begin;
            }
        }
        let end = time_offset + f64::from(end_position) * TIME_PRECISION;
        return (vec![(time_offset, end, seq.to_vec())], seek_num_frames);
    }
    let mut slices = pair_ends;
    if single_timestamp_ending {
        slices.push(n);
    } else if let Some(last) = slices.last_mut() {
        // Keep the closing timestamp in the last complete segment.
        *last += 1;
    }
    let mut segments = Vec::new();
    let mut last_slice = 0;
    for (i, &current) in slices.iter().enumerate() {
        let is_last = i == slices.len() - 1;
        let sliced = &seq[last_slice..current];
        let end_index = if !is_last || single_timestamp_ending {
            sliced.len() - 1
        } else {
            sliced.len().saturating_sub(2)
        };
        segments.push((time(sliced[0]), time(sliced[end_index]), sliced.to_vec()));
        last_slice = current;
    }
    let advance = if single_timestamp_ending {
        seek_num_frames
    } else {
        // Seek to the last complete segment's end; what follows was cut by the window's edge.
        let last_timestamp = seq[last_slice - 2].saturating_sub(ts_begin) as usize;
        last_timestamp * INPUT_STRIDE
    };
    (segments, advance)
}

/// The model directory a path names: the path itself, or where `tools/demo-whisper.sh` caches exports.
pub fn default_model_dir() -> Option<PathBuf> {
    let home = std::env::var_os("ETMLX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/etmlx")))?;
    Some(home.join("models/whisper-tiny-en/pte-fp32"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u32 = 50363;

    #[test]
    fn pairs_split_segments_and_seek_to_the_last_complete_one() {
        // <|0.00|> a b <|1.00|><|1.00|> c <|2.00|><|2.00|> d (cut by the window)
        let seq = [TS, 1, 2, TS + 50, TS + 50, 3, TS + 100, TS + 100, 4];
        let (segments, advance) = split_segments(&seq, TS, 10.0, 3000);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].2, vec![TS, 1, 2, TS + 50]);
        assert!((segments[0].0 - 10.0).abs() < 1e-9 && (segments[0].1 - 11.0).abs() < 1e-9);
        assert_eq!(segments[1].2, vec![TS + 50, 3, TS + 100, TS + 100]);
        assert!((segments[1].1 - 12.0).abs() < 1e-9);
        assert_eq!(advance, 200);
    }

    #[test]
    fn single_timestamp_ending_consumes_the_window() {
        let seq = [TS, 1, TS + 50, TS + 50, 2, TS + 80];
        let (segments, advance) = split_segments(&seq, TS, 0.0, 1234);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].2, vec![TS + 50, 2, TS + 80]);
        assert!((segments[1].1 - 1.6).abs() < 1e-9);
        assert_eq!(advance, 1234);
    }
}
