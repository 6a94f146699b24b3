//! Data-moving kernels: `aten::copy_` (buffer write-back) and `_to_dim_order_copy` (dtype and
//! layout conversion).

use std::collections::BTreeMap;

use super::{arg, convert_into, KernelFn};
use crate::error::{Result, RuntimeError};
use crate::evalue::EValue;
use crate::method::ValueStore;

pub(super) fn register(r: &mut BTreeMap<&'static str, KernelFn>) {
    r.insert("aten::copy_", copy_inplace);
    r.insert("aten::copy.out", copy_out);
    r.insert(
        "dim_order_ops::_to_dim_order_copy.out",
        to_dim_order_copy_out,
    );
    r.insert("dim_order_ops::_clone_dim_order.out", to_dim_order_copy_out);
}

/// `copy_(self, src, non_blocking) -> self`: args `[self, src, non_blocking, ret]`.
fn copy_inplace(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "aten::copy_";
    let (dst, src) = (arg(args, 0, OP)?, arg(args, 1, OP)?);
    copy_broadcast(store, src, dst, OP)?;
    // The return value aliases `self`.
    if let Some(&ret) = args.get(3) {
        if ret != dst {
            let t = store.tensor(dst)?.clone();
            store.values[ret] = EValue::Tensor(t);
        }
    }
    Ok(())
}

/// `copy.out(self, src, non_blocking, *, out)`: args `[self, src, non_blocking, out, ret]`.
fn copy_out(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "aten::copy.out";
    let (src, out) = (arg(args, 1, OP)?, arg(args, 3, OP)?);
    let sizes = store.tensor(arg(args, 0, OP)?)?.sizes().to_vec();
    store.tensor_mut(out)?.resize(&sizes)?;
    copy_broadcast(store, src, out, OP)
}

fn copy_broadcast(store: &mut ValueStore, src: usize, dst: usize, op: &str) -> Result<()> {
    let src_t = store.tensor(src)?.clone();
    let src_bytes = store.bytes_of(&src_t)?.to_vec();
    let dst_t = store.tensor(dst)?.clone();
    let dst_bytes = store.bytes_mut(dst)?;
    convert_into(
        &src_t,
        &src_bytes,
        dst_t.sizes(),
        dst_t.dim_order(),
        dst_t.dtype(),
        dst_bytes,
        op,
    )
}

/// `_to_dim_order_copy.out(self, *, non_blocking, dim_order, out)`:
/// args `[self, non_blocking, dim_order, out, ret]`. Converts dtype and layout; the output's
/// declared dim order is authoritative (the `dim_order` argument must agree with it when given).
fn to_dim_order_copy_out(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "dim_order_ops::_to_dim_order_copy.out";
    let src = arg(args, 0, OP)?;
    let out = *args
        .get(args.len().saturating_sub(2))
        .filter(|_| args.len() >= 3)
        .ok_or_else(|| {
            RuntimeError::kernel(
                OP,
                format!("expected at least 3 arguments, got {}", args.len()),
            )
        })?;
    let sizes = store.tensor(src)?.sizes().to_vec();
    store.tensor_mut(out)?.resize(&sizes)?;
    if let Some(&dim_order_arg) = args.get(2) {
        if let EValue::IntList(items) = store.get(dim_order_arg)? {
            let requested: Result<Vec<i64>> = items
                .iter()
                .map(|&i| {
                    store
                        .get(i)?
                        .as_int()
                        .ok_or_else(|| RuntimeError::kernel(OP, "dim_order must hold ints"))
                })
                .collect();
            let requested = requested?;
            let declared: Vec<i64> = store
                .tensor(out)?
                .dim_order()
                .iter()
                .map(|&d| d as i64)
                .collect();
            if requested != declared {
                return Err(RuntimeError::kernel(
                    OP,
                    format!(
                        "dim_order {requested:?} differs from the output's declared {declared:?}"
                    ),
                ));
            }
        }
    }
    copy_broadcast(store, src, out, OP)?;
    if let Some(&ret) = args.last() {
        if ret != out && args.len() >= 5 {
            let t = store.tensor(out)?.clone();
            store.values[ret] = EValue::Tensor(t);
        }
    }
    Ok(())
}
