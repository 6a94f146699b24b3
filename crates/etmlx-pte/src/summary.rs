//! A compact, serializable description of a program, for `inspect`-style tools.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::header::ExtendedHeader;
use crate::program::{ExecutionPlan, Instruction, TensorKind, Value};
use crate::pte::Pte;
use crate::types::{DataLocation, ScalarType, ShapeDynamism};

/// Everything an `inspect` command shows about a `.pte`.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramSummary {
    /// File length in bytes.
    pub file_len: u64,
    /// Size of the FlatBuffer region.
    pub program_size: u64,
    /// The extended header, if present.
    pub header: Option<ExtendedHeader>,
    /// `Program.version`.
    pub schema_version: u32,
    /// Number of segments.
    pub segment_count: usize,
    /// Total bytes of all segments.
    pub segment_bytes: u64,
    /// Methods in file order.
    pub methods: Vec<MethodSummary>,
    /// The file's own named data.
    pub named_data: NamedDataSummary,
}

/// One method.
#[derive(Clone, Debug, Serialize)]
pub struct MethodSummary {
    /// Method name.
    pub name: String,
    /// Inputs in order.
    pub inputs: Vec<IoSummary>,
    /// Outputs in order.
    pub outputs: Vec<IoSummary>,
    /// Values in the value table.
    pub value_count: usize,
    /// Instructions over all chains.
    pub instruction_count: usize,
    /// Instructions per kind (`"KernelCall"`, `"DelegateCall"`, ...).
    pub instruction_kinds: BTreeMap<String, usize>,
    /// Operators as `name.overload`, in table order.
    pub operators: Vec<String>,
    /// How many `KernelCall`s use each operator.
    pub operator_calls: BTreeMap<String, usize>,
    /// Delegates in table order.
    pub delegates: Vec<DelegateSummary>,
    /// Planned buffer sizes (entry 0 unused).
    pub planned_buffer_sizes: Vec<u64>,
    /// Tensors per storage kind.
    pub tensor_kinds: BTreeMap<String, usize>,
    /// Total bytes of the constant tensors stored in this file for this method.
    pub constant_bytes: u64,
    /// `true` for constant getter methods (no inputs, no instructions).
    pub is_constant_getter: bool,
}

/// One method input or output.
#[derive(Clone, Debug, Serialize)]
pub struct IoSummary {
    /// Index in the value table.
    pub value_index: usize,
    /// Value type, e.g. `"Tensor"`, `"Int"`.
    pub value_type: String,
    /// Tensor metadata when the value is a tensor.
    pub tensor: Option<TensorSummary>,
    /// The literal, for scalar values (`Int`, `Bool`, `Double`, `String`); a constant getter's
    /// outputs are read this way.
    pub scalar: Option<String>,
}

/// Tensor metadata for display.
#[derive(Clone, Debug, Serialize)]
pub struct TensorSummary {
    /// Element type.
    pub dtype: ScalarType,
    /// Shape (upper bounds when dynamic).
    pub sizes: Vec<i32>,
    /// Dimension order.
    pub dim_order: Vec<u8>,
    /// How to read `sizes`.
    pub dynamism: ShapeDynamism,
    /// Storage kind.
    pub kind: TensorKind,
}

/// One delegate.
#[derive(Clone, Debug, Serialize)]
pub struct DelegateSummary {
    /// Backend id.
    pub id: String,
    /// Where the payload is stored.
    pub location: DataLocation,
    /// Payload size in bytes.
    pub blob_size: u64,
    /// Compile spec keys.
    pub compile_spec_keys: Vec<String>,
    /// How many `DelegateCall`s target this delegate.
    pub calls: usize,
}

/// Named data of one file.
#[derive(Clone, Debug, Serialize)]
pub struct NamedDataSummary {
    /// Number of keys.
    pub count: usize,
    /// Distinct segments they use.
    pub segments: usize,
    /// Total bytes of those distinct segments.
    pub bytes: u64,
}

