//! What a Whisper model directory declares besides its programs: the feature extractor's parameters
//! (`preprocessor_config.json`, or `processor_config.json` as transformers 5 writes it), the generation config
//! (special ids, suppressed tokens, languages, tasks) and the exporter's `metadata.json`.
//!
//! The official exporter writes `processor/` and `metadata.json` next to the three programs but not
//! `generation_config.json`; our export script copies the HF model's one there. Without it the special ids come
//! from the tokenizer and nothing is suppressed (see [`GenerationSettings::from_tokenizer`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{Result, SpeechError};
use crate::mel::MelConfig;

/// Config files larger than this are refused (they are a few KB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

pub(crate) fn read_json(path: &Path) -> Result<Json> {
    let meta = std::fs::metadata(path).map_err(|e| SpeechError::io(path, e))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(invalid(
            path,
            "",
            format!("{} bytes is too large for a config file", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| SpeechError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| SpeechError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, field: &str, message: impl Into<String>) -> SpeechError {
    SpeechError::InvalidConfig {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// The first of `candidates` that exists.
pub(crate) fn first_existing(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned()
}

fn usize_field(json: &Json, field: &str, path: &Path) -> Result<Option<usize>> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    path,
                    field,
                    format!("expected a non-negative integer, found {v}"),
                )
            }),
    }
}

fn id_field(json: &Json, field: &str, path: &Path) -> Result<Option<u32>> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(None),
        // eos_token_id may be a list; Whisper's logits rules use the first.
        Some(Json::Array(items)) => match items.first() {
            None => Ok(None),
            Some(v) => as_id(v, field, path).map(Some),
        },
        Some(v) => as_id(v, field, path).map(Some),
    }
}

fn as_id(v: &Json, field: &str, path: &Path) -> Result<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid(path, field, format!("expected a token id, found {v}")))
}

fn id_list(json: &Json, field: &str, path: &Path) -> Result<Vec<u32>> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items.iter().map(|v| as_id(v, field, path)).collect(),
        Some(v) => Err(invalid(
            path,
            field,
            format!("expected a list of token ids, found {v}"),
        )),
    }
}

fn id_map(json: &Json, field: &str, path: &Path) -> Result<BTreeMap<String, u32>> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(BTreeMap::new()),
        Some(Json::Object(map)) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), as_id(v, field, path)?)))
            .collect(),
        Some(v) => Err(invalid(
            path,
            field,
            format!("expected an object, found {v}"),
        )),
    }
}

/// Reads the feature extractor's parameters from `preprocessor_config.json` (top-level fields) or
/// `processor_config.json` (under `feature_extractor`).
pub fn read_mel_config(path: &Path) -> Result<MelConfig> {
    let json = read_json(path)?;
    let fe = json.get("feature_extractor").unwrap_or(&json);
    if let Some(kind) = fe.get("feature_extractor_type").and_then(Json::as_str) {
        if kind != "WhisperFeatureExtractor" {
            return Err(invalid(
                path,
                "feature_extractor_type",
                format!("{kind}; expected WhisperFeatureExtractor"),
            ));
        }
    }
    let defaults = MelConfig::whisper(80);
    let get = |field: &str, default: usize| -> Result<usize> {
        Ok(usize_field(fe, field, path)?.unwrap_or(default))
    };
    let config = MelConfig {
        n_mels: get("feature_size", defaults.n_mels)?,
        n_fft: get("n_fft", defaults.n_fft)?,
        hop_length: get("hop_length", defaults.hop_length)?,
        sample_rate: u32::try_from(get("sampling_rate", defaults.sample_rate as usize)?)
            .map_err(|_| invalid(path, "sampling_rate", "out of range"))?,
        chunk_samples: get("n_samples", defaults.chunk_samples)?,
    };
    if config.sample_rate != crate::audio::WHISPER_SAMPLE_RATE {
        return Err(invalid(
            path,
            "sampling_rate",
            format!(
                "{} Hz; this runner resamples to 16000 Hz",
                config.sample_rate
            ),
        ));
    }
    Ok(config)
}

/// The decoding rules of the model's generation config (HF `WhisperForConditionalGeneration.generate`).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    pub decoder_start_token_id: u32,
    pub eos_token_id: u32,
    pub no_timestamps_token_id: u32,
    /// Tokens never generated.
    pub suppress_tokens: Vec<u32>,
    /// Tokens not generated as the first token of a window.
    pub begin_suppress_tokens: Vec<u32>,
    /// Latest timestamp index allowed as a window's first timestamp.
    pub max_initial_timestamp_index: Option<u32>,
    /// Decoder tokens per window, prompt included.
    pub max_length: usize,
    pub is_multilingual: bool,
    /// `<|en|>` → id.
    pub lang_to_id: BTreeMap<String, u32>,
    /// `transcribe` / `translate` → id.
    pub task_to_id: BTreeMap<String, u32>,
    /// `(position, id)` pairs forced after the start token (old configs: language, task, no-timestamps).
    pub forced_decoder_ids: Vec<(usize, Option<u32>)>,
    /// Where these settings came from, for messages.
    pub origin: String,
}

