//! Host tensor files: the official op-test `.bin` format and NumPy `.npy`.

pub mod bin;
pub mod npy;

/// Errors reading or writing tensor files; they name the file position at fault.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed {format} data at byte {offset}: {message}")]
    Malformed {
        format: &'static str,
        offset: usize,
        message: String,
    },
    #[error("{format} cannot hold a {dtype} tensor")]
    UnsupportedDtype {
        format: &'static str,
        dtype: etmlx_pte::ScalarType,
    },
}
