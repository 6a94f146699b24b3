//! Neural-network blocks: norms, RoPE, attention (in-graph and off-graph cache), convolutions,
//! random bits, and the custom-Metal-kernel gate.

use mlx::fast::{self, RopeOffset};
use mlx::ops;
use mlx::{Array, DeviceType, Dtype};

use super::shape::check_allocation;
use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, Op, Tid, Vid, VidOrTid};

/// RMS normalisation over the last axis (`fast::rms_norm`), optional elementwise weight.
pub fn rms_norm(
    cx: &mut Ctx<'_>,
    x: Tid,
    weight: Option<Tid>,
    out: Tid,
    eps: f32,
) -> Result<(), ExecError> {
    let r = fast::rms_norm(cx.get(x)?, cx.get_opt(weight)?, eps, cx.s())?;
    cx.set(out, r)
}

/// Layer normalisation over the last axis (`fast::layer_norm`), optional affine weight/bias.
pub fn layer_norm(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    weight: Option<Tid>,
    bias: Option<Tid>,
    eps: f32,
) -> Result<(), ExecError> {
    let r = fast::layer_norm(
        cx.get(x)?,
        cx.get_opt(weight)?,
        cx.get_opt(bias)?,
        eps,
        cx.s(),
    )?;
    cx.set(out, r)
}

/// Rotary embedding (`fast::rope`). The offset is one position (a value slot) or an int array of
/// per-row positions (a tensor). With explicit `freqs` MLX requires `base` to be absent, so the
/// node's `base` is ignored then, as in the reference.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    dims: i32,
    offset: VidOrTid,
    freqs: Option<Tid>,
    traditional: bool,
    base: f32,
    scale: f32,
) -> Result<(), ExecError> {
    let offset = match offset {
        VidOrTid::Vid(vid) => RopeOffset::Int(cx.int(IntOrVid::Vid(vid))?),
        VidOrTid::Tid(tid) => RopeOffset::Array(cx.get(tid)?),
    };
    let freqs = cx.get_opt(freqs)?;
    let base = if freqs.is_some() { None } else { Some(base) };
    let r = fast::rope(
        cx.get(x)?,
        dims,
        traditional,
        base,
        scale,
        offset,
        freqs,
        cx.s(),
    )?;
    cx.set(out, r)
}

