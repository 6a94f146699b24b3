//! The loaded `.pte` file: validated program views plus zero-copy access to the bytes.

use std::path::Path;
use std::sync::Arc;

use crate::bytes::{Backing, ByteRange, SharedBytes};
use crate::error::{PteError, Result};
use crate::header::{parse_pte_header, ExtendedHeader, FileLayout};
use crate::load::load_program;
use crate::program::{Delegate, ExecutionPlan, Program, TensorData, TensorInfo, TensorKind};

/// A loaded `.pte` program.
///
/// Loading parses the header, the whole FlatBuffer and every index in it once; afterwards all
/// accessors are cheap and the byte accessors are zero-copy views into the file.
pub struct Pte {
    backing: Arc<Backing>,
    header: Option<ExtendedHeader>,
    layout: FileLayout,
    program: Program,
}

impl std::fmt::Debug for Pte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pte")
            .field("file_len", &self.file_len())
            .field("header", &self.header)
            .field("methods", &self.program.method_names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Pte {
    /// Memory-maps and loads the `.pte` at `path`.
    ///
    /// The file must not be modified or truncated while the `Pte` (or any [`SharedBytes`] taken
    /// from it) is alive: like every memory-mapped reader, this one sees such changes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::load(Backing::map_file(path.as_ref())?)
    }

    /// Loads a `.pte` from owned bytes (copied once into aligned storage if their start is not
    /// 16-byte aligned).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::load(Backing::from_vec(bytes))
    }

    fn load(backing: Backing) -> Result<Self> {
        let bytes = backing.as_slice();
        let (header, layout) = parse_pte_header(bytes)?;
        let program = load_program(bytes, layout)?;
        Ok(Self {
            backing: Arc::new(backing),
            header,
            layout,
            program,
        })
    }

    /// The validated program views.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The plan (method) named `name`.
    pub fn plan(&self, name: &str) -> Option<&ExecutionPlan> {
        self.program.plan(name)
    }

    /// The extended header, when the file has one (files without segments may not).
    pub fn header(&self) -> Option<&ExtendedHeader> {
        self.header.as_ref()
    }

    /// Length of the whole file in bytes.
    pub fn file_len(&self) -> u64 {
        self.backing.as_slice().len() as u64
    }

    /// Size of the FlatBuffer region `[0, program_size)`.
    pub fn program_size(&self) -> u64 {
        self.layout.program_size
    }

    /// The segment data area (absolute range); empty when the file has no segments.
    pub fn segment_data(&self) -> ByteRange {
        self.layout.segment_data
    }

    /// The whole file.
    pub fn file_bytes(&self) -> &[u8] {
        self.backing.as_slice()
    }

    /// The bytes of `range` (absolute file offsets).
    pub fn bytes(&self, range: ByteRange) -> Result<&[u8]> {
        let file = self.backing.as_slice();
        let (start, end) = range.checked_bounds(|| "requested range".into(), file.len() as u64)?;
        Ok(&file[start..end])
    }

    /// A zero-copy view of `range` that keeps the file alive on its own.
    pub fn shared_bytes(&self, range: ByteRange) -> Result<SharedBytes> {
        SharedBytes::new(&self.backing, range, || "requested range".into())
    }

    /// The bytes of `Program.segments[index]`.
    pub fn segment_bytes(&self, index: usize) -> Result<&[u8]> {
        let range = *self
            .program
            .segments
            .get(index)
            .ok_or(PteError::IndexOutOfRange {
                what: "segment index".into(),
                index: index as i64,
                table: "Program.segments",
                len: self.program.segments.len(),
            })?;
        self.bytes(range)
    }

    /// The stored bytes of a constant tensor (exactly `nbytes()` long).
    ///
    /// Fails for tensors that are not constants, and for constants stored in a `.ptd`
    /// ([`TensorData::External`]: look those up in a [`crate::NamedDataMap`]).
    pub fn constant_bytes(&self, tensor: &TensorInfo) -> Result<&[u8]> {
        self.tensor_bytes(tensor, TensorKind::Constant, "constant")
    }

    /// The initial value of a planned tensor that has one ([`TensorKind::PlannedWithInitial`]),
    /// exactly `nbytes()` long.
    pub fn mutable_initial_bytes(&self, tensor: &TensorInfo) -> Result<&[u8]> {
        self.tensor_bytes(tensor, TensorKind::PlannedWithInitial, "initial")
    }

    fn tensor_bytes(
        &self,
        tensor: &TensorInfo,
        wanted_kind: TensorKind,
        wanted: &'static str,
    ) -> Result<&[u8]> {
        let kind = tensor.kind();
        match (&tensor.data, kind == wanted_kind) {
            (TensorData::InFile(range), true) => self.bytes(*range),
            (TensorData::External { key }, true) => Err(PteError::NoTensorData {
                wanted,
                kind: format!("stored externally under key {key:?}"),
            }),
            _ => Err(PteError::NoTensorData {
                wanted,
                kind: format!("{kind:?}"),
            }),
        }
    }

    /// The blob stored under `key` in this file's named data (first entry wins if a key
    /// repeats, as in ExecuTorch's own lookup).
    pub fn named_data(&self, key: &str) -> Option<&[u8]> {
        let entry = self
            .program
            .named_data
            .iter()
            .find(|entry| entry.key == key)?;
        self.bytes(entry.range).ok()
    }

    /// The payload ("processed" blob) of a delegate.
    pub fn delegate_blob(&self, delegate: &Delegate) -> Result<&[u8]> {
        self.bytes(delegate.blob.range)
    }

    pub(crate) fn backing(&self) -> &Arc<Backing> {
        &self.backing
    }
}
