//! Indexing: slices, in-place slice updates, take/gather/scatter.

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, IntOrVidOrTid, Tid};

#[allow(unused_variables)]
pub fn slice(cx: &mut Ctx<'_>, x: Tid, out: Tid, axis: IntOrVid, start: IntOrVid, stop: IntOrVid, step: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("slice is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn slice_update(cx: &mut Ctx<'_>, dst: Tid, update: Tid, out: Tid, axis: IntOrVid, start: IntOrVid, stop: IntOrVid, step: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("slice_update is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn index_copy(cx: &mut Ctx<'_>, dst: Tid, update: Tid, indices: Tid, out: Tid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("index_copy is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn take(cx: &mut Ctx<'_>, x: Tid, out: Tid, index: IntOrVidOrTid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("take is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn take_along_axis(cx: &mut Ctx<'_>, x: Tid, indices: Tid, out: Tid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("take_along_axis is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn gather(cx: &mut Ctx<'_>, x: Tid, indices: &[Tid], out: Tid, axes: &[i32], slice_sizes: &[i32]) -> Result<(), ExecError> {
    Err(ExecError::Other("gather is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn scatter_add(cx: &mut Ctx<'_>, x: Tid, indices: Tid, updates: Tid, out: Tid, axis: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("scatter_add is not implemented yet".into()))
}
