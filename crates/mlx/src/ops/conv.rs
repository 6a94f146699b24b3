//! Convolutions in MLX's channels-last layout: input `[N, *spatial, C_in]`, weight
//! `[C_out, *kernel, C_in / groups]` (MLX documents the same weight layout for the transposed
//! variants; the tests only cover C_in = C_out = 1 there). The delegate's builder inserts the
//! transposes from PyTorch's layout.

use crate::array::Array;
use crate::device::Stream;
use crate::error::Result;

#[allow(clippy::too_many_arguments)]
fn conv_any<const N: usize>(
    op: &'static str,
    transposed: bool,
    x: &Array,
    w: &Array,
    stride: [i32; N],
    padding: [i32; N],
    dilation: [i32; N],
    output_padding: [i32; N],
    groups: i32,
    s: Stream,
) -> Result<Array> {
    let spatial = i32::try_from(N).unwrap_or(i32::MAX);
    // SAFETY: valid handles; each parameter array holds N values as the shim expects.
    Array::produce(op, |out| unsafe {
        mlx_sys::etm_conv(
            spatial,
            transposed,
            x.as_ptr(),
            w.as_ptr(),
            stride.as_ptr(),
            padding.as_ptr(),
            dilation.as_ptr(),
            output_padding.as_ptr(),
            groups,
            s.raw(),
            out,
        )
    })
}

#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &Array,
    w: &Array,
    stride: i32,
    padding: i32,
    dilation: i32,
    groups: i32,
    s: Stream,
) -> Result<Array> {
    conv_any(
        "conv1d",
        false,
        x,
        w,
        [stride],
        [padding],
        [dilation],
        [0],
        groups,
        s,
    )
}

pub fn conv2d(
    x: &Array,
    w: &Array,
    stride: [i32; 2],
    padding: [i32; 2],
    dilation: [i32; 2],
    groups: i32,
    s: Stream,
) -> Result<Array> {
    conv_any(
        "conv2d", false, x, w, stride, padding, dilation, [0; 2], groups, s,
    )
}

pub fn conv3d(
    x: &Array,
    w: &Array,
    stride: [i32; 3],
    padding: [i32; 3],
    dilation: [i32; 3],
    groups: i32,
    s: Stream,
) -> Result<Array> {
    conv_any(
        "conv3d", false, x, w, stride, padding, dilation, [0; 3], groups, s,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn conv_transpose1d(
    x: &Array,
    w: &Array,
    stride: i32,
    padding: i32,
    dilation: i32,
    output_padding: i32,
    groups: i32,
    s: Stream,
) -> Result<Array> {
    conv_any(
        "conv_transpose1d",
        true,
        x,
        w,
        [stride],
        [padding],
        [dilation],
        [output_padding],
        groups,
        s,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    x: &Array,
    w: &Array,
    stride: [i32; 2],
    padding: [i32; 2],
    dilation: [i32; 2],
    output_padding: [i32; 2],
    groups: i32,
    s: Stream,
) -> Result<Array> {
    conv_any(
        "conv_transpose2d",
        true,
        x,
        w,
        stride,
        padding,
        dilation,
        output_padding,
        groups,
        s,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn conv_transpose3d(
    x: &Array,
    w: &Array,
    stride: [i32; 3],
    padding: [i32; 3],
    dilation: [i32; 3],
    output_padding: [i32; 3],
    groups: i32,
    s: Stream,
) -> Result<Array> {
    conv_any(
        "conv_transpose3d",
        true,
        x,
        w,
        stride,
        padding,
        dilation,
        output_padding,
        groups,
        s,
    )
}
