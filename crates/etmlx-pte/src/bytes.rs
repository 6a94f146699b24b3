//! File bytes: an mmap or a 16-byte-aligned owned buffer, shared through `Arc` so that views
//! handed to later layers stay zero-copy and keep the file alive.

use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{PteError, Result};

/// Alignment the whole buffer starts on. ExecuTorch requires the FlatBuffer region to be
/// 16-byte aligned, and constants inside the file are 16-byte aligned relative to its start,
/// so an aligned start keeps typed views (`bytemuck::try_cast_slice`) possible.
pub const BUFFER_ALIGNMENT: usize = 16;

#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub(crate) struct AlignedChunk([u8; BUFFER_ALIGNMENT]);

/// The bytes of one file.
pub(crate) enum Backing {
    Mapped(memmap2::Mmap),
    /// An owned buffer whose start happens to be suitably aligned.
    Owned(Vec<u8>),
    /// An owned buffer copied into aligned chunks; `len` bytes of it are the file.
    Aligned {
        chunks: Vec<AlignedChunk>,
        len: usize,
    },
}

impl Backing {
    /// Maps `path` read-only.
    pub(crate) fn map_file(path: &Path) -> Result<Self> {
        let io_error = |source| PteError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let len = file.metadata().map_err(io_error)?.len();
        if len == 0 {
            // Mapping an empty file fails on some platforms; an empty buffer gives the same
            // "too short" error as any other truncated file.
            return Ok(Self::Owned(Vec::new()));
        }
        // SAFETY: the mapping is read-only. As with every file mapping, the caller must not
        // truncate or rewrite the file while it is loaded; that is documented on `Pte::open`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error)?;
        Ok(Self::Mapped(map))
    }

    /// Takes ownership of `bytes`, copying only when their start is not aligned.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        if (bytes.as_ptr() as usize).is_multiple_of(BUFFER_ALIGNMENT) {
            return Self::Owned(bytes);
        }
        let len = bytes.len();
        let mut chunks = vec![AlignedChunk([0; BUFFER_ALIGNMENT]); len.div_ceil(BUFFER_ALIGNMENT)];
        for (chunk, src) in chunks.iter_mut().zip(bytes.chunks(BUFFER_ALIGNMENT)) {
            chunk.0[..src.len()].copy_from_slice(src);
        }
        Self::Aligned { chunks, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Owned(bytes) => bytes,
            Self::Aligned { chunks, len } => {
                let all: &[u8] = chunks_as_bytes(chunks);
                &all[..(*len).min(all.len())]
            }
        }
    }
}

fn chunks_as_bytes(chunks: &[AlignedChunk]) -> &[u8] {
    // SAFETY: AlignedChunk is repr(C) around a [u8; 16] with no padding (size 16, align 16),
    // so a slice of n chunks is exactly 16*n initialized bytes at the same address.
    unsafe {
        std::slice::from_raw_parts(
            chunks.as_ptr().cast::<u8>(),
            chunks.len() * BUFFER_ALIGNMENT,
        )
    }
}

/// A byte range inside a file, in absolute file offsets. Ranges stored in this crate's views
/// were checked against the file length at load time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ByteRange {
    /// Absolute offset of the first byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl ByteRange {
    /// One past the last byte (`offset + len`), or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }

    /// `true` when the range has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `[offset, offset+len)` lies inside `[0, limit)` and returns it as
    /// `usize` bounds.
    pub(crate) fn checked_bounds(
        &self,
        what: impl FnOnce() -> String,
        limit: u64,
    ) -> Result<(usize, usize)> {
        let out_of_bounds = |what: String| PteError::OutOfBounds {
            what,
            offset: self.offset,
            size: self.len,
            limit_name: "the file",
            limit,
        };
        let end = match self.end() {
            Some(end) if end <= limit => end,
            _ => return Err(out_of_bounds(what())),
        };
        match (usize::try_from(self.offset), usize::try_from(end)) {
            (Ok(start), Ok(end)) => Ok((start, end)),
            _ => Err(out_of_bounds(what())),
        }
    }
}

/// A cheaply clonable, zero-copy view of part of a loaded file that keeps the file (mapping or
/// buffer) alive. Dereferences to `[u8]`.
#[derive(Clone)]
pub struct SharedBytes {
    backing: Arc<Backing>,
    start: usize,
    end: usize,
}

impl SharedBytes {
    /// Makes a view of `range`, checking it against the backing's length.
    pub(crate) fn new(
        backing: &Arc<Backing>,
        range: ByteRange,
        what: impl FnOnce() -> String,
    ) -> Result<Self> {
        let limit = backing.as_slice().len() as u64;
        let (start, end) = range.checked_bounds(what, limit)?;
        Ok(Self {
            backing: Arc::clone(backing),
            start,
            end,
        })
    }

    /// The viewed bytes.
    pub fn as_slice(&self) -> &[u8] {
        // Bounds were checked in `new` against the same immutable backing.
        self.backing
            .as_slice()
            .get(self.start..self.end)
            .unwrap_or(&[])
    }

    /// The range of the file this view covers.
    pub fn range(&self) -> ByteRange {
        ByteRange {
            offset: self.start as u64,
            len: (self.end - self.start) as u64,
        }
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBytes")
            .field("offset", &self.start)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

/// Reads a little-endian u32 at `offset`, if the bytes are there.
pub(crate) fn read_u32_le(bytes: &[u8], offset: usize) -> Option<u32> {
    let raw = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// Reads a little-endian u64 at `offset`, if the bytes are there.
pub(crate) fn read_u64_le(bytes: &[u8], offset: usize) -> Option<u64> {
    let raw = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}
