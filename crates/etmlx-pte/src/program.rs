//! Owned, validated views of a program. Built once at load from the FlatBuffer; every index
//! they hold was checked against the table it indexes (see the crate docs for the list).

use serde::Serialize;

use crate::bytes::ByteRange;
use crate::types::{DataLocation, ScalarType, ShapeDynamism, TensorDataLocation};

/// The root of a `.pte`: all methods plus the file-level data tables.
#[derive(Clone, Debug, Serialize)]
pub struct Program {
    /// Schema version (`Program.version`; 0 for every file written so far).
    pub version: u32,
    /// One plan per method, in file order.
    pub plans: Vec<ExecutionPlan>,
    /// Absolute file ranges of `Program.segments`, checked to lie in the segment data area.
    pub segments: Vec<ByteRange>,
    /// The constant segment (`Program.constant_segment`), when present.
    pub constant_segment: Option<SubsegmentOffsets>,
    /// Initial values of mutable tensors (`Program.mutable_data_segments`).
    pub mutable_data_segments: Vec<SubsegmentOffsets>,
    /// Named blobs stored in this file (`Program.named_data`), in file order.
    pub named_data: Vec<NamedDataEntry>,
    /// Absolute file ranges of `Program.backend_delegate_data[i].data` (inline delegate blobs).
    pub inline_delegate_data: Vec<ByteRange>,
    /// Absolute file ranges of the deprecated `Program.constant_buffer[i].storage`.
    pub legacy_constant_buffers: Vec<ByteRange>,
}

impl Program {
    /// The plan (method) named `name`.
    pub fn plan(&self, name: &str) -> Option<&ExecutionPlan> {
        self.plans.iter().find(|plan| plan.name == name)
    }

    /// Method names in file order.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.plans.iter().map(|plan| plan.name.as_str())
    }
}

/// A table of byte offsets into one segment (`SubsegmentOffsets`).
#[derive(Clone, Debug, Serialize)]
pub struct SubsegmentOffsets {
    /// Index into [`Program::segments`] (checked).
    pub segment_index: usize,
    /// Offsets relative to the segment start, each checked to be at most the segment's length.
    /// For the constant segment, entry 0 is a placeholder that no tensor uses.
    pub offsets: Vec<u64>,
}

/// One `Program.named_data` entry.
#[derive(Clone, Debug, Serialize)]
pub struct NamedDataEntry {
    /// The key the delegate asks for.
    pub key: String,
    /// Index into [`Program::segments`] (checked).
    pub segment_index: usize,
    /// The blob's absolute file range (the whole segment).
    pub range: ByteRange,
}

/// One method (`ExecutionPlan`).
#[derive(Clone, Debug, Serialize)]
pub struct ExecutionPlan {
    /// Method name, e.g. `"forward"`.
    pub name: String,
    /// Pytree specs of the method's inputs and outputs, when present.
    pub container_meta: Option<ContainerMetadata>,
    /// The value table every other index refers to.
    pub values: Vec<Value>,
    /// Indices into `values` of the method inputs (checked).
    pub inputs: Vec<usize>,
    /// Indices into `values` of the method outputs (checked).
    pub outputs: Vec<usize>,
    /// Instruction chains; exactly one in every file seen so far.
    pub chains: Vec<Chain>,
    /// Kernels used by [`Instruction::KernelCall`].
    pub operators: Vec<Operator>,
    /// Delegates used by [`Instruction::DelegateCall`].
    pub delegates: Vec<Delegate>,
    /// Planned memory buffer sizes in bytes. Entry 0 is unused; buffer `i >= 1` is the one that
    /// [`Allocation::memory_id`] `== i` refers to.
    pub non_const_buffer_sizes: Vec<u64>,
}

impl ExecutionPlan {
    /// `true` for the constant "getter" methods exporters add (e.g. `get_max_seq_len`): no
    /// inputs and no instructions, so running them just returns their output values.
    pub fn is_constant_getter(&self) -> bool {
        self.inputs.is_empty() && self.instruction_count() == 0
    }

    /// Instructions over all chains.
    pub fn instruction_count(&self) -> usize {
        self.chains
            .iter()
            .map(|chain| chain.instructions.len())
            .sum()
    }

    /// Instructions of all chains, in order.
    pub fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.chains
            .iter()
            .flat_map(|chain| chain.instructions.iter())
    }

    /// The input values, in order.
    pub fn input_values(&self) -> impl Iterator<Item = &Value> {
        self.inputs.iter().filter_map(|&i| self.values.get(i))
    }

    /// The output values, in order.
    pub fn output_values(&self) -> impl Iterator<Item = &Value> {
        self.outputs.iter().filter_map(|&i| self.values.get(i))
    }
}

/// Pytree specs (`ContainerMetadata`) for (un)flattening a method's inputs and outputs.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerMetadata {
    /// Encoded input spec (empty when absent).
    pub encoded_inp_str: String,
    /// Encoded output spec (empty when absent).
    pub encoded_out_str: String,
}

