//! The MLX delegate payload: the 24-byte `MLX0` wrapper and the `MLXGraph` FlatBuffer inside it,
//! decoded into an [`ir::Graph`] with every count, index and enum checked.
//!
//! Blob layout (all little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | `[0, 4)` | zero padding |
//! | `[4, 8)` | magic `"MLX0"` |
//! | `[8, 16)` | u64 `data_segment_offset` (end of the FlatBuffer, rounded up to 16) |
//! | `[16, 24)` | u64 `data_segment_size` (0 today: constants travel as named data) |
//! | `[24, data_segment_offset)` | the FlatBuffer (no file identifier), zero padded |
//!
//! The FlatBuffer is read in place (planus reads unaligned data byte-wise, so no aligned copy is
//! needed). Nothing here panics on malformed input.

use planus::ReadAsRoot;
use thiserror::Error;

use crate::generated::mlx_delegate as wire;
use crate::ir::{
    self, ChainIdx, FloatOrVid, Graph, IntOrVid, IntOrVidOrTid, NamedSlot, Op, ShapeDim, Slot,
    SlotKind, TensorMeta, Tid, Vid, VidOrTid,
};

/// Size of the blob header.
pub const HEADER_LEN: usize = 24;
/// Bytes `[4, 8)` of the blob.
pub const MAGIC: [u8; 4] = *b"MLX0";
/// Highest payload `version` this runtime understands.
pub const MAX_SUPPORTED_VERSION: u32 = 1;
/// Cap on the sum of the five tensor-id ranges.
pub const MAX_TENSORS: u64 = 1_000_000;
/// Cap on `num_values`.
pub const MAX_VALUES: u32 = 1_000_000;
/// Cap on the length of any vector in the payload.
pub const MAX_VECTOR_LEN: usize = 1_000_000;
/// Cap on the rank of a [`TensorMeta`] shape.
pub const MAX_RANK: usize = 16;
/// Cap on how deeply `If`/`Scan` chains may nest (the executor recurses per level).
pub const MAX_CHAIN_NESTING: usize = 64;
/// ExecuTorch ScalarType codes are `0..SCALAR_TYPE_COUNT` (BYTE = 0 ... UINT64 = 29).
pub const SCALAR_TYPE_COUNT: i8 = 30;

/// Why a payload was rejected.
#[derive(Debug, Error)]
pub enum PayloadError {
    #[error("MLX payload is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("MLX payload magic is {found:?}, expected \"MLX0\"")]
    BadMagic { found: [u8; 4] },
    #[error(
        "MLX payload data_segment_offset {offset} is outside ({HEADER_LEN}, {len}] (payload length)"
    )]
    BadDataOffset { offset: u64, len: usize },
    #[error(
        "MLX payload data segment [{offset}, {offset} + {size}) runs past the payload end {len}"
    )]
    BadDataSegment { offset: u64, size: u64, len: usize },
    #[error("MLX payload: cannot read {what}: {source}")]
    Wire {
        what: &'static str,
        source: planus::Error,
    },
    #[error("MLX payload version {version:?} is not an integer")]
    BadVersion { version: String },
    #[error(
        "MLX payload version {version} is newer than this runtime supports \
         (up to {MAX_SUPPORTED_VERSION})"
    )]
    UnsupportedVersion { version: i64 },
    #[error(
        "MLX payload declares {total} tensor slots (constants {constants}, inputs {inputs}, \
         outputs {outputs}, mutable buffers {buffers}, temps {temps}); the limit is {MAX_TENSORS}"
    )]
    TooManyTensors {
        total: u64,
        constants: u32,
        inputs: u32,
        outputs: u32,
        buffers: u32,
        temps: u32,
    },
    #[error("MLX payload declares {count} value slots; the limit is {MAX_VALUES}")]
    TooManyValues { count: u32 },
    #[error("MLX payload {what} has {len} entries; the limit is {MAX_VECTOR_LEN}")]
    TooLong { what: &'static str, len: usize },
    #[error("MLX payload {what} {idx} is not a chain index (there are {num_chains} chains)")]
    BadChainIndex {
        what: &'static str,
        idx: i64,
        num_chains: usize,
    },
    #[error(
        "MLX payload chain {chain}, instruction {instr}: cannot read the instruction: {source}"
    )]
    BadInstruction {
        chain: usize,
        instr: usize,
        source: planus::Error,
    },
    #[error(
        "MLX payload chain {chain}, instruction {instr}: unknown op type {tag}; the payload was \
         built with a newer MLX delegate schema than this runtime supports (it knows {} ops)",
        ir::ALL_OP_NAMES.len()
    )]
    UnknownOp { chain: usize, instr: usize, tag: u8 },
    #[error("MLX payload chain {chain}, instruction {instr} ({op}), field `{field}`: {source}")]
    BadOpField {
        chain: usize,
        instr: usize,
        op: &'static str,
        field: &'static str,
        source: FieldError,
    },
    #[error("MLX payload {list}[{index}]: {source}")]
    BadSlot {
        list: &'static str,
        index: usize,
        source: FieldError,
    },
    #[error(
        "MLX payload tensor_meta has {found} entries; expected {expected} (one per non-temp tensor)"
    )]
    TensorMetaLength { found: usize, expected: u32 },
    #[error("MLX payload tensor_meta[{tid}]: {source}")]
    BadTensorMeta { tid: usize, source: FieldError },
    #[error("MLX payload chain {chain} calls itself through If/Scan")]
    ChainCycle { chain: usize },
    #[error(
        "MLX payload chain {chain} nests If/Scan chains {depth} deep; the limit is \
         {MAX_CHAIN_NESTING}"
    )]
    ChainNestingTooDeep { chain: usize, depth: usize },
}

