//! The executor: interprets a chain of IR ops, building a lazy MLX graph.
//!
//! `dispatch` is the one exhaustive match over every op node; the work of each family lives in its
//! own file. Ops only read slots through [`Ctx::get`] and write through [`Ctx::set`], so a slot
//! write replaces (and drops) the previous handle: that is what lets MLX update KV caches in place.

pub mod control;
pub mod decode_attention;
pub mod elementwise;
pub mod fold;
pub mod index;
pub mod linalg;
pub mod nn;
pub mod pass_inputs;
pub mod reduce;
pub mod residual_norm;
pub mod scalar;
pub mod shape;
mod stage;
pub mod state;

use mlx::ops::{BinaryOp, ReduceOp, UnaryOp};

use crate::error::ExecError;
use crate::ir::Op;
pub use state::{Ctx, HostInts, Layout, Persistent, Transient, Value};

/// Runs every op of chain `chain`, naming the failing op in the error.
pub fn run_chain(cx: &mut Ctx<'_>, chain: usize) -> Result<(), ExecError> {
    let ops = cx
        .graph
        .chains
        .get(chain)
        .ok_or_else(|| ExecError::Other(format!("chain {chain} does not exist")))?;
    let uses_folded = chain == cx.graph.main_chain && !cx.is_init_chain;
    // Set when a fused residual add + norm wrote the next op's output too.
    let mut next_done = false;
    for (index, op) in ops.iter().enumerate() {
        if std::mem::take(&mut next_done) {
            continue;
        }
        if let Some(Some((out, array))) = cx.persistent.folded.get(index).filter(|_| uses_folded) {
            // Computed once at load (see `fold`): the slot gets the stored view, no graph node.
            let (out, array) = (*out, array.clone());
            cx.set(out, array)?;
            continue;
        }
        let in_op = |e| ExecError::InOp {
            op: op.name(),
            chain,
            index,
            source: Box::new(e),
        };
        if uses_folded {
            if decode_attention::step(cx, index, op).map_err(in_op)? {
                continue;
            }
            if residual_norm::step(cx, index).map_err(in_op)? {
                next_done = true;
                continue;
            }
        }
        dispatch(cx, op).map_err(|e| match e {
            // Keep the innermost location when chains nest (If/Scan bodies).
            e @ ExecError::InOp { .. } => e,
            e => ExecError::InOp {
                op: op.name(),
                chain,
                index,
                source: Box::new(e),
            },
        })?;
        if uses_folded {
            stage::after_op(cx, op).map_err(in_op)?;
        }
    }
    Ok(())
}

