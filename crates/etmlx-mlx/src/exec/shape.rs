//! Shape manipulation and array creation.

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{FloatOrVid, IntOrVid, Tid};

#[allow(unused_variables)]
pub fn reshape(cx: &mut Ctx<'_>, x: Tid, out: Tid, shape: &[IntOrVid]) -> Result<(), ExecError> {
    Err(ExecError::Other("reshape is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn transpose(cx: &mut Ctx<'_>, x: Tid, out: Tid, perm: &[i32]) -> Result<(), ExecError> {
    Err(ExecError::Other("transpose is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn expand_dims(cx: &mut Ctx<'_>, x: Tid, out: Tid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("expand_dims is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn squeeze(cx: &mut Ctx<'_>, x: Tid, out: Tid, dims: &[i32]) -> Result<(), ExecError> {
    Err(ExecError::Other("squeeze is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn broadcast_to(cx: &mut Ctx<'_>, x: Tid, out: Tid, shape: &[IntOrVid]) -> Result<(), ExecError> {
    Err(ExecError::Other("broadcast_to is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn tile(cx: &mut Ctx<'_>, x: Tid, out: Tid, reps: &[IntOrVid]) -> Result<(), ExecError> {
    Err(ExecError::Other("tile is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn repeat(cx: &mut Ctx<'_>, x: Tid, out: Tid, repeats: IntOrVid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("repeat is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn concatenate(cx: &mut Ctx<'_>, tensors: &[Tid], out: Tid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("concatenate is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn stack(cx: &mut Ctx<'_>, tensors: &[Tid], out: Tid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("stack is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn split(cx: &mut Ctx<'_>, x: Tid, outs: &[Tid], sizes: &[IntOrVid], axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("split is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn pad(cx: &mut Ctx<'_>, x: Tid, out: Tid, pad_width: &[IntOrVid], mode: &str, constant_value: f32) -> Result<(), ExecError> {
    Err(ExecError::Other("pad is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn roll(cx: &mut Ctx<'_>, x: Tid, out: Tid, shift: &[IntOrVid], axes: &[i32]) -> Result<(), ExecError> {
    Err(ExecError::Other("roll is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn flip(cx: &mut Ctx<'_>, x: Tid, out: Tid, axes: &[i32]) -> Result<(), ExecError> {
    Err(ExecError::Other("flip is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn contiguous(cx: &mut Ctx<'_>, x: Tid, out: Tid) -> Result<(), ExecError> {
    Err(ExecError::Other("contiguous is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn as_strided(cx: &mut Ctx<'_>, x: Tid, out: Tid, shape: &[IntOrVid], strides: &[IntOrVid], offset: u64) -> Result<(), ExecError> {
    Err(ExecError::Other("as_strided is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn tril_triu(cx: &mut Ctx<'_>, x: Tid, out: Tid, k: i32, lower: bool) -> Result<(), ExecError> {
    Err(ExecError::Other("tril_triu is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn tri(cx: &mut Ctx<'_>, out: Tid, n: IntOrVid, m: IntOrVid, k: i32, scalar_type: i8) -> Result<(), ExecError> {
    Err(ExecError::Other("tri is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn full(cx: &mut Ctx<'_>, out: Tid, shape: &[IntOrVid], v: FloatOrVid, scalar_type: i8) -> Result<(), ExecError> {
    Err(ExecError::Other("full is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn full_like(cx: &mut Ctx<'_>, x: Tid, out: Tid, v: FloatOrVid, scalar_type: Option<i8>) -> Result<(), ExecError> {
    Err(ExecError::Other("full_like is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn arange(cx: &mut Ctx<'_>, out: Tid, start: IntOrVid, stop: IntOrVid, step: IntOrVid, scalar_type: Option<i8>) -> Result<(), ExecError> {
    Err(ExecError::Other("arange is not implemented yet".into()))
}