/// What is wrong with one field, slot entry or metadata entry.
#[derive(Debug, Error)]
pub enum FieldError {
    #[error("required field is missing")]
    Missing,
    #[error("{0}")]
    Wire(Box<planus::Error>),
    #[error("tensor id {tid} is out of range (the graph has {total} tensor slots)")]
    TidOutOfRange { tid: u32, total: u32 },
    #[error("value id {vid} is out of range (the graph has {num_values} value slots)")]
    VidOutOfRange { vid: u32, num_values: u32 },
    #[error("chain index {idx} is out of range (there are {num_chains} chains)")]
    ChainOutOfRange { idx: i64, num_chains: usize },
    #[error("vector has {len} elements; the limit is {MAX_VECTOR_LEN}")]
    TooLong { len: usize },
    #[error("element {index}: {source}")]
    Element {
        index: usize,
        source: Box<FieldError>,
    },
    #[error("operand says it is a {what} but has none")]
    MissingOperand { what: &'static str },
    #[error("IntOrVidOrTid kind {kind} is not 0 (literal), 1 (vid) or 2 (tid)")]
    BadOperandKind { kind: u8 },
    #[error("scalar type {value} is not an ExecuTorch ScalarType (0..{SCALAR_TYPE_COUNT})")]
    BadScalarType { value: i8 },
    #[error("a mutable buffer must be a tensor slot, found a {kind:?} slot")]
    NotATensorSlot { kind: SlotKind },
    #[error("rank {rank} exceeds the limit of {MAX_RANK}")]
    RankTooHigh { rank: usize },
    #[error(
        "dim {dim} is malformed (value {value}, min {min}, max {max}): need value >= -1, \
         min >= 0, and max >= min unless max is -1"
    )]
    BadShapeDim {
        dim: usize,
        value: i32,
        min: i32,
        max: i32,
    },
    #[error("dim_order {dim_order:?} is not a permutation of 0..{rank}")]
    BadDimOrder { dim_order: Vec<u8>, rank: usize },
}

impl From<planus::Error> for FieldError {
    fn from(error: planus::Error) -> Self {
        match error.error_kind {
            planus::errors::ErrorKind::MissingRequired => FieldError::Missing,
            _ => FieldError::Wire(Box::new(error)),
        }
    }
}

/// The decoded blob header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader {
    /// End of the FlatBuffer region (exclusive); within `(HEADER_LEN, blob length]`.
    pub data_segment_offset: u64,
    /// Bytes after `data_segment_offset` (0 from today's exporter).
    pub data_segment_size: u64,
}

