use std::ffi::{c_int, CStr};

/// An MLX call failed (MLX's C++ exception message) or an argument was rejected before reaching
/// MLX. `op` names the wrapper function, e.g. `"reshape"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlxError {
    #[error("MLX {op} failed: {message}")]
    Mlx { op: &'static str, message: String },
    #[error("MLX {op}: invalid argument: {reason}")]
    InvalidArgument { op: &'static str, reason: String },
}

pub type Result<T, E = MlxError> = std::result::Result<T, E>;

impl MlxError {
    pub fn op(&self) -> &'static str {
        match self {
            MlxError::Mlx { op, .. } | MlxError::InvalidArgument { op, .. } => op,
        }
    }

    pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        MlxError::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }
}

/// Turns a shim status into a `Result`, fetching the thread-local C++ message on failure.
pub(crate) fn check(op: &'static str, status: c_int) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    // SAFETY: etm_last_error returns a NUL-terminated thread-local string that stays valid until
    // the next failing shim call on this thread; it is copied immediately.
    let message = unsafe { CStr::from_ptr(mlx_sys::etm_last_error()) }
        .to_string_lossy()
        .into_owned();
    Err(MlxError::Mlx { op, message })
}

/// Converts a Rust string for the C ABI.
pub(crate) fn c_string(op: &'static str, value: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(value)
        .map_err(|_| MlxError::invalid(op, format!("string {value:?} contains a NUL byte")))
}

impl MlxError {
    /// Prefixes MLX's message with the concrete op of a dispatcher (e.g. `Add` for `binary`).
    pub(crate) fn with_detail(self, detail: impl std::fmt::Debug) -> Self {
        match self {
            MlxError::Mlx { op, message } => MlxError::Mlx {
                op,
                message: format!("{detail:?}: {message}"),
            },
            other => other,
        }
    }
}
