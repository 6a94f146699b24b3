//! Matrix products: addmm/matmul, quantized matmul, gathered (MoE) matmuls, dequantize.

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, Tid};

#[allow(unused_variables)]
pub fn addmm(cx: &mut Ctx<'_>, mat1: Tid, mat2: Tid, out: Tid, bias: Option<Tid>, alpha: f32, beta: f32) -> Result<(), ExecError> {
    Err(ExecError::Other("addmm is not implemented yet".into()))
}

#[allow(unused_variables, clippy::too_many_arguments)]
pub fn quantized_matmul(cx: &mut Ctx<'_>, x: Tid, w: Tid, scales: Tid, out: Tid, biases: Option<Tid>, group_size: i32, bits: i32, mode: &str, transpose: bool) -> Result<(), ExecError> {
    Err(ExecError::Other("quantized_matmul is not implemented yet".into()))
}

#[allow(unused_variables, clippy::too_many_arguments)]
pub fn dequantize(cx: &mut Ctx<'_>, w: Tid, scales: Tid, out: Tid, biases: Option<Tid>, group_size: i32, bits: i32, mode: &str, global_scale: Option<Tid>, dtype: Option<i8>) -> Result<(), ExecError> {
    Err(ExecError::Other("dequantize is not implemented yet".into()))
}

#[allow(unused_variables, clippy::too_many_arguments)]
pub fn gather_mm(cx: &mut Ctx<'_>, a: Tid, b: Tid, out: Tid, lhs_indices: Option<Tid>, rhs_indices: Option<Tid>, sorted_indices: bool, sorted_indices_flag: Option<IntOrVid>) -> Result<(), ExecError> {
    Err(ExecError::Other("gather_mm is not implemented yet".into()))
}

/// Operands of `GatherQmm` (too many for a plain argument list).
pub struct GatherQmmArgs<'a> {
    pub x: Tid,
    pub w: Tid,
    pub scales: Tid,
    pub out: Tid,
    pub mode: &'a str,
    pub biases: Option<Tid>,
    pub lhs_indices: Option<Tid>,
    pub rhs_indices: Option<Tid>,
    pub transpose: bool,
    pub group_size: i32,
    pub bits: i32,
    pub sorted_indices: bool,
    pub sorted_indices_flag: Option<IntOrVid>,
}

#[allow(unused_variables)]
pub fn gather_qmm(cx: &mut Ctx<'_>, args: GatherQmmArgs<'_>) -> Result<(), ExecError> {
    Err(ExecError::Other("gather_qmm is not implemented yet".into()))
}
