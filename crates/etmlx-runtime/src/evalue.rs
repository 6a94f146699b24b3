//! Boxed values of a method's value table (ExecuTorch `EValue`).

use crate::tensor::Tensor;

/// One entry of a method's value table.
///
/// List variants hold **value indices**, not literals, where ExecuTorch does (IntList, TensorList,
/// OptionalTensorList), so symbolic sizes computed at run time are seen by every list that names them.
#[derive(Debug, Clone, PartialEq)]
pub enum EValue {
    None,
    Int(i64),
    Bool(bool),
    Double(f64),
    String(String),
    Tensor(Tensor),
    IntList(Vec<usize>),
    DoubleList(Vec<f64>),
    BoolList(Vec<bool>),
    TensorList(Vec<usize>),
    OptionalTensorList(Vec<Option<usize>>),
}

impl EValue {
    /// Short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            EValue::None => "None",
            EValue::Int(_) => "Int",
            EValue::Bool(_) => "Bool",
            EValue::Double(_) => "Double",
            EValue::String(_) => "String",
            EValue::Tensor(_) => "Tensor",
            EValue::IntList(_) => "IntList",
            EValue::DoubleList(_) => "DoubleList",
            EValue::BoolList(_) => "BoolList",
            EValue::TensorList(_) => "TensorList",
            EValue::OptionalTensorList(_) => "OptionalTensorList",
        }
    }
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            EValue::Tensor(t) => Some(t),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            EValue::Int(v) => Some(*v),
            _ => None,
        }
    }
}