/// Fused attention on `[B, H, L, D]` operands (K/V may have fewer heads: GQA). A bool mask means
/// "attend where true" and goes through unchanged; any other mask is additive and is cast to q's
/// dtype first (exported masks are often f32 next to bf16 activations). `causal` selects MLX's
/// lower-right aligned causal mode.
#[allow(clippy::too_many_arguments)]
pub fn sdpa(
    cx: &mut Ctx<'_>,
    q: Tid,
    k: Tid,
    v: Tid,
    out: Tid,
    scale: f32,
    mask: Option<Tid>,
    causal: bool,
) -> Result<(), ExecError> {
    let s = cx.s();
    let query = cx.get(q)?;
    let mask = match cx.get_opt(mask)? {
        Some(m) if m.dtype() != Dtype::Bool && m.dtype() != query.dtype() => {
            Some(ops::astype(m, query.dtype(), s)?)
        }
        Some(m) => Some(m.clone()),
        None => None,
    };
    let mode = if causal { "causal" } else { "" };
    let r = fast::scaled_dot_product_attention(
        query,
        cx.get(k)?,
        cx.get(v)?,
        scale,
        mode,
        mask.as_ref(),
        None,
        s,
    )?;
    cx.set(out, r)
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
    pub fn new(
        stride: &[i32],
        padding: &[i32],
        dilation: &[i32],
        output_padding: &[i32],
        groups: i32,
        transpose: bool,
    ) -> Self {
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

/// One parameter list of a `ConvParams` as an `N`-array (the dispatcher always builds them with
/// one entry per spatial dimension; a mismatch is a programming error reported, not a panic).
fn per_dim<const N: usize>(what: &str, values: &[i32]) -> Result<[i32; N], ExecError> {
    values.try_into().map_err(|_| {
        ExecError::invalid(
            "conv",
            format!("{what} has {} entries, expected {N}", values.len()),
        )
    })
}

/// Plain or transposed convolution on channels-last input `[N, *spatial, C_in]` with weights
/// already in MLX's `[C_out, *kernel, C_in / groups]` layout (the builder inserts the transposes
/// around the node and pre-transposes the weights, and adds the bias as a separate node).
pub fn conv(cx: &mut Ctx<'_>, x: Tid, w: Tid, out: Tid, p: ConvParams) -> Result<(), ExecError> {
    let s = cx.s();
    let (input, weight) = (cx.get(x)?, cx.get(w)?);
    let r = match (p.stride.len(), p.transpose) {
        (1, false) => ops::conv1d(
            input,
            weight,
            per_dim::<1>("stride", &p.stride)?[0],
            per_dim::<1>("padding", &p.padding)?[0],
            per_dim::<1>("dilation", &p.dilation)?[0],
            p.groups,
            s,
        )?,
        (1, true) => ops::conv_transpose1d(
            input,
            weight,
            per_dim::<1>("stride", &p.stride)?[0],
            per_dim::<1>("padding", &p.padding)?[0],
            per_dim::<1>("dilation", &p.dilation)?[0],
            per_dim::<1>("output_padding", &p.output_padding)?[0],
            p.groups,
            s,
        )?,
        (2, false) => ops::conv2d(
            input,
            weight,
            per_dim("stride", &p.stride)?,
            per_dim("padding", &p.padding)?,
            per_dim("dilation", &p.dilation)?,
            p.groups,
            s,
        )?,
        (2, true) => ops::conv_transpose2d(
            input,
            weight,
            per_dim("stride", &p.stride)?,
            per_dim("padding", &p.padding)?,
            per_dim("dilation", &p.dilation)?,
            per_dim("output_padding", &p.output_padding)?,
            p.groups,
            s,
        )?,
        (3, false) => ops::conv3d(
            input,
            weight,
            per_dim("stride", &p.stride)?,
            per_dim("padding", &p.padding)?,
            per_dim("dilation", &p.dilation)?,
            p.groups,
            s,
        )?,
        (3, true) => ops::conv_transpose3d(
            input,
            weight,
            per_dim("stride", &p.stride)?,
            per_dim("padding", &p.padding)?,
            per_dim("dilation", &p.dilation)?,
            per_dim("output_padding", &p.output_padding)?,
            p.groups,
            s,
        )?,
        (n, _) => {
            return Err(ExecError::invalid(
                "conv",
                format!("{n} spatial dims (expected 1, 2 or 3)"),
            ))
        }
    };
    cx.set(out, r)
}

/// Uniform random bits, `width` bytes per element (1 → uint8, 2 → uint16, 4 → uint32). With a
/// seed the key is `random::key(seed)` (the int32 seed sign-extended to 64 bits, as C++'s
/// `uint64_t(int)` does); without one MLX's process-wide key sequence is used and advanced.
/// `mlx::sample` lowers to this plus Gumbel-max, so its results are random by design.
pub fn random_bits(
    cx: &mut Ctx<'_>,
    out: Tid,
    shape: &[IntOrVid],
    seed: Option<Vid>,
    width: i32,
) -> Result<(), ExecError> {
    const OP: &str = "RandomBits";
    if !matches!(width, 1 | 2 | 4) {
        return Err(ExecError::invalid(
            OP,
            format!("width must be 1, 2 or 4 bytes, got {width}"),
        ));
    }
    let dims = cx.ints(shape)?;
    let bits_dtype = match width {
        1 => Dtype::Uint8,
        2 => Dtype::Uint16,
        _ => Dtype::Uint32,
    };
    check_allocation(OP, &dims, bits_dtype)?;
    let key = match seed {
        Some(vid) => Some(mlx::random::key(
            i64::from(cx.int(IntOrVid::Vid(vid))?) as u64
        )?),
        None => None,
    };
    let r = mlx::random::bits(&dims, width, key.as_ref(), cx.s())?;
    cx.set(out, r)
}

/// A custom Metal kernel embedded in the file. Refused unless the caller opted in
/// (`allow_custom_kernels`), since it is arbitrary GPU source code; when allowed it goes to
/// `fast::metal_kernel`, which only Metal builds of MLX can run: elsewhere the failure becomes
/// [`ExecError::MetalKernelUnsupported`] naming the kernel and the device.
pub fn metal_kernel(cx: &mut Ctx<'_>, op: &Op, name: &str) -> Result<(), ExecError> {
    if !cx.options.allow_custom_kernels {
        return Err(ExecError::CustomKernelRefused {
            name: name.to_string(),
        });
    }
    let result = run_metal_kernel(cx, op);
    let device = cx.s().device();
    // Metal exists only on Apple platforms, and only behind MLX's GPU device.
    let on_metal = cfg!(target_os = "macos") && device.device_type == DeviceType::Gpu;
    match result {
        Err(ExecError::Mlx(_)) if !on_metal => Err(ExecError::MetalKernelUnsupported {
            name: name.to_string(),
            device: match device.device_type {
                DeviceType::Cpu => "the CPU".to_string(),
                DeviceType::Gpu => "a non-Metal GPU (CUDA)".to_string(),
            },
        }),
        other => other,
    }
}

fn run_metal_kernel(cx: &mut Ctx<'_>, op: &Op) -> Result<(), ExecError> {
    const OP: &str = "MetalKernel";
    let Op::MetalKernel {
        name,
        source,
        inputs,
        outputs,
        grid,
        threadgroup,
        header,
        input_names,
        output_names,
        ensure_row_contiguous,
        atomic_outputs,
        output_shapes_flat,
        output_shape_lengths,
        output_dtypes,
        template_arg_names,
        template_arg_kinds,
        template_arg_values,
        init_value,
    } = op
    else {
        return Err(ExecError::invalid(
            OP,
            format!("dispatched with {}", op.name()),
        ));
    };
    let grid: [i32; 3] = cx.ints(grid)?.try_into().map_err(|g: Vec<i32>| {
        ExecError::invalid(OP, format!("grid has {} entries, expected 3", g.len()))
    })?;
    let threadgroup: [i32; 3] = cx.ints(threadgroup)?.try_into().map_err(|t: Vec<i32>| {
        ExecError::invalid(
            OP,
            format!("threadgroup has {} entries, expected 3", t.len()),
        )
    })?;

    // Output shapes arrive flattened with one length per output.
    let flat = cx.ints(output_shapes_flat)?;
    let mut output_shapes = Vec::with_capacity(output_shape_lengths.len());
    let mut cursor = 0usize;
    for &len in output_shape_lengths {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| cursor.checked_add(l));
        let shape = end.and_then(|end| flat.get(cursor..end)).ok_or_else(|| {
            ExecError::invalid(OP, "output_shape_lengths run past output_shapes_flat")
        })?;
        cursor += shape.len();
        output_shapes.push(shape.to_vec());
    }
    if output_shapes.len() != outputs.len() || output_dtypes.len() != outputs.len() {
        return Err(ExecError::invalid(
            OP,
            format!(
                "{} outputs but {} shapes and {} dtypes",
                outputs.len(),
                output_shapes.len(),
                output_dtypes.len()
            ),
        ));
    }
    let dtypes = output_dtypes
        .iter()
        .map(|&d| cx.dtype(d))
        .collect::<Result<Vec<_>, _>>()?;
    for (shape, dtype) in output_shapes.iter().zip(&dtypes) {
        check_allocation(OP, shape, *dtype)?;
    }

    if template_arg_kinds.len() != template_arg_names.len()
        || template_arg_values.len() != template_arg_names.len()
    {
        return Err(ExecError::invalid(
            OP,
            "template argument arrays differ in length",
        ));
    }
    let mut template_args = Vec::with_capacity(template_arg_names.len());
    for ((arg_name, &kind), &value) in template_arg_names
        .iter()
        .zip(template_arg_kinds)
        .zip(template_arg_values)
    {
        let arg = match kind {
            0 => fast::TemplateArg::Int(value),
            1 => fast::TemplateArg::Bool(value != 0),
            2 => {
                let code = i8::try_from(value).map_err(|_| {
                    ExecError::invalid(
                        OP,
                        format!("template argument '{arg_name}': {value} is not a ScalarType"),
                    )
                })?;
                fast::TemplateArg::Dtype(cx.dtype(code)?)
            }
            other => {
                return Err(ExecError::invalid(
                    OP,
                    format!("template argument '{arg_name}' has unknown kind {other}"),
                ))
            }
        };
        template_args.push((arg_name.as_str(), arg));
    }

    let input_arrays = inputs
        .iter()
        .map(|&t| cx.get(t))
        .collect::<Result<Vec<&Array>, _>>()?;
    let input_names: Vec<&str> = input_names.iter().map(String::as_str).collect();
    let output_names: Vec<&str> = output_names.iter().map(String::as_str).collect();
    let kernel = fast::MetalKernel::new(
        name,
        &input_names,
        &output_names,
        source,
        header,
        *ensure_row_contiguous,
        *atomic_outputs,
    )?;
    let results = kernel.call(
        &fast::MetalKernelCall {
            inputs: &input_arrays,
            output_shapes: &output_shapes,
            output_dtypes: &dtypes,
            grid,
            threadgroup,
            template_args: &template_args,
            init_value: *init_value,
        },
        cx.s(),
    )?;
    if results.len() != outputs.len() {
        return Err(ExecError::invalid(
            OP,
            format!(
                "kernel returned {} arrays for {} outputs",
                results.len(),
                outputs.len()
            ),
        ));
    }
    for (&tid, array) in outputs.iter().zip(results) {
        cx.set(tid, array)?;
    }
    Ok(())
}
