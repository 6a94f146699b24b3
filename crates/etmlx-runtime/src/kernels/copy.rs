//! Data-moving kernels: `aten::copy_` (buffer write-back) and `_to_dim_order_copy` (dtype and
//! layout conversion).

use std::collections::BTreeMap;

use super::{arg, convert_into, KernelFn};
use crate::elements;
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
    r.insert("aten::gather.out", gather_out);
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

/// `gather.out(self, dim, index, *, sparse_grad, out)`: args `[self, dim, index, sparse_grad, out,
/// ret]`; `out[p] = self[p with p[dim] = index[p]]`, `out` shaped like `index`. Left outside the
/// delegate by BERT-style exports that gather stored `token_type_ids`.
fn gather_out(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "aten::gather.out";
    let src = store.tensor(arg(args, 0, OP)?)?.clone();
    let dim = store
        .get(arg(args, 1, OP)?)?
        .as_int()
        .ok_or_else(|| RuntimeError::kernel(OP, "dim must be an Int"))?;
    let index = store.tensor(arg(args, 2, OP)?)?.clone();
    let out = arg(args, 4, OP)?;
    let rank = src.dim() as i64;
    let d = if dim < 0 { dim + rank } else { dim };
    if !(0..rank.max(1)).contains(&d) || index.dim() != src.dim() {
        return Err(RuntimeError::kernel(
            OP,
            format!(
                "dim {dim} / index rank {} do not fit self of rank {rank}",
                index.dim()
            ),
        ));
    }
    let d = d as usize;
    if !matches!(
        index.dtype(),
        etmlx_pte::ScalarType::Long | etmlx_pte::ScalarType::Int
    ) {
        return Err(RuntimeError::kernel(
            OP,
            format!("index must be int64, got {:?}", index.dtype()),
        ));
    }
    let src_bytes = store.bytes_of(&src)?.to_vec();
    let index_bytes = store.bytes_of(&index)?.to_vec();
    store.tensor_mut(out)?.resize(index.sizes())?;
    let out_t = store.tensor(out)?.clone();
    if out_t.dtype() != src.dtype() {
        return Err(RuntimeError::kernel(OP, "out must have self's dtype"));
    }
    let (src_strides, index_strides, out_strides) =
        (src.strides(), index.strides(), out_t.strides());
    let size = src.dtype().element_size();
    let dst = store.bytes_mut(out)?;
    let shape = index.sizes();
    let mut coord = vec![0i64; shape.len()];
    for _ in 0..index.numel() {
        let at =
            |strides: &[i64]| coord.iter().zip(strides).map(|(c, s)| c * s).sum::<i64>() as usize;
        let mut i = elements::read(index.dtype(), &index_bytes, at(&index_strides))?.as_i64();
        if i < 0 {
            i += src.sizes()[d];
        }
        if !(0..src.sizes()[d]).contains(&i) {
            return Err(RuntimeError::kernel(
                OP,
                format!(
                    "index {i} is out of bounds for dim {d} of size {}",
                    src.sizes()[d]
                ),
            ));
        }
        let mut from = coord.clone();
        from[d] = i;
        let s = from
            .iter()
            .zip(&src_strides)
            .map(|(c, st)| c * st)
            .sum::<i64>() as usize;
        let o = at(&out_strides);
        dst[o * size..(o + 1) * size].copy_from_slice(&src_bytes[s * size..(s + 1) * size]);
        // Next coordinate in row-major order.
        for k in (0..coord.len()).rev() {
            coord[k] += 1;
            if coord[k] < shape[k] {
                break;
            }
            coord[k] = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evalue::EValue;
    use crate::tensor::Tensor;
    use etmlx_pte::ScalarType;

    fn f32_tensor(values: &[f32], sizes: Vec<i64>) -> EValue {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        EValue::Tensor(Tensor::from_bytes(ScalarType::Float, sizes, bytes).unwrap())
    }

    #[test]
    fn gather_matches_torch_semantics() {
        // torch.gather([[1,2],[3,4]], 1, [[0,0],[1,0]]) == [[1,1],[4,3]] (the PyTorch docs' example).
        let index: Vec<u8> = [0i64, 0, 1, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut store = ValueStore {
            values: vec![
                f32_tensor(&[1., 2., 3., 4.], vec![2, 2]),
                EValue::Int(1),
                EValue::Tensor(Tensor::from_bytes(ScalarType::Long, vec![2, 2], index).unwrap()),
                EValue::Bool(false),
                f32_tensor(&[0.; 4], vec![2, 2]),
            ],
            arenas: vec![],
        };
        gather_out(&mut store, &[0, 1, 2, 3, 4, 4]).unwrap();
        let got: Vec<f32> = store
            .bytes_of(store.tensor(4).unwrap())
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, vec![1., 1., 4., 3.]);
        // An index past the dimension is an error, not a wild read.
        let bad: Vec<u8> = [0i64, 2, 1, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        store.values[2] =
            EValue::Tensor(Tensor::from_bytes(ScalarType::Long, vec![2, 2], bad).unwrap());
        assert!(gather_out(&mut store, &[0, 1, 2, 3, 4, 4]).is_err());
    }
}