/// Checks the 24-byte wrapper.
pub fn parse_header(blob: &[u8]) -> Result<PayloadHeader, PayloadError> {
    let len = blob.len();
    let header: &[u8; HEADER_LEN] = blob
        .get(..HEADER_LEN)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(PayloadError::TooShort { len })?;
    let [_, _, _, _, m0, m1, m2, m3, o0, o1, o2, o3, o4, o5, o6, o7, s0, s1, s2, s3, s4, s5, s6, s7] =
        *header;
    let magic = [m0, m1, m2, m3];
    if magic != MAGIC {
        return Err(PayloadError::BadMagic { found: magic });
    }
    let offset = u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]);
    let size = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
    let len_u64 = len as u64;
    if offset <= HEADER_LEN as u64 || offset > len_u64 {
        return Err(PayloadError::BadDataOffset { offset, len });
    }
    if offset.checked_add(size).is_none_or(|end| end > len_u64) {
        return Err(PayloadError::BadDataSegment { offset, size, len });
    }
    Ok(PayloadHeader {
        data_segment_offset: offset,
        data_segment_size: size,
    })
}

/// The FlatBuffer region `[HEADER_LEN, data_segment_offset)` of a blob.
pub fn flatbuffer_bytes(blob: &[u8]) -> Result<&[u8], PayloadError> {
    let header = parse_header(blob)?;
    let len = blob.len();
    usize::try_from(header.data_segment_offset)
        .ok()
        .and_then(|end| blob.get(HEADER_LEN..end))
        .ok_or(PayloadError::BadDataOffset {
            offset: header.data_segment_offset,
            len,
        })
}

/// Decodes and validates a whole delegate payload.
pub fn parse(blob: &[u8]) -> Result<Graph, PayloadError> {
    let flatbuffer = flatbuffer_bytes(blob)?;
    let root =
        wire::MlxGraphRef::read_as_root(flatbuffer).map_err(|source| PayloadError::Wire {
            what: "the MLXGraph root table",
            source,
        })?;
    decode_graph(root)
}

/// Reads one root-table field, naming it on failure.
fn graph_field<T>(what: &'static str, value: planus::Result<T>) -> Result<T, PayloadError> {
    value.map_err(|source| PayloadError::Wire { what, source })
}

fn check_len(what: &'static str, len: usize) -> Result<(), PayloadError> {
    if len > MAX_VECTOR_LEN {
        return Err(PayloadError::TooLong { what, len });
    }
    Ok(())
}

fn decode_version(version: Option<&str>) -> Result<u32, PayloadError> {
    let text = version.unwrap_or("");
    if text.is_empty() {
        return Ok(1);
    }
    let number: i64 = text.parse().map_err(|_| PayloadError::BadVersion {
        version: text.to_owned(),
    })?;
    // Negative versions were never written; treat them as garbage rather than "old".
    match u32::try_from(number) {
        Ok(supported) if supported <= MAX_SUPPORTED_VERSION => Ok(supported),
        Ok(_) => Err(PayloadError::UnsupportedVersion { version: number }),
        Err(_) => Err(PayloadError::BadVersion {
            version: text.to_owned(),
        }),
    }
}