/// A list of instructions run in order, with a program counter.
#[derive(Clone, Debug, Serialize)]
pub struct Chain {
    /// Indices into the plan's values (checked).
    pub inputs: Vec<usize>,
    /// Indices into the plan's values (checked).
    pub outputs: Vec<usize>,
    /// The instructions.
    pub instructions: Vec<Instruction>,
}

/// One instruction. All indices were checked at load:
/// value indices `< values.len()`, `op_index < operators.len()`,
/// `delegate_index < delegates.len()`, and `destination_instruction <= instructions.len()` of
/// its chain (jumping to `len` ends the chain).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Instruction {
    /// Call kernel `operators[op_index]` on `values[args]` (inputs, then outputs).
    KernelCall {
        /// Index into [`ExecutionPlan::operators`].
        op_index: usize,
        /// Value indices.
        args: Vec<usize>,
    },
    /// Run delegate `delegates[delegate_index]` on `values[args]` (inputs, then outputs).
    DelegateCall {
        /// Index into [`ExecutionPlan::delegates`].
        delegate_index: usize,
        /// Value indices.
        args: Vec<usize>,
    },
    /// `values[to] = values[from]`.
    MoveCall {
        /// Source value index.
        from: usize,
        /// Destination value index.
        to: usize,
    },
    /// Jump to `destination_instruction` when `values[cond_value_index]` (a Bool or bool
    /// tensor) is false; otherwise continue with the next instruction.
    JumpFalseCall {
        /// Value index of the condition.
        cond_value_index: usize,
        /// Instruction index in the same chain, `<= instructions.len()`.
        destination_instruction: usize,
    },
    /// Drop the data pointer of tensor `values[value_index]`.
    FreeCall {
        /// Value index.
        value_index: usize,
    },
}

/// A kernel name (`Operator`), e.g. `aten::add` with overload `out`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Operator {
    /// Namespaced name, e.g. `"aten::add"`.
    pub name: String,
    /// Overload name, e.g. `"out"` (may be empty).
    pub overload: String,
}

impl Operator {
    /// `name.overload`, or just `name` when the overload is empty.
    pub fn qualified_name(&self) -> String {
        if self.overload.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.name, self.overload)
        }
    }
}

/// A delegate (`BackendDelegate`): which backend runs it and where its payload is.
#[derive(Clone, Debug, Serialize)]
pub struct Delegate {
    /// Backend id, e.g. `"MLXBackend"`.
    pub id: String,
    /// Where the payload ("processed" blob) is; read it with `Pte::delegate_blob`.
    pub blob: DataRef,
    /// Backend compile specs.
    pub compile_specs: Vec<CompileSpec>,
}

/// A resolved reference to a delegate payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DataRef {
    /// Which table `index` refers to.
    pub location: DataLocation,
    /// Index into [`Program::inline_delegate_data`] or [`Program::segments`] (checked).
    pub index: usize,
    /// The payload's absolute file range.
    pub range: ByteRange,
}

/// One compile spec (`CompileSpec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompileSpec {
    /// Spec name.
    pub key: String,
    /// Raw value bytes, as the backend defines them.
    pub value: Vec<u8>,
}

/// One entry of a plan's value table (the `KernelTypes` union). List items that are value
/// indices were checked to be `< values.len()`; nothing checks their *type* (ExecuTorch checks
/// that when it unboxes them at run time).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Value {
    /// None.
    Null,
    /// An int (also used for enums and SymInts).
    Int(i64),
    /// A bool.
    Bool(bool),
    /// A double.
    Double(f64),
    /// A string.
    String(String),
    /// A tensor.
    Tensor(TensorInfo),
    /// A list of ints given as **value indices** (each normally an `Int` value), so that
    /// SymInt entries can change at run time.
    IntList(Vec<usize>),
    /// Literal doubles.
    DoubleList(Vec<f64>),
    /// Literal bools.
    BoolList(Vec<bool>),
    /// Tensors given as value indices.
    TensorList(Vec<usize>),
    /// Optional tensors given as value indices; `None` where the file has `-1`.
    OptionalTensorList(Vec<Option<usize>>),
}

impl Value {
    /// The variant's name, e.g. `"Tensor"`, `"IntList"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "Null",
            Self::Int(_) => "Int",
            Self::Bool(_) => "Bool",
            Self::Double(_) => "Double",
            Self::String(_) => "String",
            Self::Tensor(_) => "Tensor",
            Self::IntList(_) => "IntList",
            Self::DoubleList(_) => "DoubleList",
            Self::BoolList(_) => "BoolList",
            Self::TensorList(_) => "TensorList",
            Self::OptionalTensorList(_) => "OptionalTensorList",
        }
    }

    /// The tensor metadata, if this is a tensor.
    pub fn as_tensor(&self) -> Option<&TensorInfo> {
        match self {
            Self::Tensor(tensor) => Some(tensor),
            _ => None,
        }
    }

    /// The int, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(value) => Some(*value),
            _ => None,
        }
    }
}

