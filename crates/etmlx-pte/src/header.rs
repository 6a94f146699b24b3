//! The container headers: the `.pte` extended header (`eh00`) and the `.ptd` header (`FH01`).
//!
//! Both are spliced into the FlatBuffer right after its 4-byte file identifier, so the FlatBuffer
//! itself is still read from byte 0.

use serde::Serialize;

use crate::bytes::{read_u32_le, read_u64_le, ByteRange};
use crate::error::{PteError, Result};

/// FlatBuffer file identifier of a `.pte` (bytes 4..8).
pub const PTE_IDENTIFIER: &[u8; 4] = b"ET12";
/// Magic of the `.pte` extended header (bytes 8..12).
pub const PTE_HEADER_MAGIC: &[u8; 4] = b"eh00";
/// Shortest `.pte` extended header length accepted (magic, length, program size, segment base).
pub const PTE_HEADER_MIN_LEN: u32 = 24;
/// `.pte` header length from which `segment_data_size` is present.
pub const PTE_HEADER_LEN_WITH_DATA_SIZE: u32 = 32;
/// FlatBuffer file identifier of a `.ptd` (bytes 4..8).
pub const PTD_IDENTIFIER: &[u8; 4] = b"FT01";
/// Magic of the `.ptd` header (bytes 8..12).
pub const PTD_HEADER_MAGIC: &[u8; 4] = b"FH01";
/// Shortest `.ptd` header length accepted.
pub const PTD_HEADER_MIN_LEN: u32 = 40;

/// Where the header starts: right after the root offset and the file identifier.
const HEADER_START: usize = 8;

const PTE_FORMAT: &str = "an ExecuTorch program (.pte)";
const PTE_VERSION_HINT: &str = "etmlx reads program schema ET12, the identifier written by \
     current ExecuTorch releases (verified with ExecuTorch 1.5.1); re-export older files with a \
     current ExecuTorch";
const PTD_FORMAT: &str = "an ExecuTorch tensor data file (.ptd)";
const PTD_VERSION_HINT: &str =
    "etmlx reads FlatTensor schema FT01 (verified with ExecuTorch 1.5.1)";

/// The `.pte` extended header, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExtendedHeader {
    /// Header length in bytes, counting the magic and this field (32 from current writers).
    pub length: u32,
    /// Size of the FlatBuffer region, counted from byte 0 (header included).
    pub program_size: u64,
    /// Absolute file offset of the first segment; 0 when there are none.
    pub segment_base_offset: u64,
    /// Bytes from `segment_base_offset` to the end of the last segment; absent when
    /// `length < 32` (the segment data then extends to the end of the file).
    pub segment_data_size: Option<u64>,
}

/// Where the FlatBuffer and the segment data are in a file, checked against its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileLayout {
    /// `[0, program_size)` holds the FlatBuffer.
    pub program_size: u64,
    /// The segment data area; segment offsets are relative to its start.
    pub segment_data: ByteRange,
}

fn too_short(what: &'static str, needed: usize, actual: usize) -> PteError {
    PteError::TooShort {
        what,
        needed: needed as u64,
        actual: actual as u64,
    }
}

fn check_identifier(
    bytes: &[u8],
    expected: &'static [u8; 4],
    format: &'static str,
    hint: &'static str,
) -> Result<()> {
    let found: [u8; 4] = bytes
        .get(4..8)
        .and_then(|id| id.try_into().ok())
        .ok_or_else(|| too_short("FlatBuffer root offset and file identifier", 8, bytes.len()))?;
    if &found != expected {
        return Err(PteError::BadIdentifier {
            format,
            // The constants are ASCII, so this never falls back.
            expected: std::str::from_utf8(expected).unwrap_or("????"),
            found,
            hint,
        });
    }
    Ok(())
}

/// Segment data area `[base, base+size)` (or to the end of the file when `size` is `None`),
/// checked to lie after the program and inside the file.
fn segment_area(
    header: &'static str,
    program_size: u64,
    base: u64,
    size: Option<u64>,
    file_len: u64,
) -> Result<ByteRange> {
    if base == 0 {
        if size.unwrap_or(0) != 0 {
            return Err(PteError::BadHeader {
                header,
                reason: format!("segment_base_offset is 0 but segment_data_size is {size:?}"),
            });
        }
        // No segments: an empty area right after the program keeps zero-size segments valid.
        return Ok(ByteRange {
            offset: program_size,
            len: 0,
        });
    }
    if base < program_size {
        return Err(PteError::BadHeader {
            header,
            reason: format!(
                "segment_base_offset {base} lies inside the FlatBuffer region of {program_size} bytes"
            ),
        });
    }
    let len = match size {
        Some(size) => size,
        None => file_len.checked_sub(base).ok_or(PteError::OutOfBounds {
            what: "segment data".into(),
            offset: base,
            size: 0,
            limit_name: "the file",
            limit: file_len,
        })?,
    };
    let area = ByteRange { offset: base, len };
    match area.end() {
        Some(end) if end <= file_len => Ok(area),
        _ => Err(PteError::OutOfBounds {
            what: "segment data".into(),
            offset: base,
            size: len,
            limit_name: "the file",
            limit: file_len,
        }),
    }
}