fn decode_graph(root: wire::MlxGraphRef<'_>) -> Result<Graph, PayloadError> {
    let version = decode_version(graph_field("version", root.version())?)?;

    let num_constants = graph_field("num_constant_tensors", root.num_constant_tensors())?;
    let num_inputs = graph_field("num_input_tensors", root.num_input_tensors())?;
    let num_outputs = graph_field("num_output_tensors", root.num_output_tensors())?;
    let num_mutable_buffers = graph_field(
        "num_mutable_buffer_tensors",
        root.num_mutable_buffer_tensors(),
    )?;
    let num_temps = graph_field("num_temp_tensors", root.num_temp_tensors())?;
    // Five u32s cannot overflow a u64.
    let total = [
        num_constants,
        num_inputs,
        num_outputs,
        num_mutable_buffers,
        num_temps,
    ]
    .iter()
    .map(|&count| u64::from(count))
    .sum::<u64>();
    let total_tensors = match u32::try_from(total) {
        Ok(total_tensors) if total <= MAX_TENSORS => total_tensors,
        _ => {
            return Err(PayloadError::TooManyTensors {
                total,
                constants: num_constants,
                inputs: num_inputs,
                outputs: num_outputs,
                buffers: num_mutable_buffers,
                temps: num_temps,
            })
        }
    };
    let num_values = graph_field("num_values", root.num_values())?;
    if num_values > MAX_VALUES {
        return Err(PayloadError::TooManyValues { count: num_values });
    }

    let wire_chains = graph_field("instruction_chains", root.instruction_chains())?;
    check_len("instruction_chains", wire_chains.len())?;
    let cx = Cx {
        total_tensors,
        num_values,
        num_chains: wire_chains.len(),
    };
    let chains = wire_chains
        .iter()
        .enumerate()
        .map(|(chain, wire_chain)| decode_chain(chain, wire_chain, &cx))
        .collect::<Result<Vec<_>, _>>()?;

    let main_chain_idx = graph_field("main_chain_idx", root.main_chain_idx())?;
    let main_chain = chain_index("main_chain_idx", i64::from(main_chain_idx), cx.num_chains)?;
    let init_chain_idx = graph_field("init_chain_idx", root.init_chain_idx())?;
    let init_chain = match init_chain_idx {
        -1 => None,
        idx => Some(chain_index(
            "init_chain_idx",
            i64::from(idx),
            cx.num_chains,
        )?),
    };

    let input_map = decode_slot_list("input_map", root.input_map(), &cx, false)?;
    let output_map = decode_slot_list("output_map", root.output_map(), &cx, false)?;
    let mutable_buffer_map =
        decode_slot_list("mutable_buffer_map", root.mutable_buffer_map(), &cx, true)?;
    let named_slots = decode_named_slots(root.named_slots(), &cx)?;

    let num_non_temp = total_tensors - num_temps;
    let tensor_meta = decode_tensor_meta_list(root.tensor_meta(), num_non_temp)?;

    check_chain_nesting(&chains)?;

    Ok(Graph {
        version,
        num_constants,
        num_inputs,
        num_outputs,
        num_mutable_buffers,
        num_temps,
        num_values,
        chains,
        main_chain,
        init_chain,
        input_map,
        output_map,
        mutable_buffer_map,
        named_slots,
        tensor_meta,
    })
}

fn chain_index(what: &'static str, idx: i64, num_chains: usize) -> Result<usize, PayloadError> {
    usize::try_from(idx)
        .ok()
        .filter(|&index| index < num_chains)
        .ok_or(PayloadError::BadChainIndex {
            what,
            idx,
            num_chains,
        })
}

fn decode_chain(
    chain: usize,
    wire_chain: planus::Result<wire::InstructionChainRef<'_>>,
    cx: &Cx,
) -> Result<Vec<Op>, PayloadError> {
    let instructions = wire_chain
        .and_then(|wire_chain| wire_chain.instructions())
        .map_err(|source| PayloadError::Wire {
            what: "an instruction chain",
            source,
        })?;
    check_len("instruction chain", instructions.len())?;
    instructions
        .iter()
        .enumerate()
        .map(|(instr, instruction)| {
            let op = instruction
                .and_then(|instruction| instruction.op())
                .map_err(|source| match source.error_kind {
                    planus::errors::ErrorKind::UnknownUnionTag { tag } => {
                        PayloadError::UnknownOp { chain, instr, tag }
                    }
                    _ => PayloadError::BadInstruction {
                        chain,
                        instr,
                        source,
                    },
                })?;
            decode_op(op, cx).map_err(|(op, field, source)| PayloadError::BadOpField {
                chain,
                instr,
                op,
                field,
                source,
            })
        })
        .collect()
}

fn decode_slot(slot: planus::Result<wire::SlotVariantRef<'_>>) -> Result<Slot, FieldError> {
    let slot = slot?;
    let kind = match slot.slot_type()? {
        wire::SlotType::TensorSlot => SlotKind::Tensor,
        wire::SlotType::IntValueSlot => SlotKind::Int,
        wire::SlotType::FloatValueSlot => SlotKind::Float,
        wire::SlotType::BoolValueSlot => SlotKind::Bool,
    };
    Ok(Slot {
        idx: slot.idx()?,
        kind,
    })
}

fn check_slot(slot: Slot, cx: &Cx, tensor_only: bool) -> Result<Slot, FieldError> {
    match slot.kind {
        SlotKind::Tensor => {
            cx.check_tid(slot.idx)?;
        }
        kind if tensor_only => return Err(FieldError::NotATensorSlot { kind }),
        _ => {
            cx.check_vid(slot.idx)?;
        }
    }
    Ok(slot)
}

type WireVector<'a, T> = planus::Vector<'a, planus::Result<T>>;

