//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading a `.pte` or `.ptd` file.
///
/// Every variant names what is at fault (field path, index, offset) so that a
/// user looking at a broken file knows where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PteError {
    /// The file could not be opened, measured or mapped.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// The file ends before a structure that must be there.
    #[error("file too short for {what}: need {needed} bytes, file has {actual}")]
    TooShort {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },

    /// The FlatBuffer file identifier (bytes 4..8) is not the one this reader knows.
    #[error(
        "not {format}: expected file identifier {expected:?} at bytes 4..8, found {}; {hint}",
        show_magic(found)
    )]
    BadIdentifier {
        /// The kind of file expected, e.g. "an ExecuTorch program (.pte)".
        format: &'static str,
        /// The identifier expected, e.g. "ET12".
        expected: &'static str,
        /// The four bytes found.
        found: [u8; 4],
        /// Which writer versions produce the expected identifier.
        hint: &'static str,
    },

    /// The extended header (`eh00` / `FH01`) is malformed.
    #[error("bad {header} header: {reason}")]
    BadHeader {
        /// Which header ("eh00" or "FH01").
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A byte range lies (partly) outside the region that must contain it.
    #[error("{what}: range [{offset}, {offset}+{size}) exceeds {limit_name} of {limit} bytes")]
    OutOfBounds {
        /// The range's owner, e.g. `segments[3]`.
        what: String,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        size: u64,
        /// What bounds it, e.g. "segment data".
        limit_name: &'static str,
        /// The bound.
        limit: u64,
    },

    /// An offset or size computation overflowed.
    #[error("{what}: arithmetic overflow ({detail})")]
    Overflow {
        /// Where the computation happened.
        what: String,
        /// The operands.
        detail: String,
    },

    /// The FlatBuffer could not be read at the given field path.
    #[error("invalid flatbuffer at {context}: {source}")]
    Flatbuffer {
        /// Field path, e.g. `execution_plan[0].values[12]`.
        context: String,
        /// The planus error.
        source: planus::Error,
    },

    /// A field that this reader needs is absent.
    #[error("missing required field {context}")]
    MissingField {
        /// Field path.
        context: String,
    },

    /// A count exceeds one of this crate's named limits.
    #[error("{what}: count {count} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was being counted.
        what: String,
        /// The count found.
        count: u64,
        /// The limit (see [`crate::limits`]).
        limit: u64,
    },

    /// An index refers past the end of the table it indexes.
    #[error("{what}: index {index} out of range (table {table} has {len} entries)")]
    IndexOutOfRange {
        /// Field path of the index.
        what: String,
        /// The index found.
        index: i64,
        /// The table it indexes.
        table: &'static str,
        /// Number of entries in that table.
        len: usize,
    },

    /// An enum field holds a value this reader does not know.
    #[error("{context}: unknown value {value} for enum field {table}.{field}")]
    UnknownEnumValue {
        /// Field path of the table holding the field.
        context: String,
        /// Schema table holding the enum field, e.g. "Tensor".
        table: &'static str,
        /// The enum field, e.g. "scalar_type".
        field: &'static str,
        /// The raw value.
        value: i128,
    },

    /// Tensor metadata is inconsistent.
    #[error("{context}: invalid tensor: {reason}")]
    InvalidTensor {
        /// Field path of the tensor.
        context: String,
        /// What is wrong.
        reason: String,
    },

    /// A value or instruction is inconsistent in a way not covered above.
    #[error("{context}: {reason}")]
    Invalid {
        /// Field path.
        context: String,
        /// What is wrong.
        reason: String,
    },

    /// The same named-data key is defined by both the `.pte` and the `.ptd`.
    #[error("named data key {key:?} is defined in both the .pte and the .ptd")]
    DuplicateNamedData {
        /// The key.
        key: String,
    },

    /// Bytes were asked of a tensor that has none in this file.
    #[error("tensor has no {wanted} bytes in this file: it is {kind}")]
    NoTensorData {
        /// What was asked for ("constant" or "initial").
        wanted: &'static str,
        /// What the tensor is instead.
        kind: String,
    },
}

/// Result alias used throughout this crate.
pub type Result<T, E = PteError> = std::result::Result<T, E>;

fn show_magic(bytes: &[u8; 4]) -> String {
    let printable = bytes.iter().all(|b| b.is_ascii_graphic());
    if printable {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        format!("{bytes:02x?}")
    }
}

/// Attaches a field path to planus errors, built only when an error occurs.
pub(crate) trait FbContext<T> {
    fn at(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> FbContext<T> for std::result::Result<T, planus::Error> {
    fn at(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| {
            let context = context();
            match source.error_kind {
                planus::errors::ErrorKind::UnknownEnumTag { source: tag } => {
                    PteError::UnknownEnumValue {
                        context,
                        table: source.source_location.type_,
                        field: source.source_location.method,
                        value: tag.tag,
                    }
                }
                _ => PteError::Flatbuffer { context, source },
            }
        })
    }
}
