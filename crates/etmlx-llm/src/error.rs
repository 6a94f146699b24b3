//! The crate's error type. Every variant names the file, field, token or value that is wrong.

use std::path::PathBuf;

pub type Result<T, E = LlmError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{what} not found: {path}")]
    NotFound { what: &'static str, path: PathBuf },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path}: field `{field}`: {message}")]
    InvalidConfig {
        path: PathBuf,
        field: String,
        message: String,
    },

    #[error("cannot load tokenizer from {origin}: {message}")]
    TokenizerLoad { origin: String, message: String },

    /// A config file names a special token that the tokenizer does not know: the files come from different models.
    #[error("{path}: `{field}` is {token:?}, which is not a token of the tokenizer loaded from {tokenizer}")]
    UnknownSpecialToken {
        path: PathBuf,
        field: String,
        token: String,
        tokenizer: String,
    },

    #[error("{path}: `{field}` is token id {id}, outside the tokenizer's vocabulary of {vocab_size} ids")]
    SpecialIdOutOfRange {
        path: PathBuf,
        field: String,
        id: u64,
        vocab_size: usize,
    },

    #[error(
        "tokenizer {origin} does not match the model: it produces ids up to {max_id}, \
         but the model's vocabulary has only {model_vocab} entries"
    )]
    VocabMismatch {
        origin: String,
        max_id: u32,
        model_vocab: usize,
    },

    #[error("cannot encode text: {0}")]
    Encode(String),

    #[error("cannot decode token ids: {0}")]
    Decode(String),

    #[error("no chat template: {0}")]
    NoChatTemplate(String),

    #[error("chat template {origin}: {message}")]
    Template { origin: String, message: String },

    #[error("invalid sampler setting `{field}` = {value}: {expected}")]
    InvalidSamplerConfig {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("cannot sample: {0}")]
    Sampling(String),

    /// The program runtime or a delegate failed (loading, executing, reading a getter).
    #[error(transparent)]
    Runtime(#[from] etmlx_runtime::RuntimeError),

    /// The `.pte` has no method or signature a text-generation model exports.
    #[error("{path} is not an LLM export this runner supports: {reason}")]
    NotAnLlm { path: PathBuf, reason: String },

    /// A metadata getter of the `.pte` returned something unusable.
    #[error("model metadata `{getter}`: {message}")]
    Metadata { getter: String, message: String },

    /// The tokens would not fit the model's context (KV cache) length.
    #[error(
        "the prompt does not fit the context: {new_tokens} new tokens after {position} cached ones \
         need {needed} positions, but the model's context holds {max_ctx_len} \
         (shorten the prompt or start a new conversation)"
    )]
    ContextOverflow {
        new_tokens: usize,
        position: usize,
        needed: usize,
        max_ctx_len: usize,
    },

    /// The forward method returned something other than logits (or a token id) of the expected shape.
    #[error("model output: {0}")]
    ModelOutput(String),

    /// A request the loaded export cannot serve (e.g. penalties with an on-device sampling head).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl LlmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return LlmError::NotFound { what: "file", path };
        }
        LlmError::Io { path, source }
    }

    pub(crate) fn template(origin: &str, err: &minijinja::Error) -> Self {
        // minijinja's Display holds the kind and detail; the line number makes template bugs findable.
        let mut message = err.to_string();
        if let Some(line) = err.line() {
            message = format!("line {line}: {message}");
        }
        LlmError::Template {
            origin: origin.to_string(),
            message,
        }
    }
}
