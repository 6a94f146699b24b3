//! A Hugging Face tokenizer plus the config files that surround it.
//!
//! A model folder usually holds `tokenizer.json` (the tokenizer itself), `tokenizer_config.json` (special token
//! names, `add_bos_token`, often the chat template), `special_tokens_map.json` (older exports), a separate
//! `chat_template.jinja` (transformers ≥ 4.50 writes it there) and `generation_config.json` (EOS ids and sampling
//! defaults). [`Tokenizer::from_path`] reads whichever are present and cross-checks them: a config that names a
//! token the tokenizer does not know means the files come from different models, and that is an error naming
//! the file.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{LlmError, Result};

/// Largest `tokenizer.json` we read (Gemma 3's is about 33 MB).
pub const MAX_TOKENIZER_JSON_BYTES: u64 = 512 << 20;
/// Largest config or template file we read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

pub const TOKENIZER_JSON: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";
pub const SPECIAL_TOKENS_MAP_JSON: &str = "special_tokens_map.json";
pub const GENERATION_CONFIG_JSON: &str = "generation_config.json";
pub const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
pub const CHAT_TEMPLATE_JSON: &str = "chat_template.json";

/// A special token: its text and its id in the tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialToken {
    pub text: String,
    pub id: u32,
}

/// A chat template's Jinja source and where it came from (a file path, or `file#chat_template`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    pub text: String,
    pub origin: String,
}

/// The parts of `generation_config.json` a runner uses: stop ids and sampling defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationConfig {
    pub bos_token_id: Option<u32>,
    /// `eos_token_id`, which may be an int or a list in the file.
    pub eos_token_ids: Vec<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub max_new_tokens: Option<usize>,
}

/// Which files a tokenizer was loaded from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizerFiles {
    pub tokenizer_json: PathBuf,
    pub tokenizer_config: Option<PathBuf>,
    pub special_tokens_map: Option<PathBuf>,
    pub generation_config: Option<PathBuf>,
    pub chat_template: Option<PathBuf>,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
    files: TokenizerFiles,
    bos: Option<SpecialToken>,
    eos: Option<SpecialToken>,
    /// `add_bos_token` from tokenizer_config.json, when the file says.
    add_bos_token: Option<bool>,
    generation: GenerationConfig,
    chat_template: Option<TemplateSource>,
    /// Largest id the tokenizer can produce or decode (added tokens included).
    max_id: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("origin", &self.origin)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("generation", &self.generation)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