impl Pte {
    /// Summarizes the program for display.
    pub fn summary(&self) -> ProgramSummary {
        let program = self.program();
        let mut named_segments: Vec<usize> = program
            .named_data
            .iter()
            .map(|entry| entry.segment_index)
            .collect();
        named_segments.sort_unstable();
        named_segments.dedup();
        let named_bytes = named_segments
            .iter()
            .filter_map(|&i| program.segments.get(i))
            .map(|range| range.len)
            .sum();
        ProgramSummary {
            file_len: self.file_len(),
            program_size: self.program_size(),
            header: self.header().copied(),
            schema_version: program.version,
            segment_count: program.segments.len(),
            segment_bytes: program.segments.iter().map(|range| range.len).sum(),
            methods: program.plans.iter().map(MethodSummary::of).collect(),
            named_data: NamedDataSummary {
                count: program.named_data.len(),
                segments: named_segments.len(),
                bytes: named_bytes,
            },
        }
    }
}

impl MethodSummary {
    /// Summarizes one plan.
    pub fn of(plan: &ExecutionPlan) -> Self {
        let mut instruction_kinds = BTreeMap::new();
        let mut operator_calls = BTreeMap::new();
        let mut delegate_calls = vec![0usize; plan.delegates.len()];
        for instruction in plan.instructions() {
            let kind = match instruction {
                Instruction::KernelCall { op_index, .. } => {
                    if let Some(op) = plan.operators.get(*op_index) {
                        *operator_calls.entry(op.qualified_name()).or_insert(0) += 1;
                    }
                    "KernelCall"
                }
                Instruction::DelegateCall { delegate_index, .. } => {
                    if let Some(calls) = delegate_calls.get_mut(*delegate_index) {
                        *calls += 1;
                    }
                    "DelegateCall"
                }
                Instruction::MoveCall { .. } => "MoveCall",
                Instruction::JumpFalseCall { .. } => "JumpFalseCall",
                Instruction::FreeCall { .. } => "FreeCall",
            };
            *instruction_kinds.entry(kind.to_owned()).or_insert(0) += 1;
        }
        let mut tensor_kinds = BTreeMap::new();
        let mut constant_bytes = 0u64;
        for tensor in plan.values.iter().filter_map(Value::as_tensor) {
            let kind = tensor.kind();
            *tensor_kinds.entry(format!("{kind:?}")).or_insert(0) += 1;
            if kind == TensorKind::Constant {
                if let crate::program::TensorData::InFile(range) = tensor.data {
                    constant_bytes += range.len;
                }
            }
        }
        let io = |indices: &[usize]| indices.iter().map(|&i| IoSummary::of(plan, i)).collect();
        Self {
            name: plan.name.clone(),
            inputs: io(&plan.inputs),
            outputs: io(&plan.outputs),
            value_count: plan.values.len(),
            instruction_count: plan.instruction_count(),
            instruction_kinds,
            operators: plan
                .operators
                .iter()
                .map(|op| op.qualified_name())
                .collect(),
            operator_calls,
            delegates: plan
                .delegates
                .iter()
                .zip(delegate_calls)
                .map(|(delegate, calls)| DelegateSummary {
                    id: delegate.id.clone(),
                    location: delegate.blob.location,
                    blob_size: delegate.blob.range.len,
                    compile_spec_keys: delegate
                        .compile_specs
                        .iter()
                        .map(|spec| spec.key.clone())
                        .collect(),
                    calls,
                })
                .collect(),
            planned_buffer_sizes: plan.non_const_buffer_sizes.clone(),
            tensor_kinds,
            constant_bytes,
            is_constant_getter: plan.is_constant_getter(),
        }
    }
}

impl IoSummary {
    fn of(plan: &ExecutionPlan, value_index: usize) -> Self {
        let value = plan.values.get(value_index);
        let scalar = match value {
            Some(Value::Int(v)) => Some(v.to_string()),
            Some(Value::Bool(v)) => Some(v.to_string()),
            Some(Value::Double(v)) => Some(v.to_string()),
            Some(Value::String(v)) => Some(v.clone()),
            _ => None,
        };
        Self {
            value_index,
            value_type: value.map_or("missing", Value::type_name).to_owned(),
            tensor: value
                .and_then(Value::as_tensor)
                .map(|tensor| TensorSummary {
                    dtype: tensor.scalar_type,
                    sizes: tensor.sizes.clone(),
                    dim_order: tensor.dim_order.clone(),
                    dynamism: tensor.dynamism,
                    kind: tensor.kind(),
                }),
            scalar,
        }
    }
}
