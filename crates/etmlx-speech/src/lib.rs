//! Speech to text with the Whisper exports of the official ExecuTorch MLX exporter
//! (`executorch.backends.mlx.examples.whisper.export_whisper`: `encoder.pte`, `cross_kv.pte`, `decoder.pte`).
//!
//! - [`audio`]: decode WAV/FLAC/MP3/OGG, mix to mono, resample to 16 kHz;
//! - [`mel`]: Whisper's log-mel spectrogram, as HF `WhisperFeatureExtractor` computes it;
//! - [`config`]: the feature extractor's parameters, the generation config, the exporter's metadata;
//! - [`model`]: the three programs on `etmlx-runtime` + the MLX delegate;
//! - [`decoding`]: the prompt and the logits rules of HF's Whisper generation;
//! - [`transcribe`]: windows, greedy decoding, timestamps, long form: [`Transcriber`];
//! - [`subtitles`]: text, JSON, SRT and WebVTT output.
//!
//! ```no_run
//! # fn main() -> Result<(), etmlx_speech::SpeechError> {
//! let (audio, _) = etmlx_speech::audio::load_for_whisper("clip.wav".as_ref())?;
//! let mut transcriber = etmlx_speech::Transcriber::open("whisper-tiny-en")?;
//! let transcript = transcriber.transcribe(&audio.samples)?;
//! println!("{}", transcript.text);
//! # Ok(()) }
//! ```

pub mod audio;
pub mod config;
pub mod decoding;
pub mod error;
pub mod mel;
pub mod model;
pub mod subtitles;
pub mod transcribe;

pub use audio::{Audio, DecodeReport};
pub use decoding::DecodeOptions;
pub use error::{Result, SpeechError};
pub use mel::{LogMel, MelConfig, MelExtractor};
pub use model::WhisperModel;
pub use transcribe::{Event, Segment, TranscribeStats, Transcriber, Transcript};