impl Tokenizer {
    /// Loads from a model folder, or from a `tokenizer.json` path (its sibling config files are read too).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|e| LlmError::io(path, e))?;
        let (dir, tokenizer_json) = if meta.is_dir() {
            (path.to_path_buf(), path.join(TOKENIZER_JSON))
        } else {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (dir, path.to_path_buf())
        };
        if !tokenizer_json.is_file() {
            return Err(LlmError::NotFound {
                what: "tokenizer.json",
                path: tokenizer_json,
            });
        }
        let existing = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let files = TokenizerFiles {
            tokenizer_json,
            tokenizer_config: existing(TOKENIZER_CONFIG_JSON),
            special_tokens_map: existing(SPECIAL_TOKENS_MAP_JSON),
            generation_config: existing(GENERATION_CONFIG_JSON),
            chat_template: existing(CHAT_TEMPLATE_JINJA).or_else(|| existing(CHAT_TEMPLATE_JSON)),
        };
        Self::from_files(files)
    }

    /// Loads from an explicit set of files.
    pub fn from_files(files: TokenizerFiles) -> Result<Self> {
        let bytes = read_limited(&files.tokenizer_json, MAX_TOKENIZER_JSON_BYTES)?;
        let origin = files.tokenizer_json.display().to_string();
        let mut tok = Self::from_json_bytes(&bytes, &origin)?;
        tok.files = files.clone();

        let tokenizer_config = files
            .tokenizer_config
            .as_deref()
            .map(read_json)
            .transpose()?;
        let special_tokens_map = files
            .special_tokens_map
            .as_deref()
            .map(read_json)
            .transpose()?;

        for (field, slot) in [("bos_token", &mut tok.bos), ("eos_token", &mut tok.eos)] {
            // tokenizer_config.json wins; special_tokens_map.json is the older place for the same names.
            let sources = [
                (files.tokenizer_config.as_deref(), tokenizer_config.as_ref()),
                (
                    files.special_tokens_map.as_deref(),
                    special_tokens_map.as_ref(),
                ),
            ];
            for (path, json) in sources {
                let (Some(path), Some(json)) = (path, json) else {
                    continue;
                };
                if let Some(text) = token_text_field(json, field, path)? {
                    let id = tok.inner.token_to_id(&text).ok_or_else(|| {
                        LlmError::UnknownSpecialToken {
                            path: path.to_path_buf(),
                            field: field.to_string(),
                            token: text.clone(),
                            tokenizer: origin.clone(),
                        }
                    })?;
                    *slot = Some(SpecialToken { text, id });
                    break;
                }
            }
        }

        if let (Some(path), Some(json)) =
            (files.tokenizer_config.as_deref(), tokenizer_config.as_ref())
        {
            tok.add_bos_token = optional_bool(json, "add_bos_token", path)?;
            tok.chat_template = chat_template_field(json, path)?;
        }
        // A separate template file overrides the one embedded in tokenizer_config.json, as in transformers.
        if let Some(path) = files.chat_template.as_deref() {
            tok.chat_template = Some(read_template_file(path)?);
        }
        if let Some(path) = files.generation_config.as_deref() {
            tok.generation = parse_generation_config(&read_json(path)?, path, tok.max_id)?;
        }
        Ok(tok)
    }

    /// Builds a tokenizer from the contents of a `tokenizer.json` alone (no config files).
    pub fn from_json_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| LlmError::TokenizerLoad {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        let max_id =
            inner
                .get_vocab(true)
                .into_values()
                .max()
                .ok_or_else(|| LlmError::TokenizerLoad {
                    origin: origin.to_string(),
                    message: "the vocabulary is empty".to_string(),
                })?;
        Ok(Tokenizer {
            inner,
            origin: origin.to_string(),
            files: TokenizerFiles::default(),
            bos: None,
            eos: None,
            add_bos_token: None,
            generation: GenerationConfig::default(),
            chat_template: None,
            max_id,
        })
    }

    /// Where the tokenizer came from (the tokenizer.json path), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn files(&self) -> &TokenizerFiles {
        &self.files
    }

    /// Encodes `text`; `add_special_tokens` runs the tokenizer's post-processor (which may add BOS/EOS).
    /// Special-token texts inside `text` (e.g. `<|im_start|>`) always map to their ids.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| LlmError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes a prompt the way HF transformers does.
    ///
    /// A chat-templated prompt (`templated`) is encoded without special tokens, because the template writes
    /// BOS itself (`apply_chat_template(tokenize=True)` does the same). A raw prompt gets the tokenizer's
    /// special tokens, plus BOS when `tokenizer_config.json` asks for it and the post-processor did not add it.
    /// Either way a prompt never starts with two BOS tokens (text that already begins with the BOS text).
    pub fn encode_prompt(&self, text: &str, templated: bool) -> Result<Vec<u32>> {
        let mut ids = self.encode(text, !templated)?;
        if let Some(bos) = &self.bos {
            if !templated && self.add_bos_token == Some(true) && ids.first() != Some(&bos.id) {
                ids.insert(0, bos.id);
            }
            let leading = ids.iter().take_while(|&&id| id == bos.id).count();
            if leading > 1 {
                ids.drain(..leading - 1);
            }
        }
        Ok(ids)
    }

    /// Decodes ids to text; unknown ids are an error.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| id > self.max_id) {
            return Err(LlmError::Decode(format!(
                "token id {bad} is outside the vocabulary (largest id {})",
                self.max_id
            )));
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| LlmError::Decode(e.to_string()))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of tokens, added tokens included (HF `len(tokenizer)`).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Largest token id the tokenizer knows.
    pub fn max_token_id(&self) -> u32 {
        self.max_id
    }

    /// Errors when the tokenizer can produce ids the model has no embedding for (a tokenizer from another model).
    /// A model vocabulary larger than the tokenizer's is fine (embeddings are often padded).
    pub fn ensure_fits_vocab(&self, model_vocab: usize) -> Result<()> {
        if self.max_id as usize >= model_vocab {
            return Err(LlmError::VocabMismatch {
                origin: self.origin.clone(),
                max_id: self.max_id,
                model_vocab,
            });
        }
        Ok(())
    }

    pub fn bos_token(&self) -> Option<&SpecialToken> {
        self.bos.as_ref()
    }

    pub fn eos_token(&self) -> Option<&SpecialToken> {
        self.eos.as_ref()
    }

    /// `add_bos_token` from tokenizer_config.json, when present.
    pub fn add_bos_token(&self) -> Option<bool> {
        self.add_bos_token
    }

    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The EOS ids the model files declare: tokenizer_config's `eos_token` ∪ generation_config's `eos_token_id`.
    pub fn eos_ids(&self) -> Vec<u32> {
        let mut ids: BTreeSet<u32> = self.generation.eos_token_ids.iter().copied().collect();
        ids.extend(self.eos.as_ref().map(|t| t.id));
        ids.into_iter().collect()
    }

    /// The chat template found next to the tokenizer (chat_template.jinja, else tokenizer_config.json).
    pub fn chat_template_source(&self) -> Option<&TemplateSource> {
        self.chat_template.as_ref()
    }

    /// Texts of the added tokens marked special (`<|im_end|>`, `<|eot_id|>`, ...), sorted by id.
    pub fn special_tokens(&self) -> Vec<SpecialToken> {
        let mut out: Vec<SpecialToken> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| SpecialToken {
                text: t.content,
                id,
            })
            .collect();
        out.sort_by_key(|t| t.id);
        out
    }

    /// The underlying `tokenizers` tokenizer, for what this wrapper does not cover.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|e| LlmError::io(path, e))?;
    if meta.len() > limit {
        return Err(LlmError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "file is {} bytes, more than the {limit}-byte limit",
                meta.len()
            )),
        });
    }
    fs::read(path).map_err(|e| LlmError::io(path, e))
}

