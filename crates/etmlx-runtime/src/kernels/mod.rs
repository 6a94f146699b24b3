//! Portable CPU kernels for the operators that stay outside the MLX delegate in the exports we run:
//! prim ops (symbolic size arithmetic), views, buffer write-backs and dtype conversions.
//!
//! Calling convention (ExecuTorch out-variant): `args` are value indices, schema arguments first,
//! then the out / return values.

mod copy;
mod prim;

use std::collections::BTreeMap;

use crate::elements;
use crate::error::{Result, RuntimeError};
use crate::method::ValueStore;
use crate::tensor::{strides_for, Tensor};

/// A kernel: reads and writes the method's values named by `args`.
pub type KernelFn = fn(&mut ValueStore, &[usize]) -> Result<()>;

/// Operator name (`name.overload`, or `name` when the overload is empty) → kernel.
pub fn registry() -> BTreeMap<&'static str, KernelFn> {
    let mut r: BTreeMap<&'static str, KernelFn> = BTreeMap::new();
    prim::register(&mut r);
    copy::register(&mut r);
    r
}

/// The registry key of an operator.
pub fn operator_key(name: &str, overload: &str) -> String {
    if overload.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{overload}")
    }
}

/// Finds the kernel for an operator, accepting `name.default` for an empty overload and vice versa.
pub fn lookup(
    registry: &BTreeMap<&'static str, KernelFn>,
    name: &str,
    overload: &str,
) -> Option<KernelFn> {
    registry
        .get(operator_key(name, overload).as_str())
        .copied()
        .or_else(|| match overload {
            "" => registry.get(format!("{name}.default").as_str()).copied(),
            "default" => registry.get(name).copied(),
            _ => None,
        })
}

pub(crate) fn arg(args: &[usize], i: usize, op: &str) -> Result<usize> {
    args.get(i).copied().ok_or_else(|| {
        RuntimeError::kernel(
            op,
            format!("expected at least {} arguments, got {}", i + 1, args.len()),
        )
    })
}

/// Storage offsets (in elements) of every element of `t`, in row-major logical order.
fn storage_offsets<'a>(sizes: &'a [i64], strides: &'a [i64]) -> impl Iterator<Item = usize> + 'a {
    let numel: usize = sizes.iter().map(|&d| d as usize).product();
    (0..numel).map(move |mut linear| {
        let mut offset = 0i64;
        for d in (0..sizes.len()).rev() {
            let size = sizes[d] as usize;
            let coord = linear % size;
            linear /= size;
            offset += coord as i64 * strides[d];
        }
        offset as usize
    })
}

/// Copies `t`'s bytes (laid out by its dim order) into row-major order.
pub(crate) fn to_contiguous(t: &Tensor, bytes: &[u8]) -> Result<Vec<u8>> {
    let size = t.dtype().element_size();
    let mut out = Vec::with_capacity(t.nbytes());
    for offset in storage_offsets(t.sizes(), &strides_for(t.sizes(), t.dim_order())) {
        let src = bytes
            .get(offset * size..(offset + 1) * size)
            .ok_or_else(|| RuntimeError::Memory("strided read out of bounds".into()))?;
        out.extend_from_slice(src);
    }
    Ok(out)
}

/// Element-wise copy with broadcasting and dtype conversion: `dst[i] = src[broadcast(i)]`, both
/// laid out by their own dim orders. Used by `copy_` and `_to_dim_order_copy`.
pub(crate) fn convert_into(
    src: &Tensor,
    src_bytes: &[u8],
    dst_sizes: &[i64],
    dst_dim_order: &[u8],
    dst_dtype: etmlx_pte::ScalarType,
    dst_bytes: &mut [u8],
    op: &str,
) -> Result<()> {
    let rank = dst_sizes.len();
    if src.dim() > rank {
        return Err(RuntimeError::kernel(
            op,
            format!("cannot broadcast sizes {:?} to {dst_sizes:?}", src.sizes()),
        ));
    }
    // Right-aligned broadcast: size-1 or missing source dims read with stride 0.
    let src_strides_own = src.strides();
    let mut src_strides = vec![0i64; rank];
    for (k, (&s, &stride)) in src.sizes().iter().zip(&src_strides_own).enumerate() {
        let d = rank - src.dim() + k;
        if s == dst_sizes[d] {
            src_strides[d] = stride;
        } else if s != 1 {
            return Err(RuntimeError::kernel(
                op,
                format!("cannot broadcast sizes {:?} to {dst_sizes:?}", src.sizes()),
            ));
        }
    }
    let dst_strides = strides_for(dst_sizes, dst_dim_order);
    let src_iter = storage_offsets(dst_sizes, &src_strides);
    let dst_iter = storage_offsets(dst_sizes, &dst_strides);
    let same_dtype = src.dtype() == dst_dtype;
    let size = dst_dtype.element_size();
    for (s, d) in src_iter.zip(dst_iter) {
        if same_dtype {
            let from = src_bytes
                .get(s * size..(s + 1) * size)
                .ok_or_else(|| RuntimeError::kernel(op, "source read out of bounds"))?;
            dst_bytes
                .get_mut(d * size..(d + 1) * size)
                .ok_or_else(|| RuntimeError::kernel(op, "destination write out of bounds"))?
                .copy_from_slice(from);
        } else {
            let v = elements::read(src.dtype(), src_bytes, s)?;
            elements::write(dst_dtype, dst_bytes, d, v)?;
        }
    }
    Ok(())
}
