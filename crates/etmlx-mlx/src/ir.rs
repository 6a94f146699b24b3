//! The MLX delegate graph as plain Rust: what [`crate::payload::parse`] produces and the executor
//! runs. Knows nothing of MLX or FlatBuffers.
//!
//! Every value in a [`Graph`] returned by the parser has been checked: each [`Tid`] is below
//! [`Graph::total_tensors`], each [`Vid`] below [`Graph::num_values`], each [`ChainIdx`] below
//! `chains.len()`, the chain call graph (If/Scan) is acyclic and shallow, tensor metadata is
//! well-formed, and ScalarType codes are in range. Semantic checks that need run-time shapes
//! (axes, split counts, ...) are left to the executor.

mod op_table;
mod ops;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Serialize;

pub(crate) use op_table::with_op_table;
pub use ops::{Op, ALL_OP_NAMES};

/// Index of a tensor slot. One id space holds, in order: constants, inputs, outputs, mutable
/// buffers, temps (see [`Graph::tid_class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Tid(pub u32);

/// Index of a scalar value slot (an int32 at run time in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Vid(pub u32);

/// Index into [`Graph::chains`] (the body of a Scan, a branch of an If).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ChainIdx(pub usize);

/// An integer operand: a literal or a value slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IntOrVid {
    /// The raw serialized literal. The executor clamps it to int32 (`i64::MAX` means "to the
    /// end" for slice bounds and becomes `i32::MAX`).
    Lit(i64),
    Vid(Vid),
}

/// A float operand: a literal (narrowed to f32 by the executor) or a value slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum FloatOrVid {
    Lit(f64),
    Vid(Vid),
}

/// A scalar value slot or a tensor (only `Rope.offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum VidOrTid {
    Vid(Vid),
    Tid(Tid),
}

/// A literal integer, a value slot, or a tensor (only `Take.index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IntOrVidOrTid {
    Lit(i64),
    Vid(Vid),
    Tid(Tid),
}

/// What a [`Slot`] index refers to: a tensor slot (a [`Tid`]) or a value slot (a [`Vid`]) that
/// holds an int, a float or a bool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SlotKind {
    Tensor,
    Int,
    Float,
    Bool,
}

/// A tensor or value slot, as listed in the I/O maps and named slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Slot {
    pub idx: u32,
    pub kind: SlotKind,
}

impl Slot {
    /// The tensor id when this is a tensor slot.
    pub fn tid(self) -> Option<Tid> {
        (self.kind == SlotKind::Tensor).then_some(Tid(self.idx))
    }

    /// The value id when this is a value slot (int, float or bool).
    pub fn vid(self) -> Option<Vid> {
        (self.kind != SlotKind::Tensor).then_some(Vid(self.idx))
    }
}

/// A name bound to a slot. For constants the name is the named-data key of their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedSlot {
    pub name: String,
    pub slot: Slot,
}

/// One dimension of a [`TensorMeta`] shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ShapeDim {
    /// A fixed size (≥ 0).
    Static(i32),
    /// Known only at run time; the bounds are informational (`min ≥ 0`, `max ≥ min` or `None`
    /// for unbounded).
    Dynamic { min: i32, max: Option<i32> },
}

/// Shape and dtype of a non-temp tensor slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorMeta {
    /// At most [`crate::payload::MAX_RANK`] dims.
    pub shape: Vec<ShapeDim>,
    /// ExecuTorch ScalarType numbering (0..30); the executor maps it to an MLX dtype.
    pub scalar_type: i8,
    /// Empty or a permutation of `0..rank` (always the identity from the official exporter).
    pub dim_order: Vec<u8>,
}

impl TensorMeta {
    /// The shape when every dimension is static (constants and mutable buffers must be).
    pub fn static_shape(&self) -> Option<Vec<i32>> {
        self.shape
            .iter()
            .map(|dim| match *dim {
                ShapeDim::Static(size) => Some(size),
                ShapeDim::Dynamic { .. } => None,
            })
            .collect()
    }
}

/// Which of the five consecutive tensor-id ranges a [`Tid`] falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TidClass {
    Constant,
    Input,
    Output,
    MutableBuffer,
    Temp,
}