fn check_program_size(
    header: &'static str,
    program_size: u64,
    min: usize,
    file_len: u64,
) -> Result<()> {
    if program_size < min as u64 {
        return Err(PteError::BadHeader {
            header,
            reason: format!(
                "program size {program_size} is smaller than the header itself ({min} bytes)"
            ),
        });
    }
    if program_size > file_len {
        return Err(PteError::OutOfBounds {
            what: "FlatBuffer region".into(),
            offset: 0,
            size: program_size,
            limit_name: "the file",
            limit: file_len,
        });
    }
    Ok(())
}

/// Reads the `.pte` identifier and optional extended header.
pub(crate) fn parse_pte_header(bytes: &[u8]) -> Result<(Option<ExtendedHeader>, FileLayout)> {
    check_identifier(bytes, PTE_IDENTIFIER, PTE_FORMAT, PTE_VERSION_HINT)?;
    let file_len = bytes.len() as u64;
    if bytes.get(HEADER_START..HEADER_START + 4) != Some(PTE_HEADER_MAGIC.as_slice()) {
        // No extended header: the whole file is the program and there is no segment data.
        let layout = FileLayout {
            program_size: file_len,
            segment_data: ByteRange {
                offset: file_len,
                len: 0,
            },
        };
        return Ok((None, layout));
    }
    let length =
        read_u32_le(bytes, 12).ok_or_else(|| too_short("eh00 header length", 16, bytes.len()))?;
    if length < PTE_HEADER_MIN_LEN {
        return Err(PteError::BadHeader {
            header: "eh00",
            reason: format!("header length {length} is below the minimum of {PTE_HEADER_MIN_LEN}"),
        });
    }
    let fields_end = HEADER_START
        + if length >= PTE_HEADER_LEN_WITH_DATA_SIZE {
            PTE_HEADER_LEN_WITH_DATA_SIZE as usize
        } else {
            PTE_HEADER_MIN_LEN as usize
        };
    if bytes.len() < fields_end {
        return Err(too_short("eh00 header fields", fields_end, bytes.len()));
    }
    let field = |offset| {
        read_u64_le(bytes, offset)
            .ok_or_else(|| too_short("eh00 header fields", fields_end, bytes.len()))
    };
    let program_size = field(16)?;
    let segment_base_offset = field(24)?;
    let segment_data_size = if length >= PTE_HEADER_LEN_WITH_DATA_SIZE {
        Some(field(32)?)
    } else {
        None
    };
    check_program_size("eh00", program_size, fields_end, file_len)?;
    let segment_data = segment_area(
        "eh00",
        program_size,
        segment_base_offset,
        segment_data_size,
        file_len,
    )?;
    let header = ExtendedHeader {
        length,
        program_size,
        segment_base_offset,
        segment_data_size,
    };
    Ok((
        Some(header),
        FileLayout {
            program_size,
            segment_data,
        },
    ))
}

/// The `.ptd` header, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PtdHeader {
    /// Header length in bytes, counting the magic and this field (40 from current writers).
    pub length: u32,
    /// Offset of the FlatBuffer data (48 in practice).
    pub flatbuffer_offset: u64,
    /// Size of the FlatBuffer data.
    pub flatbuffer_size: u64,
    /// Absolute file offset of the first segment.
    pub segment_base_offset: u64,
    /// Bytes of segment data.
    pub segment_data_size: u64,
}

/// Reads the `.ptd` identifier and header.
pub(crate) fn parse_ptd_header(bytes: &[u8]) -> Result<(PtdHeader, FileLayout)> {
    check_identifier(bytes, PTD_IDENTIFIER, PTD_FORMAT, PTD_VERSION_HINT)?;
    let file_len = bytes.len() as u64;
    let magic = bytes
        .get(HEADER_START..HEADER_START + 4)
        .ok_or_else(|| too_short("FH01 header magic", 12, bytes.len()))?;
    if magic != PTD_HEADER_MAGIC {
        return Err(PteError::BadHeader {
            header: "FH01",
            reason: format!("expected magic \"FH01\" at bytes 8..12, found {magic:02x?}"),
        });
    }
    let length =
        read_u32_le(bytes, 12).ok_or_else(|| too_short("FH01 header length", 16, bytes.len()))?;
    if length < PTD_HEADER_MIN_LEN {
        return Err(PteError::BadHeader {
            header: "FH01",
            reason: format!("header length {length} is below the minimum of {PTD_HEADER_MIN_LEN}"),
        });
    }
    let fields_end = HEADER_START + PTD_HEADER_MIN_LEN as usize;
    let field = |offset| {
        read_u64_le(bytes, offset)
            .ok_or_else(|| too_short("FH01 header fields", fields_end, bytes.len()))
    };
    let header = PtdHeader {
        length,
        flatbuffer_offset: field(16)?,
        flatbuffer_size: field(24)?,
        segment_base_offset: field(32)?,
        segment_data_size: field(40)?,
    };
    let program_size = header
        .flatbuffer_offset
        .checked_add(header.flatbuffer_size)
        .ok_or_else(|| PteError::Overflow {
            what: "FH01 flatbuffer_offset + flatbuffer_size".into(),
            detail: format!("{} + {}", header.flatbuffer_offset, header.flatbuffer_size),
        })?;
    check_program_size("FH01", program_size, fields_end, file_len)?;
    let segment_data = segment_area(
        "FH01",
        program_size,
        header.segment_base_offset,
        Some(header.segment_data_size),
        file_len,
    )?;
    Ok((
        header,
        FileLayout {
            program_size,
            segment_data,
        },
    ))
}
