//! The crate's error type. Every variant names the file, field or value that is wrong.

use std::path::PathBuf;

pub type Result<T, E = SpeechError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("{what} not found: {path}")]
    NotFound { what: &'static str, path: PathBuf },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not audio we can decode (unknown container, unsupported codec, empty, truncated, ...).
    #[error("{path}: {message}")]
    Audio { path: PathBuf, message: String },

    /// Samples handed to the library directly are unusable (rate 0, NaN, ...).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),

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

    /// The model directory is not a Whisper export of the official exporter.
    #[error("{dir} is not a Whisper model directory: {reason}")]
    NotWhisper { dir: PathBuf, reason: String },

    /// A program's inputs or outputs are not what the Whisper export writes.
    #[error("{program}: {message}")]
    Signature { program: String, message: String },

    /// The tokenizer or its config files (boxed: `LlmError` is large and this path is rare).
    #[error(transparent)]
    Tokenizer(Box<etmlx_llm::LlmError>),

    /// The program runtime or the delegate failed.
    #[error(transparent)]
    Runtime(#[from] etmlx_runtime::RuntimeError),

    #[error("resampling failed: {0}")]
    Resample(String),

    /// A request the model cannot serve (a language it does not know, too many tokens, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl From<etmlx_llm::LlmError> for SpeechError {
    fn from(e: etmlx_llm::LlmError) -> Self {
        SpeechError::Tokenizer(Box::new(e))
    }
}

impl SpeechError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return SpeechError::NotFound { what: "file", path };
        }
        SpeechError::Io { path, source }
    }

    pub(crate) fn audio(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SpeechError::Audio {
            path: path.into(),
            message: message.into(),
        }
    }
}
