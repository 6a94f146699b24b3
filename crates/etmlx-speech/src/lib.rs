//! Speech to text with the Whisper exports of the official ExecuTorch MLX exporter
//! (`executorch.backends.mlx.examples.whisper.export_whisper`: `encoder.pte`, `cross_kv.pte`, `decoder.pte`).
//!
//! - [`audio`]: decode WAV/FLAC/MP3/OGG, mix to mono, resample to 16 kHz;
//! - [`mel`]: Whisper's log-mel spectrogram, as HF `WhisperFeatureExtractor` computes it;

pub mod audio;
pub mod error;
pub mod mel;

pub use audio::{Audio, DecodeReport};
pub use error::{Result, SpeechError};
pub use mel::{LogMel, MelConfig, MelExtractor};