fn read_json(path: &Path) -> Result<Json> {
    let bytes = read_limited(path, MAX_CONFIG_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|source| LlmError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, field: &str, message: impl Into<String>) -> LlmError {
    LlmError::InvalidConfig {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// A special-token field: a string, an AddedToken object `{"content": ...}`, or null/absent.
fn token_text_field(json: &Json, field: &str, path: &Path) -> Result<Option<String>> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Object(obj)) => match obj.get("content") {
            Some(Json::String(s)) => Ok(Some(s.clone())),
            _ => Err(invalid(path, field, "an object without a string `content`")),
        },
        Some(other) => Err(invalid(
            path,
            field,
            format!("expected a string or an object, found {other}"),
        )),
    }
}

fn optional_bool(json: &Json, field: &str, path: &Path) -> Result<Option<bool>> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(
            path,
            field,
            format!("expected true or false, found {other}"),
        )),
    }
}

/// `chat_template` in tokenizer_config.json: a string, or a list of `{name, template}` where "default" is used.
fn chat_template_field(json: &Json, path: &Path) -> Result<Option<TemplateSource>> {
    let origin = format!("{}#chat_template", path.display());
    match json.get("chat_template") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(TemplateSource {
            text: s.clone(),
            origin,
        })),
        Some(Json::Array(items)) => {
            let mut names = Vec::new();
            for item in items {
                let name = item.get("name").and_then(Json::as_str);
                let template = item.get("template").and_then(Json::as_str);
                let (Some(name), Some(template)) = (name, template) else {
                    return Err(invalid(
                        path,
                        "chat_template",
                        "a list entry without string `name` and `template`",
                    ));
                };
                if name == "default" {
                    return Ok(Some(TemplateSource {
                        text: template.to_string(),
                        origin: format!("{origin}[default]"),
                    }));
                }
                names.push(name.to_string());
            }
            Err(invalid(
                path,
                "chat_template",
                format!("a list of named templates without \"default\" (has {names:?})"),
            ))
        }
        Some(other) => Err(invalid(
            path,
            "chat_template",
            format!("expected a string or a list, found {other}"),
        )),
    }
}

fn read_template_file(path: &Path) -> Result<TemplateSource> {
    let bytes = read_limited(path, MAX_CONFIG_BYTES)?;
    let origin = path.display().to_string();
    if path.extension().is_some_and(|e| e == "json") {
        // chat_template.json (processor exports) holds {"chat_template": "..."}.
        let json: Json = serde_json::from_slice(&bytes).map_err(|source| LlmError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        return chat_template_field(&json, path)?
            .ok_or_else(|| invalid(path, "chat_template", "missing"));
    }
    let text = String::from_utf8(bytes).map_err(|e| LlmError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    Ok(TemplateSource { text, origin })
}

fn token_id(value: &Json, path: &Path, field: &str, max_id: u32) -> Result<u32> {
    let id = value
        .as_u64()
        .ok_or_else(|| invalid(path, field, format!("expected a token id, found {value}")))?;
    if id > u64::from(max_id) {
        return Err(LlmError::SpecialIdOutOfRange {
            path: path.to_path_buf(),
            field: field.to_string(),
            id,
            vocab_size: max_id as usize + 1,
        });
    }
    Ok(id as u32)
}

fn parse_generation_config(json: &Json, path: &Path, max_id: u32) -> Result<GenerationConfig> {
    let mut cfg = GenerationConfig::default();
    match json.get("bos_token_id") {
        None | Some(Json::Null) => {}
        Some(v) => cfg.bos_token_id = Some(token_id(v, path, "bos_token_id", max_id)?),
    }
    match json.get("eos_token_id") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items {
                cfg.eos_token_ids
                    .push(token_id(item, path, "eos_token_id", max_id)?);
            }
        }
        Some(v) => cfg
            .eos_token_ids
            .push(token_id(v, path, "eos_token_id", max_id)?),
    }
    let number = |field: &str| -> Result<Option<f64>> {
        match json.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(path, field, format!("expected a number, found {v}"))),
        }
    };
    let count = |field: &str| -> Result<Option<usize>> {
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
    };
    cfg.do_sample = optional_bool(json, "do_sample", path)?;
    cfg.temperature = number("temperature")?.map(|v| v as f32);
    cfg.top_k = count("top_k")?;
    cfg.top_p = number("top_p")?.map(|v| v as f32);
    cfg.min_p = number("min_p")?.map(|v| v as f32);
    cfg.repetition_penalty = number("repetition_penalty")?.map(|v| v as f32);
    cfg.max_new_tokens = count("max_new_tokens")?;
    Ok(cfg)
}