/// Executes one op.
pub fn dispatch(cx: &mut Ctx<'_>, op: &Op) -> Result<(), ExecError> {
    use elementwise::{binary, unary};
    use reduce::reduce;
    match op {
        Op::Noop {} => Ok(()),
        Op::IdCopy { x, out } => {
            let a = cx.get(*x)?.clone();
            let host = cx.host_ints(*x).cloned();
            cx.set(*out, a)?;
            cx.set_host_ints(*out, host);
            Ok(())
        }

        // ---- scalar (host) arithmetic on value slots
        Op::ItemInt { x, out } => scalar::item_int(cx, *x, *out),
        Op::SymSize { a, dim, out } => scalar::sym_size(cx, *a, *dim, *out),
        Op::AddInt { a, b, out } => scalar::int_op(cx, scalar::IntOp::Add, *a, *b, *out),
        Op::SubtractInt { a, b, out } => scalar::int_op(cx, scalar::IntOp::Subtract, *a, *b, *out),
        Op::MultiplyInt { a, b, out } => scalar::int_op(cx, scalar::IntOp::Multiply, *a, *b, *out),
        Op::FloorDivideInt { a, b, out } => {
            scalar::int_op(cx, scalar::IntOp::FloorDivide, *a, *b, *out)
        }
        Op::ModInt { a, b, out } => scalar::int_op(cx, scalar::IntOp::Mod, *a, *b, *out),

        // ---- control flow
        Op::If {
            cond,
            then_chain_idx,
            else_chain_idx,
        } => control::exec_if(cx, *cond, then_chain_idx.0, else_chain_idx.0),
        Op::Scan {
            originals,
            sliced,
            outputs,
            carry: _,
            body_chain_idx,
            scan_axis,
        } => control::exec_scan(cx, originals, sliced, outputs, body_chain_idx.0, *scan_axis),

        // ---- unary elementwise
        Op::Abs { x, out } => unary(cx, UnaryOp::Abs, *x, *out),
        Op::Neg { x, out } => unary(cx, UnaryOp::Negative, *x, *out),
        Op::Sign { x, out } => unary(cx, UnaryOp::Sign, *x, *out),
        Op::Floor { x, out } => unary(cx, UnaryOp::Floor, *x, *out),
        Op::Ceil { x, out } => unary(cx, UnaryOp::Ceil, *x, *out),
        Op::Trunc { x, out } => unary(cx, UnaryOp::Trunc, *x, *out),
        Op::Square { x, out } => unary(cx, UnaryOp::Square, *x, *out),
        Op::Sqrt { x, out } => unary(cx, UnaryOp::Sqrt, *x, *out),
        Op::Rsqrt { x, out } => unary(cx, UnaryOp::Rsqrt, *x, *out),
        Op::Reciprocal { x, out } => unary(cx, UnaryOp::Reciprocal, *x, *out),
        Op::Exp { x, out } => unary(cx, UnaryOp::Exp, *x, *out),
        Op::Expm1 { x, out } => unary(cx, UnaryOp::Expm1, *x, *out),
        Op::Log { x, out } => unary(cx, UnaryOp::Log, *x, *out),
        Op::Log2 { x, out } => unary(cx, UnaryOp::Log2, *x, *out),
        Op::Log10 { x, out } => unary(cx, UnaryOp::Log10, *x, *out),
        Op::Log1p { x, out } => unary(cx, UnaryOp::Log1p, *x, *out),
        Op::Sin { x, out } => unary(cx, UnaryOp::Sin, *x, *out),
        Op::Cos { x, out } => unary(cx, UnaryOp::Cos, *x, *out),
        Op::Tan { x, out } => unary(cx, UnaryOp::Tan, *x, *out),
        Op::Arcsin { x, out } => unary(cx, UnaryOp::Arcsin, *x, *out),
        Op::Arccos { x, out } => unary(cx, UnaryOp::Arccos, *x, *out),
        Op::Arctan { x, out } => unary(cx, UnaryOp::Arctan, *x, *out),
        Op::Sinh { x, out } => unary(cx, UnaryOp::Sinh, *x, *out),
        Op::Cosh { x, out } => unary(cx, UnaryOp::Cosh, *x, *out),
        Op::Tanh { x, out } => unary(cx, UnaryOp::Tanh, *x, *out),
        Op::Arcsinh { x, out } => unary(cx, UnaryOp::Arcsinh, *x, *out),
        Op::Arccosh { x, out } => unary(cx, UnaryOp::Arccosh, *x, *out),
        Op::Arctanh { x, out } => unary(cx, UnaryOp::Arctanh, *x, *out),
        Op::Erf { x, out } => unary(cx, UnaryOp::Erf, *x, *out),
        Op::Sigmoid { x, out } => unary(cx, UnaryOp::Sigmoid, *x, *out),
        Op::LogicalNot { x, out } => unary(cx, UnaryOp::LogicalNot, *x, *out),
        Op::BitwiseInvert { x, out } => unary(cx, UnaryOp::BitwiseInvert, *x, *out),
        Op::Round { x, out, decimals } => elementwise::round(cx, *x, *out, *decimals),
        Op::Silu { x, out } => elementwise::silu(cx, *x, *out),
        Op::Gelu {
            x,
            out,
            approximate,
        } => elementwise::gelu(cx, *x, *out, approximate),

        // ---- binary elementwise
        Op::Add { a, b, out } => binary(cx, BinaryOp::Add, *a, *b, *out),
        Op::Subtract { a, b, out } => binary(cx, BinaryOp::Subtract, *a, *b, *out),
        Op::Multiply { a, b, out } => elementwise::multiply(cx, *a, *b, *out),
        Op::Divide { a, b, out } => binary(cx, BinaryOp::Divide, *a, *b, *out),
        Op::Remainder { a, b, out } => binary(cx, BinaryOp::Remainder, *a, *b, *out),
        Op::Power { a, b, out } => binary(cx, BinaryOp::Power, *a, *b, *out),
        Op::Maximum { a, b, out } => binary(cx, BinaryOp::Maximum, *a, *b, *out),
        Op::Minimum { a, b, out } => binary(cx, BinaryOp::Minimum, *a, *b, *out),
        Op::Atan2 { a, b, out } => binary(cx, BinaryOp::Arctan2, *a, *b, *out),
        Op::LogAddExp { a, b, out } => binary(cx, BinaryOp::LogAddExp, *a, *b, *out),
        Op::Equal { a, b, out } => binary(cx, BinaryOp::Equal, *a, *b, *out),
        Op::NotEqual { a, b, out } => binary(cx, BinaryOp::NotEqual, *a, *b, *out),
        Op::Less { a, b, out } => binary(cx, BinaryOp::Less, *a, *b, *out),
        Op::LessEqual { a, b, out } => binary(cx, BinaryOp::LessEqual, *a, *b, *out),
        Op::Greater { a, b, out } => binary(cx, BinaryOp::Greater, *a, *b, *out),
        Op::GreaterEqual { a, b, out } => binary(cx, BinaryOp::GreaterEqual, *a, *b, *out),
        Op::LogicalAnd { a, b, out } => binary(cx, BinaryOp::LogicalAnd, *a, *b, *out),
        Op::LogicalOr { a, b, out } => binary(cx, BinaryOp::LogicalOr, *a, *b, *out),
        Op::BitwiseAnd { a, b, out } => binary(cx, BinaryOp::BitwiseAnd, *a, *b, *out),
        Op::BitwiseOr { a, b, out } => binary(cx, BinaryOp::BitwiseOr, *a, *b, *out),
        Op::BitwiseXor { a, b, out } => binary(cx, BinaryOp::BitwiseXor, *a, *b, *out),
        Op::FloorDivide { a, b, out } => elementwise::floor_divide(cx, *a, *b, *out),
        Op::Where {
            condition,
            x,
            y,
            out,
        } => elementwise::where_(cx, *condition, *x, *y, *out),
        Op::Clip {
            x,
            out,
            a_min,
            a_max,
        } => elementwise::clip(cx, *x, *out, *a_min, *a_max),
        Op::AsType {
            x,
            out,
            scalar_type,
        } => elementwise::astype(cx, *x, *out, *scalar_type),

        // ---- reductions and scans along axes
        Op::Sum {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Sum, *x, *out, axes, *keepdims),
        Op::Mean {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Mean, *x, *out, axes, *keepdims),
        Op::Prod {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Prod, *x, *out, axes, *keepdims),
        Op::Max {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Max, *x, *out, axes, *keepdims),
        Op::Min {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Min, *x, *out, axes, *keepdims),
        Op::Any {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Any, *x, *out, axes, *keepdims),
        Op::All {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::All, *x, *out, axes, *keepdims),
        Op::Median {
            x,
            out,
            axes,
            keepdims,
        } => reduce(cx, ReduceOp::Median, *x, *out, axes, *keepdims),
        Op::Var {
            x,
            out,
            axes,
            keepdims,
            ddof,
        } => reduce(cx, ReduceOp::Var { ddof: *ddof }, *x, *out, axes, *keepdims),
        Op::Std {
            x,
            out,
            axes,
            keepdims,
            ddof,
        } => reduce(cx, ReduceOp::Std { ddof: *ddof }, *x, *out, axes, *keepdims),
        Op::LogSumExp {
            x,
            out,
            axes,
            keepdims,
        } => reduce::logsumexp(cx, *x, *out, axes, *keepdims),
        Op::Argmax {
            x,
            out,
            axis,
            keepdims,
        } => reduce::arg_reduce(cx, true, *x, *out, *axis, *keepdims),
        Op::Argmin {
            x,
            out,
            axis,
            keepdims,
        } => reduce::arg_reduce(cx, false, *x, *out, *axis, *keepdims),
        Op::Cumsum {
            x,
            out,
            axis,
            reverse,
            inclusive,
        } => reduce::cumsum(cx, *x, *out, *axis, *reverse, *inclusive),
        Op::Softmax {
            x,
            out,
            axis,
            precise,
        } => reduce::softmax(cx, *x, *out, *axis, *precise),
        Op::Sort { x, out, axis } => reduce::sort(cx, *x, *out, *axis, false),
        Op::Argsort { x, out, axis } => reduce::sort(cx, *x, *out, *axis, true),
        Op::Partition { x, out, kth, axis } => reduce::partition(cx, *x, *out, *kth, *axis, false),
        Op::ArgPartition { x, out, kth, axis } => {
            reduce::partition(cx, *x, *out, *kth, *axis, true)
        }

        // ---- shapes and creation
        Op::Reshape { x, out, shape } => shape::reshape(cx, *x, *out, shape),
        Op::Transpose { x, out, perm } => shape::transpose(cx, *x, *out, perm),
        Op::ExpandDims { x, out, axis } => shape::expand_dims(cx, *x, *out, *axis),
        Op::Squeeze { x, out, dims } => shape::squeeze(cx, *x, *out, dims),
        Op::BroadcastTo { x, out, shape } => shape::broadcast_to(cx, *x, *out, shape),
        Op::Tile { x, out, reps } => shape::tile(cx, *x, *out, reps),
        Op::Repeat {
            x,
            out,
            repeats,
            axis,
        } => shape::repeat(cx, *x, *out, *repeats, *axis),
        Op::Concatenate { tensors, out, axis } => shape::concatenate(cx, tensors, *out, *axis),
        Op::Stack { tensors, out, axis } => shape::stack(cx, tensors, *out, *axis),
        Op::Split {
            x,
            outs,
            sizes,
            axis,
        } => shape::split(cx, *x, outs, sizes, *axis),
        Op::Pad {
            x,
            out,
            pad_width,
            mode,
            constant_value,
        } => shape::pad(cx, *x, *out, pad_width, mode, *constant_value),
        Op::Roll {
            x,
            out,
            shift,
            axes,
        } => shape::roll(cx, *x, *out, shift, axes),
        Op::Flip { x, out, axes } => shape::flip(cx, *x, *out, axes),
        Op::Contiguous { x, out } => shape::contiguous(cx, *x, *out),
        Op::AsStrided {
            x,
            out,
            shape,
            strides,
            offset,
        } => shape::as_strided(cx, *x, *out, shape, strides, *offset),
        Op::Tril { x, out, k } => shape::tril_triu(cx, *x, *out, *k, true),
        Op::Triu { x, out, k } => shape::tril_triu(cx, *x, *out, *k, false),
        Op::Tri {
            out,
            n,
            m,
            k,
            scalar_type,
        } => shape::tri(cx, *out, *n, *m, *k, *scalar_type),
        Op::Full {
            out,
            shape,
            v,
            scalar_type,
        } => shape::full(cx, *out, shape, *v, *scalar_type),
        Op::FullLike {
            x,
            out,
            v,
            scalar_type,
        } => shape::full_like(cx, *x, *out, *v, *scalar_type),
        Op::ARange {
            out,
            start,
            stop,
            step,
            scalar_type,
        } => shape::arange(cx, *out, *start, *stop, *step, *scalar_type),

        // ---- indexing
        Op::Slice {
            x,
            out,
            axis,
            start,
            stop,
            step,
        } => index::slice(cx, *x, *out, *axis, *start, *stop, *step),
        Op::SliceUpdate {
            dst,
            update,
            out,
            axis,
            start,
            stop,
            step,
        } => index::slice_update(cx, *dst, *update, *out, *axis, *start, *stop, *step),
        Op::IndexCopy {
            dst,
            update,
            indices,
            out,
            axis,
        } => index::index_copy(cx, *dst, *update, *indices, *out, *axis),
        Op::Take {
            x,
            out,
            index,
            axis,
        } => index::take(cx, *x, *out, *index, *axis),
        Op::TakeAlongAxis {
            x,
            indices,
            out,
            axis,
        } => index::take_along_axis(cx, *x, *indices, *out, *axis),
        Op::Gather {
            x,
            indices,
            out,
            axes,
            slice_sizes,
        } => index::gather(cx, *x, indices, *out, axes, slice_sizes),
        Op::ScatterAdd {
            x,
            indices,
            updates,
            out,
            axis,
        } => index::scatter_add(cx, *x, *indices, *updates, *out, *axis),

        // ---- matrix products and quantization
        Op::Addmm {
            mat1,
            mat2,
            out,
            bias,
            alpha,
            beta,
        } => linalg::addmm(cx, *mat1, *mat2, *out, *bias, *alpha, *beta),
        Op::QuantizedMatmul {
            x,
            w,
            scales,
            out,
            biases,
            group_size,
            bits,
            mode,
            transpose,
        } => linalg::quantized_matmul(
            cx,
            *x,
            *w,
            *scales,
            *out,
            *biases,
            *group_size,
            *bits,
            mode,
            *transpose,
        ),
        Op::Dequantize {
            w,
            scales,
            out,
            biases,
            group_size,
            bits,
            mode,
            global_scale,
            dtype,
        } => linalg::dequantize(
            cx,
            *w,
            *scales,
            *out,
            *biases,
            *group_size,
            *bits,
            mode,
            *global_scale,
            *dtype,
        ),
        Op::GatherMm {
            a,
            b,
            out,
            lhs_indices,
            rhs_indices,
            sorted_indices,
            sorted_indices_flag,
        } => linalg::gather_mm(
            cx,
            *a,
            *b,
            *out,
            *lhs_indices,
            *rhs_indices,
            *sorted_indices,
            *sorted_indices_flag,
        ),
        Op::GatherQmm {
            x,
            w,
            scales,
            out,
            mode,
            biases,
            lhs_indices,
            rhs_indices,
            transpose,
            group_size,
            bits,
            sorted_indices,
            sorted_indices_flag,
        } => linalg::gather_qmm(
            cx,
            linalg::GatherQmmArgs {
                x: *x,
                w: *w,
                scales: *scales,
                out: *out,
                mode,
                biases: *biases,
                lhs_indices: *lhs_indices,
                rhs_indices: *rhs_indices,
                transpose: *transpose,
                group_size: *group_size,
                bits: *bits,
                sorted_indices: *sorted_indices,
                sorted_indices_flag: *sorted_indices_flag,
            },
        ),

        // ---- neural-network building blocks
        Op::RMSNorm {
            x,
            weight,
            out,
            eps,
        } => nn::rms_norm(cx, *x, *weight, *out, *eps),
        Op::LayerNorm {
            x,
            out,
            weight,
            bias,
            eps,
        } => nn::layer_norm(cx, *x, *out, *weight, *bias, *eps),
        Op::Rope {
            x,
            out,
            dims,
            offset,
            freqs,
            traditional,
            base,
            scale,
        } => nn::rope(
            cx,
            *x,
            *out,
            *dims,
            *offset,
            *freqs,
            *traditional,
            *base,
            *scale,
        ),
        Op::Sdpa {
            q,
            k,
            v,
            out,
            scale,
            mask,
            causal,
        } => nn::sdpa(cx, *q, *k, *v, *out, *scale, *mask, *causal),
        Op::UpdateAndAttend {
            q,
            k,
            v,
            position,
            out,
            layer_id,
            scale,
            out_dtype,
        } => crate::cache::update_and_attend_op(
            cx, *q, *k, *v, *position, *out, *layer_id, *scale, *out_dtype,
        ),
        Op::Conv1D {
            x,
            w,
            out,
            stride,
            padding,
            dilation,
            groups,
        } => nn::conv(
            cx,
            *x,
            *w,
            *out,
            nn::ConvParams::new(&[*stride], &[*padding], &[*dilation], &[0], *groups, false),
        ),
        Op::Conv2D {
            x,
            w,
            out,
            stride_h,
            stride_w,
            padding_h,
            padding_w,
            dilation_h,
            dilation_w,
            groups,
        } => nn::conv(
            cx,
            *x,
            *w,
            *out,
            nn::ConvParams::new(
                &[*stride_h, *stride_w],
                &[*padding_h, *padding_w],
                &[*dilation_h, *dilation_w],
                &[0, 0],
                *groups,
                false,
            ),
        ),
        Op::Conv3D {
            x,
            w,
            out,
            stride_d,
            stride_h,
            stride_w,
            padding_d,
            padding_h,
            padding_w,
            dilation_d,
            dilation_h,
            dilation_w,
            groups,
        } => nn::conv(
            cx,
            *x,
            *w,
            *out,
            nn::ConvParams::new(
                &[*stride_d, *stride_h, *stride_w],
                &[*padding_d, *padding_h, *padding_w],
                &[*dilation_d, *dilation_h, *dilation_w],
                &[0, 0, 0],
                *groups,
                false,
            ),
        ),
        Op::ConvTranspose1D {
            x,
            w,
            out,
            stride,
            padding,
            dilation,
            output_padding,
            groups,
        } => nn::conv(
            cx,
            *x,
            *w,
            *out,
            nn::ConvParams::new(
                &[*stride],
                &[*padding],
                &[*dilation],
                &[*output_padding],
                *groups,
                true,
            ),
        ),
        Op::ConvTranspose2D {
            x,
            w,
            out,
            stride_h,
            stride_w,
            padding_h,
            padding_w,
            dilation_h,
            dilation_w,
            output_padding_h,
            output_padding_w,
            groups,
        } => nn::conv(
            cx,
            *x,
            *w,
            *out,
            nn::ConvParams::new(
                &[*stride_h, *stride_w],
                &[*padding_h, *padding_w],
                &[*dilation_h, *dilation_w],
                &[*output_padding_h, *output_padding_w],
                *groups,
                true,
            ),
        ),
        Op::ConvTranspose3D {
            x,
            w,
            out,
            stride_d,
            stride_h,
            stride_w,
            padding_d,
            padding_h,
            padding_w,
            dilation_d,
            dilation_h,
            dilation_w,
            output_padding_d,
            output_padding_h,
            output_padding_w,
            groups,
        } => nn::conv(
            cx,
            *x,
            *w,
            *out,
            nn::ConvParams::new(
                &[*stride_d, *stride_h, *stride_w],
                &[*padding_d, *padding_h, *padding_w],
                &[*dilation_d, *dilation_h, *dilation_w],
                &[*output_padding_d, *output_padding_h, *output_padding_w],
                *groups,
                true,
            ),
        ),

        // ---- randomness and custom kernels
        Op::RandomBits {
            out,
            shape,
            seed,
            width,
        } => nn::random_bits(cx, *out, shape, *seed, *width),
        Op::MetalKernel { name, .. } => nn::metal_kernel(cx, op, name),
    }
}