fn decode_slot_list(
    list: &'static str,
    wire_list: planus::Result<Option<WireVector<'_, wire::SlotVariantRef<'_>>>>,
    cx: &Cx,
    tensor_only: bool,
) -> Result<Vec<Slot>, PayloadError> {
    let Some(wire_list) = graph_field(list, wire_list)? else {
        return Ok(Vec::new());
    };
    check_len(list, wire_list.len())?;
    wire_list
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            decode_slot(slot)
                .and_then(|slot| check_slot(slot, cx, tensor_only))
                .map_err(|source| PayloadError::BadSlot {
                    list,
                    index,
                    source,
                })
        })
        .collect()
}

fn decode_named_slots(
    wire_list: planus::Result<Option<WireVector<'_, wire::NamedSlotRef<'_>>>>,
    cx: &Cx,
) -> Result<Vec<NamedSlot>, PayloadError> {
    const LIST: &str = "named_slots";
    let Some(wire_list) = graph_field(LIST, wire_list)? else {
        return Ok(Vec::new());
    };
    check_len(LIST, wire_list.len())?;
    wire_list
        .iter()
        .enumerate()
        .map(|(index, named)| {
            let decode = || -> Result<NamedSlot, FieldError> {
                let named = named?;
                let slot = check_slot(decode_slot(named.slot())?, cx, false)?;
                Ok(NamedSlot {
                    name: named.name()?.to_owned(),
                    slot,
                })
            };
            decode().map_err(|source| PayloadError::BadSlot {
                list: LIST,
                index,
                source,
            })
        })
        .collect()
}

fn decode_tensor_meta_list(
    wire_list: planus::Result<Option<WireVector<'_, wire::TensorMetaRef<'_>>>>,
    num_non_temp: u32,
) -> Result<Vec<Option<TensorMeta>>, PayloadError> {
    let wire_list = graph_field("tensor_meta", wire_list)?;
    let found = wire_list.map_or(0, |list| list.len());
    if u32::try_from(found) != Ok(num_non_temp) {
        return Err(PayloadError::TensorMetaLength {
            found,
            expected: num_non_temp,
        });
    }
    let Some(wire_list) = wire_list else {
        return Ok(Vec::new());
    };
    wire_list
        .iter()
        .enumerate()
        .map(|(tid, meta)| {
            decode_tensor_meta(meta).map_err(|source| PayloadError::BadTensorMeta { tid, source })
        })
        .collect()
}

