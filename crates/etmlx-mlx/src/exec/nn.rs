//! Neural-network blocks: norms, RoPE, attention (in-graph and off-graph cache), convolutions,
//! random bits, and the custom-Metal-kernel gate.

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, Op, Tid, Vid, VidOrTid};

#[allow(unused_variables)]
pub fn rms_norm(cx: &mut Ctx<'_>, x: Tid, weight: Option<Tid>, out: Tid, eps: f32) -> Result<(), ExecError> {
    Err(ExecError::Other("rms_norm is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn layer_norm(cx: &mut Ctx<'_>, x: Tid, out: Tid, weight: Option<Tid>, bias: Option<Tid>, eps: f32) -> Result<(), ExecError> {
    Err(ExecError::Other("layer_norm is not implemented yet".into()))
}

#[allow(unused_variables, clippy::too_many_arguments)]
pub fn rope(cx: &mut Ctx<'_>, x: Tid, out: Tid, dims: i32, offset: VidOrTid, freqs: Option<Tid>, traditional: bool, base: f32, scale: f32) -> Result<(), ExecError> {
    Err(ExecError::Other("rope is not implemented yet".into()))
}

#[allow(unused_variables, clippy::too_many_arguments)]
pub fn sdpa(cx: &mut Ctx<'_>, q: Tid, k: Tid, v: Tid, out: Tid, scale: f32, mask: Option<Tid>, causal: bool) -> Result<(), ExecError> {
    Err(ExecError::Other("sdpa is not implemented yet".into()))
}

#[allow(unused_variables, clippy::too_many_arguments)]
pub fn update_and_attend(cx: &mut Ctx<'_>, q: Tid, k: Tid, v: Tid, position: Tid, out: Tid, layer_id: Option<i32>, scale: Option<f32>, out_dtype: Option<i8>) -> Result<(), ExecError> {
    // The cache planning, pools and masks live with the cache itself.
    crate::cache::update_and_attend_op(cx, q, k, v, position, out, layer_id, scale, out_dtype)
}

/// Convolution parameters, one entry per spatial dimension (1, 2 or 3).
#[derive(Debug, Clone)]
pub struct ConvParams {
    pub stride: Vec<i32>,
    pub padding: Vec<i32>,
    pub dilation: Vec<i32>,
    pub output_padding: Vec<i32>,
    pub groups: i32,
    pub transpose: bool,
}

impl ConvParams {
    pub fn new(stride: &[i32], padding: &[i32], dilation: &[i32], output_padding: &[i32], groups: i32, transpose: bool) -> Self {
        ConvParams {
            stride: stride.to_vec(),
            padding: padding.to_vec(),
            dilation: dilation.to_vec(),
            output_padding: output_padding.to_vec(),
            groups,
            transpose,
        }
    }
}

#[allow(unused_variables)]
pub fn conv(cx: &mut Ctx<'_>, x: Tid, w: Tid, out: Tid, p: ConvParams) -> Result<(), ExecError> {
    Err(ExecError::Other("conv is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn random_bits(cx: &mut Ctx<'_>, out: Tid, shape: &[IntOrVid], seed: Option<Vid>, width: i32) -> Result<(), ExecError> {
    Err(ExecError::Other("random_bits is not implemented yet".into()))
}

#[allow(unused_variables)]
pub fn metal_kernel(cx: &mut Ctx<'_>, op: &Op, name: &str) -> Result<(), ExecError> {
    Err(ExecError::Other("metal_kernel is not implemented yet".into()))
}