impl GenerationSettings {
    /// Id of the first timestamp token, `<|0.00|>`.
    pub fn timestamp_begin(&self) -> u32 {
        self.no_timestamps_token_id + 1
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let json = read_json(path)?;
        let required = |field: &str| -> Result<u32> {
            id_field(&json, field, path)?
                .ok_or_else(|| invalid(path, field, "missing (a Whisper generation config has it)"))
        };
        let decoder_start_token_id = required("decoder_start_token_id")?;
        let eos_token_id = required("eos_token_id")?;
        let no_timestamps_token_id = required("no_timestamps_token_id")?;
        let forced_decoder_ids = match json.get("forced_decoder_ids") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([pos, id]) => {
                        let pos = pos.as_u64().ok_or_else(|| {
                            invalid(path, "forced_decoder_ids", "a position is not an integer")
                        })?;
                        let id = if id.is_null() {
                            None
                        } else {
                            Some(as_id(id, "forced_decoder_ids", path)?)
                        };
                        Ok((pos as usize, id))
                    }
                    _ => Err(invalid(
                        path,
                        "forced_decoder_ids",
                        "expected [position, id] pairs",
                    )),
                })
                .collect::<Result<_>>()?,
            Some(v) => {
                return Err(invalid(
                    path,
                    "forced_decoder_ids",
                    format!("expected a list, found {v}"),
                ))
            }
        };
        let lang_to_id = id_map(&json, "lang_to_id", path)?;
        let is_multilingual = match json.get("is_multilingual") {
            Some(Json::Bool(b)) => *b,
            None | Some(Json::Null) => !lang_to_id.is_empty(),
            Some(v) => {
                return Err(invalid(
                    path,
                    "is_multilingual",
                    format!("expected true or false, found {v}"),
                ))
            }
        };
        Ok(GenerationSettings {
            decoder_start_token_id,
            eos_token_id,
            no_timestamps_token_id,
            suppress_tokens: id_list(&json, "suppress_tokens", path)?,
            begin_suppress_tokens: id_list(&json, "begin_suppress_tokens", path)?,
            max_initial_timestamp_index: id_field(&json, "max_initial_timestamp_index", path)?,
            max_length: usize_field(&json, "max_length", path)?.unwrap_or(448),
            is_multilingual,
            lang_to_id,
            task_to_id: id_map(&json, "task_to_id", path)?,
            forced_decoder_ids,
            origin: path.display().to_string(),
        })
    }

    /// Settings from the tokenizer's special tokens alone, for exports without a generation config: the start,
    /// end and no-timestamps ids, language and task tokens; nothing suppressed (HF would suppress the ids its
    /// generation config lists, so transcripts can differ from HF's).
    pub fn from_tokenizer(tok: &etmlx_llm::Tokenizer) -> Result<Self> {
        let id = |text: &str| {
            tok.token_to_id(text).ok_or_else(|| {
                SpeechError::Unsupported(format!(
                    "the tokenizer has no {text} token: not a Whisper tokenizer"
                ))
            })
        };
        let mut lang_to_id = BTreeMap::new();
        let mut task_to_id = BTreeMap::new();
        for t in tok.special_tokens() {
            let inner = t.text.trim_start_matches("<|").trim_end_matches("|>");
            if (2..=3).contains(&inner.len()) && inner.chars().all(|c| c.is_ascii_lowercase()) {
                lang_to_id.insert(t.text.clone(), t.id);
            }
        }
        for task in ["transcribe", "translate"] {
            if let Some(i) = tok.token_to_id(&format!("<|{task}|>")) {
                task_to_id.insert(task.to_string(), i);
            }
        }
        let sot = id("<|startoftranscript|>")?;
        let no_ts = id("<|notimestamps|>")?;
        // English-only vocabularies put <|startoftranscript|> right after <|endoftext|> (50256, 50257).
        let eot = id("<|endoftext|>")?;
        let is_multilingual = sot != eot + 1;
        if !is_multilingual {
            lang_to_id.clear();
            task_to_id.clear();
        }
        Ok(GenerationSettings {
            decoder_start_token_id: sot,
            eos_token_id: eot,
            no_timestamps_token_id: no_ts,
            suppress_tokens: Vec::new(),
            begin_suppress_tokens: Vec::new(),
            max_initial_timestamp_index: Some(50),
            max_length: 448,
            is_multilingual,
            lang_to_id,
            task_to_id,
            forced_decoder_ids: if is_multilingual {
                Vec::new()
            } else {
                vec![(1, Some(no_ts))]
            },
            origin: "the tokenizer's special tokens (no generation_config.json)".into(),
        })
    }

    /// Checks every id against the model's vocabulary.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        let all = [
            self.decoder_start_token_id,
            self.eos_token_id,
            self.no_timestamps_token_id,
        ]
        .into_iter()
        .chain(self.suppress_tokens.iter().copied())
        .chain(self.begin_suppress_tokens.iter().copied())
        .chain(self.lang_to_id.values().copied())
        .chain(self.task_to_id.values().copied())
        .chain(self.forced_decoder_ids.iter().filter_map(|(_, id)| *id));
        for id in all {
            if id as usize >= vocab {
                return Err(SpeechError::Unsupported(format!(
                    "{}: token id {id} is outside the model's vocabulary of {vocab}",
                    self.origin
                )));
            }
        }
        Ok(())
    }
}

/// The exporter's `metadata.json` (all fields optional: the programs' signatures are authoritative).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportMetadata {
    pub dtype: Option<String>,
    pub quantize_linear: Option<String>,
    pub max_decoder_seq_len: Option<usize>,
    pub encoder_seq_len: Option<usize>,
    pub num_decoder_layers: Option<usize>,
}

impl ExportMetadata {
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = read_json(path)?;
        let text = |field: &str| json.get(field).and_then(Json::as_str).map(str::to_string);
        Ok(ExportMetadata {
            dtype: text("dtype"),
            quantize_linear: text("quantize_linear"),
            max_decoder_seq_len: usize_field(&json, "max_decoder_seq_len", path)?,
            encoder_seq_len: usize_field(&json, "encoder_seq_len", path)?,
            num_decoder_layers: usize_field(&json, "num_decoder_layers", path)?,
        })
    }
}