/// A decoded, validated MLX delegate graph. Serializes (serde) with ops externally tagged by
/// name, e.g. `{"Add": {"a": 0, "b": 1, "out": 2}}`, for `etmlx inspect` style dumps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Payload format version (0 or 1 today; "" reads as 1).
    pub version: u32,
    pub num_constants: u32,
    pub num_inputs: u32,
    pub num_outputs: u32,
    pub num_mutable_buffers: u32,
    pub num_temps: u32,
    /// Number of value slots ([`Vid`] space).
    pub num_values: u32,
    /// Straight-line instruction chains; which is which is given by `main_chain`, `init_chain`
    /// and the `If`/`Scan` ops. All chains share the tensor and value slots.
    pub chains: Vec<Vec<Op>>,
    /// Run on every execute.
    pub main_chain: usize,
    /// Run once at load, after constants are bound (may overwrite constant slots).
    pub init_chain: Option<usize>,
    /// Delegate inputs, in argument order (tensor or int value slots in practice).
    pub input_map: Vec<Slot>,
    /// Delegate outputs, in argument order (after the inputs).
    pub output_map: Vec<Slot>,
    /// Delegate-owned buffers that persist across executes (always tensor slots).
    pub mutable_buffer_map: Vec<Slot>,
    pub named_slots: Vec<NamedSlot>,
    /// Indexed by [`Tid`], covering every non-temp tensor (`Tid < num_constants + num_inputs +
    /// num_outputs + num_mutable_buffers`); `None` where the payload has no entry.
    pub tensor_meta: Vec<Option<TensorMeta>>,
}

impl Graph {
    /// Size of the tensor-id space (all five ranges).
    pub fn total_tensors(&self) -> u32 {
        self.num_non_temp_tensors().saturating_add(self.num_temps)
    }

    /// Constants + inputs + outputs + mutable buffers: the ids covered by `tensor_meta`.
    pub fn num_non_temp_tensors(&self) -> u32 {
        self.num_constants
            .saturating_add(self.num_inputs)
            .saturating_add(self.num_outputs)
            .saturating_add(self.num_mutable_buffers)
    }

    /// The ids of one tensor class.
    pub fn tid_range(&self, class: TidClass) -> Range<u32> {
        let constants_end = self.num_constants;
        let inputs_end = constants_end.saturating_add(self.num_inputs);
        let outputs_end = inputs_end.saturating_add(self.num_outputs);
        let buffers_end = outputs_end.saturating_add(self.num_mutable_buffers);
        let temps_end = buffers_end.saturating_add(self.num_temps);
        match class {
            TidClass::Constant => 0..constants_end,
            TidClass::Input => constants_end..inputs_end,
            TidClass::Output => inputs_end..outputs_end,
            TidClass::MutableBuffer => outputs_end..buffers_end,
            TidClass::Temp => buffers_end..temps_end,
        }
    }

    /// The class of a tensor id; `None` when it is outside the id space (never the case for ids
    /// inside a parsed graph).
    pub fn tid_class(&self, tid: Tid) -> Option<TidClass> {
        [
            TidClass::Constant,
            TidClass::Input,
            TidClass::Output,
            TidClass::MutableBuffer,
            TidClass::Temp,
        ]
        .into_iter()
        .find(|&class| self.tid_range(class).contains(&tid.0))
    }

    /// The name bound to a tensor slot in `named_slots` (for a constant: its named-data key).
    /// Linear scan; use [`Graph::tensor_names`] to look up many.
    pub fn constant_name(&self, tid: Tid) -> Option<&str> {
        self.named_slots
            .iter()
            .find(|named| named.slot.tid() == Some(tid))
            .map(|named| named.name.as_str())
    }

    /// Every named tensor slot, by id (the first name wins if a slot is named twice).
    pub fn tensor_names(&self) -> HashMap<Tid, &str> {
        let mut names = HashMap::new();
        for named in &self.named_slots {
            if let Some(tid) = named.slot.tid() {
                names.entry(tid).or_insert(named.name.as_str());
            }
        }
        names
    }

    /// Metadata of a non-temp tensor, if the payload has it.
    pub fn meta(&self, tid: Tid) -> Option<&TensorMeta> {
        usize::try_from(tid.0)
            .ok()
            .and_then(|index| self.tensor_meta.get(index))
            .and_then(Option::as_ref)
    }

    /// How many times each op (by [`Op::name`]) appears, over all chains.
    pub fn op_histogram(&self) -> BTreeMap<&'static str, usize> {
        let mut histogram = BTreeMap::new();
        for op in self.chains.iter().flatten() {
            *histogram.entry(op.name()).or_insert(0) += 1;
        }
        histogram
    }
}