// A null entry (offset 0) in a FlatBuffers vector of tables cannot be told apart from a broken
// offset, so an entry that fails to resolve is rejected; the parser never produces `None` today,
// the IR keeps the `Option` for payloads that genuinely lack an entry.
fn decode_tensor_meta(
    meta: planus::Result<wire::TensorMetaRef<'_>>,
) -> Result<Option<TensorMeta>, FieldError> {
    let meta = meta?;
    let wire_shape = meta.shape()?;
    let rank = wire_shape.len();
    if rank > MAX_RANK {
        return Err(FieldError::RankTooHigh { rank });
    }
    let shape = wire_shape
        .iter()
        .enumerate()
        .map(|(dim, wire_dim)| {
            let wire_dim = wire_dim?;
            let (value, min, max) = (
                wire_dim.value()?,
                wire_dim.min_value()?,
                wire_dim.max_value()?,
            );
            let bad = FieldError::BadShapeDim {
                dim,
                value,
                min,
                max,
            };
            if value < -1 || min < 0 || (max != -1 && max < min) {
                return Err(bad);
            }
            Ok(if value >= 0 {
                ShapeDim::Static(value)
            } else {
                ShapeDim::Dynamic {
                    min,
                    max: (max != -1).then_some(max),
                }
            })
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    let scalar_type = meta.scalar_type()?;
    checks::dtype(&scalar_type)?;
    let dim_order = meta.dim_order()?.unwrap_or_default().to_vec();
    if !dim_order.is_empty() && !is_permutation(&dim_order, rank) {
        return Err(FieldError::BadDimOrder { dim_order, rank });
    }
    Ok(Some(TensorMeta {
        shape,
        scalar_type,
        dim_order,
    }))
}

fn is_permutation(order: &[u8], rank: usize) -> bool {
    let mut seen = [false; MAX_RANK];
    order.len() == rank
        && order
            .iter()
            .all(|&axis| match seen.get_mut(usize::from(axis)) {
                Some(slot) if usize::from(axis) < rank && !*slot => {
                    *slot = true;
                    true
                }
                _ => false,
            })
}

/// Rejects If/Scan chain references that loop or nest deeper than [`MAX_CHAIN_NESTING`], so
/// that the executor's recursion is bounded.
fn check_chain_nesting(chains: &[Vec<Op>]) -> Result<(), PayloadError> {
    #[derive(Clone, Copy)]
    enum Visit {
        New,
        OnStack,
        Done { depth: usize },
    }
    let callees: Vec<Vec<usize>> = chains
        .iter()
        .map(|ops| {
            ops.iter()
                .flat_map(Op::called_chains)
                .map(|ChainIdx(idx)| idx)
                .collect()
        })
        .collect();
    let mut visits = vec![Visit::New; chains.len()];
    for root in 0..chains.len() {
        if !matches!(visits[root], Visit::New) {
            continue;
        }
        visits[root] = Visit::OnStack;
        // (chain, how many of its callees have been pushed); an explicit stack, not recursion.
        let mut stack = vec![(root, 0usize)];
        while let Some((chain, next)) = stack.last_mut() {
            let chain = *chain;
            // Indices were range-checked when the ops were decoded; `get` keeps this total.
            if let Some(&callee) = callees.get(chain).and_then(|list| list.get(*next)) {
                *next += 1;
                match visits.get(callee) {
                    Some(Visit::New) => {
                        visits[callee] = Visit::OnStack;
                        stack.push((callee, 0));
                    }
                    Some(Visit::OnStack) => return Err(PayloadError::ChainCycle { chain: callee }),
                    Some(Visit::Done { .. }) | None => {}
                }
            } else {
                let deepest_callee = callees[chain]
                    .iter()
                    .map(|&callee| match visits.get(callee) {
                        Some(Visit::Done { depth }) => *depth,
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                let depth = deepest_callee + 1;
                if depth > MAX_CHAIN_NESTING {
                    return Err(PayloadError::ChainNestingTooDeep { chain, depth });
                }
                visits[chain] = Visit::Done { depth };
                stack.pop();
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Field decoding: the op table says which IR type each field has; `Decode` picks the conversion
// from the planus getter's return type.
// ---------------------------------------------------------------------------------------------

/// Sizes every slot reference is checked against.
struct Cx {
    total_tensors: u32,
    num_values: u32,
    num_chains: usize,
}

impl Cx {
    fn check_tid(&self, tid: u32) -> Result<Tid, FieldError> {
        if tid >= self.total_tensors {
            return Err(FieldError::TidOutOfRange {
                tid,
                total: self.total_tensors,
            });
        }
        Ok(Tid(tid))
    }

    fn check_vid(&self, vid: u32) -> Result<Vid, FieldError> {
        if vid >= self.num_values {
            return Err(FieldError::VidOutOfRange {
                vid,
                num_values: self.num_values,
            });
        }
        Ok(Vid(vid))
    }

    fn check_chain(&self, idx: i64) -> Result<ChainIdx, FieldError> {
        usize::try_from(idx)
            .ok()
            .filter(|&index| index < self.num_chains)
            .map(ChainIdx)
            .ok_or(FieldError::ChainOutOfRange {
                idx,
                num_chains: self.num_chains,
            })
    }
}

/// Conversion of one wire value `W` (as returned by a planus getter) into an IR value.
trait Decode<W>: Sized {
    fn decode(wire: W, cx: &Cx) -> Result<Self, FieldError>;
}

macro_rules! decode_as_is {
    ($($scalar:ty),*) => {$(
        impl Decode<$scalar> for $scalar {
            fn decode(wire: $scalar, _cx: &Cx) -> Result<Self, FieldError> {
                Ok(wire)
            }
        }
    )*};
}
decode_as_is!(bool, i8, i32, u32, u64, f32);

impl<W, T: Decode<W>> Decode<Option<W>> for Option<T> {
    fn decode(wire: Option<W>, cx: &Cx) -> Result<Self, FieldError> {
        wire.map(|wire| T::decode(wire, cx)).transpose()
    }
}

/// Vector elements that are tables arrive as `planus::Result`s.
impl<W, T: Decode<W>> Decode<planus::Result<W>> for Wrapped<T> {
    fn decode(wire: planus::Result<W>, cx: &Cx) -> Result<Self, FieldError> {
        T::decode(wire?, cx).map(Wrapped)
    }
}

/// Lets one impl cover "element is a `planus::Result`" without overlapping the direct impls.
struct Wrapped<T>(T);

impl<'a, W, T> Decode<planus::Vector<'a, W>> for Vec<T>
where
    W: planus::VectorRead<'a>,
    Wrapped<T>: Decode<W>,
{
    fn decode(wire: planus::Vector<'a, W>, cx: &Cx) -> Result<Self, FieldError> {
        let len = wire.len();
        if len > MAX_VECTOR_LEN {
            return Err(FieldError::TooLong { len });
        }
        wire.iter()
            .enumerate()
            .map(|(index, element)| {
                Wrapped::<T>::decode(element, cx)
                    .map(|Wrapped(value)| value)
                    .map_err(|source| FieldError::Element {
                        index,
                        source: Box::new(source),
                    })
            })
            .collect()
    }
}

impl<'a, W, T> Decode<Option<planus::Vector<'a, W>>> for Vec<T>
where
    W: planus::VectorRead<'a>,
    Wrapped<T>: Decode<W>,
{
    fn decode(wire: Option<planus::Vector<'a, W>>, cx: &Cx) -> Result<Self, FieldError> {
        wire.map_or(Ok(Vec::new()), |wire| Self::decode(wire, cx))
    }
}

/// Plain vector elements (`[Tid]`, `[int32]`) decode directly.
macro_rules! wrapped_plain_element {
    ($($wire:ty => $ir:ty),*) => {$(
        impl<'a> Decode<$wire> for Wrapped<$ir> {
            fn decode(wire: $wire, cx: &Cx) -> Result<Self, FieldError> {
                <$ir>::decode(wire, cx).map(Wrapped)
            }
        }
    )*};
}
wrapped_plain_element!(wire::TidRef<'a> => Tid, i32 => i32);

impl Decode<&[i8]> for Vec<i8> {
    fn decode(wire: &[i8], _cx: &Cx) -> Result<Self, FieldError> {
        if wire.len() > MAX_VECTOR_LEN {
            return Err(FieldError::TooLong { len: wire.len() });
        }
        Ok(wire.to_vec())
    }
}

impl Decode<Option<&[i8]>> for Vec<i8> {
    fn decode(wire: Option<&[i8]>, cx: &Cx) -> Result<Self, FieldError> {
        Self::decode(wire.unwrap_or_default(), cx)
    }
}

impl Decode<&str> for String {
    fn decode(wire: &str, _cx: &Cx) -> Result<Self, FieldError> {
        Ok(wire.to_owned())
    }
}

/// Absent optional strings read as empty.
impl Decode<Option<&str>> for String {
    fn decode(wire: Option<&str>, _cx: &Cx) -> Result<Self, FieldError> {
        Ok(wire.unwrap_or_default().to_owned())
    }
}

impl Decode<wire::TidRef<'_>> for Tid {
    fn decode(wire: wire::TidRef<'_>, cx: &Cx) -> Result<Self, FieldError> {
        cx.check_tid(wire.idx())
    }
}

impl Decode<wire::VidRef<'_>> for Vid {
    fn decode(wire: wire::VidRef<'_>, cx: &Cx) -> Result<Self, FieldError> {
        cx.check_vid(wire.idx())
    }
}

impl Decode<i32> for ChainIdx {
    fn decode(wire: i32, cx: &Cx) -> Result<Self, FieldError> {
        cx.check_chain(i64::from(wire))
    }
}

impl Decode<u32> for ChainIdx {
    fn decode(wire: u32, cx: &Cx) -> Result<Self, FieldError> {
        cx.check_chain(i64::from(wire))
    }
}

fn required_vid(vid: Option<wire::VidRef<'_>>, cx: &Cx) -> Result<Vid, FieldError> {
    let vid = vid.ok_or(FieldError::MissingOperand { what: "vid" })?;
    Vid::decode(vid, cx)
}

fn required_tid(tid: Option<wire::TidRef<'_>>, cx: &Cx) -> Result<Tid, FieldError> {
    let tid = tid.ok_or(FieldError::MissingOperand { what: "tid" })?;
    Tid::decode(tid, cx)
}

impl Decode<wire::IntOrVidRef<'_>> for IntOrVid {
    fn decode(wire: wire::IntOrVidRef<'_>, cx: &Cx) -> Result<Self, FieldError> {
        Ok(if wire.is_vid()? {
            IntOrVid::Vid(required_vid(wire.vid()?, cx)?)
        } else {
            IntOrVid::Lit(wire.literal()?)
        })
    }
}

impl Decode<wire::FloatOrVidRef<'_>> for FloatOrVid {
    fn decode(wire: wire::FloatOrVidRef<'_>, cx: &Cx) -> Result<Self, FieldError> {
        Ok(if wire.is_vid()? {
            FloatOrVid::Vid(required_vid(wire.vid()?, cx)?)
        } else {
            FloatOrVid::Lit(wire.literal()?)
        })
    }
}

impl Decode<wire::VidOrTidRef<'_>> for VidOrTid {
    fn decode(wire: wire::VidOrTidRef<'_>, cx: &Cx) -> Result<Self, FieldError> {
        Ok(if wire.is_vid()? {
            VidOrTid::Vid(required_vid(wire.vid()?, cx)?)
        } else {
            VidOrTid::Tid(required_tid(wire.tid()?, cx)?)
        })
    }
}

impl Decode<wire::IntOrVidOrTidRef<'_>> for IntOrVidOrTid {
    fn decode(wire: wire::IntOrVidOrTidRef<'_>, cx: &Cx) -> Result<Self, FieldError> {
        Ok(match wire.kind()? {
            0 => IntOrVidOrTid::Lit(wire.literal()?),
            1 => IntOrVidOrTid::Vid(required_vid(wire.vid()?, cx)?),
            2 => IntOrVidOrTid::Tid(required_tid(wire.tid()?, cx)?),
            kind => return Err(FieldError::BadOperandKind { kind }),
        })
    }
}

/// Extra checks named by `=> check` markers in the op table.
mod checks {
    use super::{FieldError, SCALAR_TYPE_COUNT};

    /// Fields holding ExecuTorch ScalarType codes.
    pub(super) trait ScalarTypeCodes {
        fn for_each_code(
            &self,
            check: &mut dyn FnMut(i8) -> Result<(), FieldError>,
        ) -> Result<(), FieldError>;
    }

    impl ScalarTypeCodes for i8 {
        fn for_each_code(
            &self,
            check: &mut dyn FnMut(i8) -> Result<(), FieldError>,
        ) -> Result<(), FieldError> {
            check(*self)
        }
    }

    impl ScalarTypeCodes for Option<i8> {
        fn for_each_code(
            &self,
            check: &mut dyn FnMut(i8) -> Result<(), FieldError>,
        ) -> Result<(), FieldError> {
            self.iter().try_for_each(|&code| check(code))
        }
    }

    impl ScalarTypeCodes for Vec<i8> {
        fn for_each_code(
            &self,
            check: &mut dyn FnMut(i8) -> Result<(), FieldError>,
        ) -> Result<(), FieldError> {
            self.iter().try_for_each(|&code| check(code))
        }
    }

    pub(super) fn dtype(field: &impl ScalarTypeCodes) -> Result<(), FieldError> {
        field.for_each_code(&mut |value| {
            if (0..SCALAR_TYPE_COUNT).contains(&value) {
                Ok(())
            } else {
                Err(FieldError::BadScalarType { value })
            }
        })
    }
}

macro_rules! define_op_decoder {
    ($(
        $variant:ident ( $wire:ident ) {
            $( $field:ident : $ty:ty $( => $check:ident )? ),* $(,)?
        }
    ),* $(,)?) => {
        /// Decodes one op; on failure names the op and field.
        #[allow(unused_variables)] // `node` and `cx` in field-less ops
        fn decode_op(
            op: wire::OpNodeRef<'_>,
            cx: &Cx,
        ) -> Result<Op, (&'static str, &'static str, FieldError)> {
            match op {
                $( wire::OpNodeRef::$wire(node) => Ok(Op::$variant { $(
                    $field: {
                        let fail = |error: FieldError| {
                            (stringify!($variant), stringify!($field), error)
                        };
                        let wire_value = node.$field().map_err(|error| fail(error.into()))?;
                        let value = <$ty as Decode<_>>::decode(wire_value, cx).map_err(fail)?;
                        $( checks::$check(&value).map_err(fail)?; )?
                        value
                    }
                ),* }) ),*
            }
        }
    };
}

ir::with_op_table!(define_op_decoder);
