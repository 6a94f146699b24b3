//! The `.ptd` (FlatTensor) external tensor data file.

use std::path::Path;
use std::sync::Arc;

use planus::ReadAsRoot;
use serde::Serialize;

use crate::bytes::{Backing, ByteRange, SharedBytes};
use crate::error::{FbContext, PteError, Result};
use crate::header::{parse_ptd_header, PtdHeader};
use crate::limits::{MAX_NAMED_DATA, MAX_RANK, MAX_SEGMENTS};
use crate::load::{check_count, check_index, resolve_segment, Budget};
use crate::schema::flat_tensor_flatbuffer as ft;
use crate::types::ScalarType;

/// Shape and type recorded next to a named tensor blob (`TensorLayout`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorLayout {
    /// Element type.
    pub scalar_type: ScalarType,
    /// Shape.
    pub sizes: Vec<i32>,
    /// Dimension order, outermost to innermost.
    pub dim_order: Vec<u8>,
}

/// One named blob of a `.ptd`.
#[derive(Clone, Debug, Serialize)]
pub struct PtdEntry {
    /// The key.
    pub key: String,
    /// Index into [`Ptd::segments`] (checked).
    pub segment_index: usize,
    /// The blob's absolute file range.
    pub range: ByteRange,
    /// Tensor layout, when the blob is a tensor.
    pub layout: Option<TensorLayout>,
}

/// A loaded `.ptd` file.
pub struct Ptd {
    backing: Arc<Backing>,
    header: PtdHeader,
    version: u32,
    segments: Vec<ByteRange>,
    entries: Vec<PtdEntry>,
}

impl std::fmt::Debug for Ptd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ptd")
            .field("header", &self.header)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Ptd {
    /// Memory-maps and loads the `.ptd` at `path` (the file must not change while loaded).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::load(Backing::map_file(path.as_ref())?)
    }

    /// Loads a `.ptd` from owned bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::load(Backing::from_vec(bytes))
    }

    fn load(backing: Backing) -> Result<Self> {
        let file = backing.as_slice();
        let (header, layout) = parse_ptd_header(file)?;
        let program_bytes = usize::try_from(layout.program_size)
            .ok()
            .and_then(|size| file.get(..size))
            .ok_or_else(|| PteError::OutOfBounds {
                what: "FlatBuffer region".into(),
                offset: 0,
                size: layout.program_size,
                limit_name: "the file",
                limit: file.len() as u64,
            })?;
        let root =
            ft::FlatTensorRef::read_as_root(program_bytes).at(|| "FlatTensor (root)".into())?;
        let mut budget = Budget::new();
        let version = root.version().at(|| "FlatTensor.version".into())?;

        let mut segments = Vec::new();
        if let Some(list) = root.segments().at(|| "FlatTensor.segments".into())? {
            check_count(list.len(), MAX_SEGMENTS, || "FlatTensor.segments".into())?;
            budget.take_items::<ByteRange>(list.len(), || "FlatTensor.segments".into())?;
            for (i, segment) in list.iter().enumerate() {
                let ctx = || format!("FlatTensor.segments[{i}]");
                let segment = segment.at(ctx)?;
                let range = resolve_segment(
                    layout.segment_data,
                    segment.offset().at(ctx)?,
                    segment.size().at(ctx)?,
                    ctx,
                )?;
                segments.push(range);
            }
        }

        let mut entries = Vec::new();
        if let Some(list) = root.named_data().at(|| "FlatTensor.named_data".into())? {
            check_count(list.len(), MAX_NAMED_DATA, || {
                "FlatTensor.named_data".into()
            })?;
            for (i, entry) in list.iter().enumerate() {
                let ctx = || format!("FlatTensor.named_data[{i}]");
                let entry = entry.at(ctx)?;
                let key = entry.key().at(ctx)?.ok_or_else(|| PteError::MissingField {
                    context: format!("{}.key", ctx()),
                })?;
                budget.take(key.len() + std::mem::size_of::<PtdEntry>(), ctx)?;
                let segment_index = check_index(
                    entry.segment_index().at(ctx)?.into(),
                    "FlatTensor.segments",
                    segments.len(),
                    || format!("{}.segment_index (key {key:?})", ctx()),
                )?;
                let layout = match entry.tensor_layout().at(ctx)? {
                    Some(layout) => Some(load_layout(&layout, &mut budget, &|| {
                        format!("{}.tensor_layout", ctx())
                    })?),
                    None => None,
                };
                entries.push(PtdEntry {
                    key: key.to_owned(),
                    segment_index,
                    range: segments[segment_index],
                    layout,
                });
            }
        }

        Ok(Self {
            backing: Arc::new(backing),
            header,
            version,
            segments,
            entries,
        })
    }

    /// The header, as stored.
    pub fn header(&self) -> &PtdHeader {
        &self.header
    }

    /// Schema version (`FlatTensor.version`).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Absolute file ranges of the segments.
    pub fn segments(&self) -> &[ByteRange] {
        &self.segments
    }

    /// Named entries in file order.
    pub fn entries(&self) -> &[PtdEntry] {
        &self.entries
    }

    /// The entry for `key` (first wins if a key repeats).
    pub fn entry(&self, key: &str) -> Option<&PtdEntry> {
        self.entries.iter().find(|entry| entry.key == key)
    }

    /// The bytes stored under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let range = self.entry(key)?.range;
        let (start, end) = range
            .checked_bounds(String::new, self.backing.as_slice().len() as u64)
            .ok()?;
        self.backing.as_slice().get(start..end)
    }

    pub(crate) fn shared(&self, range: ByteRange) -> Result<SharedBytes> {
        SharedBytes::new(&self.backing, range, || "ptd named data".into())
    }
}

fn load_layout(
    layout: &ft::TensorLayoutRef<'_>,
    budget: &mut Budget,
    ctx: &dyn Fn() -> String,
) -> Result<TensorLayout> {
    let raw_type = layout.scalar_type().at(ctx)?;
    // The generated enum only holds values the schema defines, which are exactly ours.
    let scalar_type =
        ScalarType::from_i8(raw_type as i8).ok_or_else(|| PteError::UnknownEnumValue {
            context: ctx(),
            table: "TensorLayout",
            field: "scalar_type",
            value: i128::from(raw_type as i8),
        })?;
    let sizes: Vec<i32> = match layout.sizes().at(ctx)? {
        Some(sizes) => {
            check_count(sizes.len(), MAX_RANK, || format!("{} rank", ctx()))?;
            sizes.iter().collect()
        }
        None => Vec::new(),
    };
    let dim_order = layout.dim_order().at(ctx)?.unwrap_or(&[]);
    check_count(dim_order.len(), MAX_RANK, || format!("{}.dim_order", ctx()))?;
    budget.take(sizes.len() + dim_order.len(), ctx)?;
    Ok(TensorLayout {
        scalar_type,
        sizes,
        dim_order: dim_order.to_vec(),
    })
}