/// Tensor metadata (`Tensor`), validated at load:
/// rank `<= MAX_RANK`, sizes non-negative, `dim_order` a permutation of `0..rank` (filled in as
/// `0..rank` when the file omits it), `storage_offset == 0`, `numel()`/`nbytes()` do not
/// overflow, a planned tensor's range fits its memory buffer (except `DynamicUnbound`), and the
/// stored bytes named by [`TensorInfo::data`] lie inside their segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorInfo {
    /// Element type.
    pub scalar_type: ScalarType,
    /// Shape (upper bounds when `dynamism` is `DynamicBound`). All entries are `>= 0`.
    pub sizes: Vec<i32>,
    /// Dimension order, outermost to innermost; `0..rank` is contiguous row-major.
    pub dim_order: Vec<u8>,
    /// How to read `sizes`.
    pub dynamism: ShapeDynamism,
    /// Raw `data_buffer_idx`: index into the constant (or mutable initial-value) offset table;
    /// 0 means no stored data.
    pub data_buffer_idx: u32,
    /// Where a planned tensor lives, when it is memory planned.
    pub allocation: Option<Allocation>,
    /// Rarely used extra metadata.
    pub extra: Option<ExtraTensorInfo>,
    /// The stored bytes this tensor starts with, resolved at load.
    pub data: TensorData,
}

/// Memory-planning details (`AllocationDetails`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// 1-based buffer id: the bytes are in buffer `memory_id`, whose size is
    /// `non_const_buffer_sizes[memory_id]` (checked `1 <= memory_id < len`).
    pub memory_id: u32,
    /// Byte offset in that buffer (`memory_offset_low | memory_offset_high << 32`).
    pub offset: u64,
}

/// Extra tensor metadata (`ExtraTensorInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExtraTensorInfo {
    /// Which [`Program::mutable_data_segments`] entry holds the initial value.
    pub mutable_data_segments_idx: u64,
    /// Fully qualified name, e.g. `"layers.0.attn.k_cache"`.
    pub fully_qualified_name: Option<String>,
    /// Where the stored bytes live.
    pub location: TensorDataLocation,
}

/// How a tensor gets its storage (the four `data_buffer_idx` / `allocation_info` combinations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TensorKind {
    /// Read-only data stored in the file (or in a `.ptd`).
    Constant,
    /// Planned storage, no initial value.
    Planned,
    /// Planned storage initialised from the file at load.
    PlannedWithInitial,
    /// No storage at load: supplied as an input or by a kernel/delegate at run time.
    Unallocated,
}

/// The stored bytes a tensor starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum TensorData {
    /// None (planned without initial value, or unallocated).
    None,
    /// In this file; exactly `nbytes()` long.
    InFile(ByteRange),
    /// In an external `.ptd`, under this key (the tensor's fully qualified name).
    External {
        /// The named-data key.
        key: String,
    },
}

impl TensorInfo {
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.sizes.len()
    }

    /// Number of elements (product of `sizes`; 1 for rank 0), or `None` on overflow or a
    /// negative size. Always `Some` for tensors loaded by this crate.
    pub fn numel(&self) -> Option<usize> {
        self.sizes.iter().try_fold(1usize, |acc, &size| {
            acc.checked_mul(usize::try_from(size).ok()?)
        })
    }

    /// Bytes of storage (`numel() * element_size()`), or `None` on overflow. Always `Some` for
    /// tensors loaded by this crate.
    pub fn nbytes(&self) -> Option<usize> {
        self.numel()?.checked_mul(self.scalar_type.element_size())
    }

    /// How the tensor gets its storage.
    pub fn kind(&self) -> TensorKind {
        match (self.data_buffer_idx > 0, self.allocation.is_some()) {
            (_, false) if matches!(self.data, TensorData::External { .. }) => TensorKind::Constant,
            (true, false) => TensorKind::Constant,
            (false, true) => TensorKind::Planned,
            (true, true) => TensorKind::PlannedWithInitial,
            (false, false) => TensorKind::Unallocated,
        }
    }

    /// `true` when `dim_order` is `0..rank` (row-major contiguous).
    pub fn is_contiguous_dim_order(&self) -> bool {
        self.dim_order
            .iter()
            .enumerate()
            .all(|(i, &d)| usize::from(d) == i)
    }

    /// Element strides derived from `sizes` and `dim_order` (the innermost dimension has stride
    /// 1). `None` if `dim_order` is not a permutation of `0..rank` or a stride overflows.
    pub fn strides(&self) -> Option<Vec<usize>> {
        let rank = self.rank();
        if self.dim_order.len() != rank {
            return None;
        }
        let mut strides = vec![0usize; rank];
        let mut seen = vec![false; rank];
        let mut stride = 1usize;
        for &dim in self.dim_order.iter().rev() {
            let dim = usize::from(dim);
            if dim >= rank || std::mem::replace(&mut seen[dim], true) {
                return None;
            }
            strides[dim] = stride;
            stride = stride.checked_mul(usize::try_from(self.sizes[dim]).ok()?.max(1))?;
        }
        Some(strides)
    }
}
