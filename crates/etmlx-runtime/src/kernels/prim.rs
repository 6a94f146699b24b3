//! Prim ops: symbolic-size arithmetic on scalar values, tensor sizes, views and loop stacking.
//!
//! Integer floor division and modulo follow Python semantics, because the values they compute
//! were traced from Python's SymInt arithmetic at export.

use std::collections::BTreeMap;

use super::{arg, KernelFn};
use crate::elements::{self, Scalar};
use crate::error::{Result, RuntimeError};
use crate::evalue::EValue;
use crate::method::ValueStore;

pub(super) fn register(r: &mut BTreeMap<&'static str, KernelFn>) {
    r.insert("aten::sym_size.int", sym_size);
    r.insert("aten::sym_numel", sym_numel);
    r.insert("aten::_local_scalar_dense", local_scalar_dense);
    r.insert("executorch_prim::et_view.default", et_view);
    r.insert("executorch_prim::et_copy_index.tensor", et_copy_index);
    r.insert("executorch_prim::add.Scalar", |s, a| {
        binary(s, a, "add", BinOp::Add)
    });
    r.insert("executorch_prim::sub.Scalar", |s, a| {
        binary(s, a, "sub", BinOp::Sub)
    });
    r.insert("executorch_prim::mul.Scalar", |s, a| {
        binary(s, a, "mul", BinOp::Mul)
    });
    r.insert("executorch_prim::floordiv.Scalar", |s, a| {
        binary(s, a, "floordiv", BinOp::FloorDiv)
    });
    r.insert("executorch_prim::floordiv.int", |s, a| {
        binary(s, a, "floordiv", BinOp::FloorDiv)
    });
    r.insert("executorch_prim::truediv.Scalar", |s, a| {
        binary(s, a, "truediv", BinOp::TrueDiv)
    });
    r.insert("executorch_prim::mod.Scalar", |s, a| {
        binary(s, a, "mod", BinOp::Mod)
    });
    r.insert("executorch_prim::mod.int", |s, a| {
        binary(s, a, "mod", BinOp::Mod)
    });
    r.insert("executorch_prim::sym_max.Scalar", |s, a| {
        binary(s, a, "sym_max", BinOp::Max)
    });
    r.insert("executorch_prim::sym_min.Scalar", |s, a| {
        binary(s, a, "sym_min", BinOp::Min)
    });
    r.insert("executorch_prim::eq.Scalar", |s, a| {
        compare(s, a, "eq", |o| o.is_eq())
    });
    r.insert("executorch_prim::gt.Scalar", |s, a| {
        compare(s, a, "gt", |o| o.is_gt())
    });
    r.insert("executorch_prim::ge.Scalar", |s, a| {
        compare(s, a, "ge", |o| o.is_ge())
    });
    r.insert("executorch_prim::lt.Scalar", |s, a| {
        compare(s, a, "lt", |o| o.is_lt())
    });
    r.insert("executorch_prim::le.Scalar", |s, a| {
        compare(s, a, "le", |o| o.is_le())
    });
    r.insert("executorch_prim::neg.Scalar", |s, a| {
        unary(s, a, "neg", |v| match v {
            Scalar::Int(i) => i.checked_neg().map(Scalar::Int),
            other => Some(Scalar::Float(-other.as_f64())),
        })
    });
    r.insert("executorch_prim::ceil.Scalar", |s, a| {
        unary(s, a, "ceil", |v| float_to_int(v.as_f64().ceil()))
    });
    r.insert("executorch_prim::round.Scalar", |s, a| {
        // Python's round(): half to even.
        unary(s, a, "round", |v| {
            float_to_int(v.as_f64().round_ties_even())
        })
    });
    r.insert("executorch_prim::trunc.Scalar", |s, a| {
        unary(s, a, "trunc", |v| float_to_int(v.as_f64().trunc()))
    });
    r.insert("executorch_prim::sym_float.Scalar", |s, a| {
        unary(s, a, "sym_float", |v| Some(Scalar::Float(v.as_f64())))
    });
    r.insert("executorch_prim::sym_int.Scalar", |s, a| {
        unary(s, a, "sym_int", |v| float_to_int(v.as_f64().trunc()))
    });
    r.insert("executorch_prim::sym_not.Scalar", |s, a| {
        unary(s, a, "sym_not", |v| Some(Scalar::Bool(!v.as_bool())))
    });
    r.insert("executorch_prim::sym_ite.Scalar", sym_ite);
}

fn float_to_int(v: f64) -> Option<Scalar> {
    (v.is_finite() && v >= i64::MIN as f64 && v < i64::MAX as f64).then_some(Scalar::Int(v as i64))
}

fn scalar(store: &ValueStore, idx: usize, op: &str) -> Result<Scalar> {
    match store.get(idx)? {
        EValue::Int(v) => Ok(Scalar::Int(*v)),
        EValue::Double(v) => Ok(Scalar::Float(*v)),
        EValue::Bool(v) => Ok(Scalar::Bool(*v)),
        other => Err(RuntimeError::kernel(
            op,
            format!("expected a scalar, found {}", other.kind()),
        )),
    }
}

fn set_scalar(store: &mut ValueStore, idx: usize, v: Scalar) {
    store.values[idx] = match v {
        Scalar::Int(i) => EValue::Int(i),
        Scalar::Float(f) => EValue::Double(f),
        Scalar::Bool(b) => EValue::Bool(b),
    };
}

fn check_index(store: &ValueStore, idx: usize) -> Result<usize> {
    store.get(idx).map(|_| idx)
}

#[derive(Clone, Copy)]
enum BinOp {
    Add,
    Sub,
    Mul,
    FloorDiv,
    TrueDiv,
    Mod,
    Max,
    Min,
}

fn binary(store: &mut ValueStore, args: &[usize], op: &str, kind: BinOp) -> Result<()> {
    let a = scalar(store, arg(args, 0, op)?, op)?;
    let b = scalar(store, arg(args, 1, op)?, op)?;
    let out = check_index(store, arg(args, 2, op)?)?;
    let is_int = |s: Scalar| !matches!(s, Scalar::Float(_));
    let result = if is_int(a) && is_int(b) && !matches!(kind, BinOp::TrueDiv) {
        let (x, y) = (a.as_i64(), b.as_i64());
        let v = match kind {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::FloorDiv => python_floordiv(x, y),
            BinOp::Mod => python_mod(x, y),
            BinOp::Max => Some(x.max(y)),
            BinOp::Min => Some(x.min(y)),
            BinOp::TrueDiv => unreachable!("handled as float"),
        };
        Scalar::Int(v.ok_or_else(|| {
            RuntimeError::kernel(
                op,
                format!("integer overflow or division by zero: {x}, {y}"),
            )
        })?)
    } else {
        let (x, y) = (a.as_f64(), b.as_f64());
        Scalar::Float(match kind {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::FloorDiv => (x / y).floor(),
            BinOp::TrueDiv => x / y,
            BinOp::Mod => x - (x / y).floor() * y,
            BinOp::Max => x.max(y),
            BinOp::Min => x.min(y),
        })
    };
    set_scalar(store, out, result);
    Ok(())
}

/// Python `//` on integers (rounds toward negative infinity); `None` on division by zero.
pub(crate) fn python_floordiv(x: i64, y: i64) -> Option<i64> {
    let q = x.checked_div(y)?;
    Some(if (x % y != 0) && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    })
}

/// Python `%` on integers (result has the sign of the divisor); `None` on division by zero.
pub(crate) fn python_mod(x: i64, y: i64) -> Option<i64> {
    let r = x.checked_rem(y)?;
    Some(if r != 0 && ((r < 0) != (y < 0)) {
        r + y
    } else {
        r
    })
}

fn compare(
    store: &mut ValueStore,
    args: &[usize],
    op: &str,
    test: fn(std::cmp::Ordering) -> bool,
) -> Result<()> {
    let a = scalar(store, arg(args, 0, op)?, op)?;
    let b = scalar(store, arg(args, 1, op)?, op)?;
    let out = check_index(store, arg(args, 2, op)?)?;
    let ordering = match (a, b) {
        (Scalar::Float(_), _) | (_, Scalar::Float(_)) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .ok_or_else(|| RuntimeError::kernel(op, "comparison with NaN"))?,
        _ => a.as_i64().cmp(&b.as_i64()),
    };
    set_scalar(store, out, Scalar::Bool(test(ordering)));
    Ok(())
}

fn unary(
    store: &mut ValueStore,
    args: &[usize],
    op: &str,
    f: fn(Scalar) -> Option<Scalar>,
) -> Result<()> {
    let a = scalar(store, arg(args, 0, op)?, op)?;
    let out = check_index(store, arg(args, 1, op)?)?;
    let v =
        f(a).ok_or_else(|| RuntimeError::kernel(op, format!("result out of range for {a:?}")))?;
    set_scalar(store, out, v);
    Ok(())
}

fn sym_ite(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "executorch_prim::sym_ite.Scalar";
    let cond = scalar(store, arg(args, 0, OP)?, OP)?.as_bool();
    let chosen = if cond {
        arg(args, 1, OP)?
    } else {
        arg(args, 2, OP)?
    };
    let v = scalar(store, chosen, OP)?;
    let out = check_index(store, arg(args, 3, OP)?)?;
    set_scalar(store, out, v);
    Ok(())
}

/// `sym_size.int(self, dim)`: args `[self, dim, out]`.
fn sym_size(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "aten::sym_size.int";
    let t = store.tensor(arg(args, 0, OP)?)?;
    let dim = store
        .get(arg(args, 1, OP)?)?
        .as_int()
        .ok_or_else(|| RuntimeError::kernel(OP, "dim must be an Int"))?;
    let rank = t.dim() as i64;
    let d = if dim < 0 { dim + rank } else { dim };
    if !(0..rank).contains(&d) {
        return Err(RuntimeError::kernel(
            OP,
            format!("dim {dim} out of range for rank {rank}"),
        ));
    }
    let size = t.sizes()[d as usize];
    let out = check_index(store, arg(args, 2, OP)?)?;
    store.values[out] = EValue::Int(size);
    Ok(())
}

/// `sym_numel(self)`: args `[self, out]`.
fn sym_numel(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "aten::sym_numel";
    let n = store.tensor(arg(args, 0, OP)?)?.numel() as i64;
    let out = check_index(store, arg(args, 1, OP)?)?;
    store.values[out] = EValue::Int(n);
    Ok(())
}

/// `_local_scalar_dense(self)`: the single element of a tensor, as a scalar of its kind.
fn local_scalar_dense(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "aten::_local_scalar_dense";
    let t = store.tensor(arg(args, 0, OP)?)?;
    if t.numel() != 1 {
        return Err(RuntimeError::kernel(
            OP,
            format!("expected one element, sizes are {:?}", t.sizes()),
        ));
    }
    let v = elements::read(t.dtype(), store.bytes_of(t)?, 0)?;
    let out = check_index(store, arg(args, 1, OP)?)?;
    set_scalar(store, out, v);
    Ok(())
}

/// `et_view(self, size)`: args `[self, size (IntList), out]`. The output shares the input's
/// storage (a planned arena slice or the same owned bytes) with new sizes.
fn et_view(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "executorch_prim::et_view.default";
    let src = store.tensor(arg(args, 0, OP)?)?.clone();
    let sizes: Vec<i64> = match store.get(arg(args, 1, OP)?)? {
        EValue::IntList(items) => items
            .iter()
            .map(|&i| {
                store
                    .get(i)?
                    .as_int()
                    .ok_or_else(|| RuntimeError::kernel(OP, "size must hold ints"))
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(RuntimeError::kernel(
                OP,
                format!("size must be an IntList, found {}", other.kind()),
            ))
        }
    };
    let sizes = infer_view_sizes(sizes.clone(), src.numel()).ok_or_else(|| {
        RuntimeError::kernel(
            OP,
            format!("cannot view sizes {:?} as {sizes:?}", src.sizes()),
        )
    })?;
    let out = arg(args, 2, OP)?;
    let out_t = store.tensor_mut(out)?;
    out_t.resize(&sizes)?;
    if out_t.numel() != src.numel() || out_t.dtype() != src.dtype() {
        return Err(RuntimeError::kernel(
            OP,
            format!(
                "cannot view {:?} {:?} as {:?} {:?}",
                src.dtype(),
                src.sizes(),
                out_t.dtype(),
                sizes
            ),
        ));
    }
    out_t.storage = src.storage.clone();
    Ok(())
}

/// Resolves one `-1` in view sizes from the element count (PyTorch `view(-1, k)`); `None` when the
/// sizes cannot describe `numel` elements.
fn infer_view_sizes(mut sizes: Vec<i64>, numel: usize) -> Option<Vec<i64>> {
    let unknown: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] == -1).collect();
    if sizes.iter().any(|&d| d < -1) || unknown.len() > 1 {
        return None;
    }
    let known: i64 = sizes.iter().filter(|&&d| d >= 0).product();
    if let Some(&i) = unknown.first() {
        if known == 0 || numel as i64 % known != 0 {
            return None;
        }
        sizes[i] = numel as i64 / known;
    }
    (sizes.iter().product::<i64>() == numel as i64).then_some(sizes)
}

/// `et_copy_index(copy_to, copy_from, index)`: writes `copy_from` into row `index` of `copy_to`,
/// growing its leading dimension to `index + 1` (how ExecuTorch stacks loop outputs).
fn et_copy_index(store: &mut ValueStore, args: &[usize]) -> Result<()> {
    const OP: &str = "executorch_prim::et_copy_index.tensor";
    let (to, from) = (arg(args, 0, OP)?, arg(args, 1, OP)?);
    let index = store
        .get(arg(args, 2, OP)?)?
        .as_int()
        .filter(|&i| i >= 0)
        .ok_or_else(|| RuntimeError::kernel(OP, "index must be a non-negative Int"))?;
    let src = store.tensor(from)?.clone();
    let src_bytes = store.bytes_of(&src)?.to_vec();
    let dst = store.tensor_mut(to)?;
    if dst.dtype() != src.dtype() || dst.dim() != src.dim() + 1 || dst.sizes()[1..] != *src.sizes()
    {
        return Err(RuntimeError::kernel(
            OP,
            format!(
                "cannot copy {:?} into row {index} of {:?}",
                src.sizes(),
                dst.sizes()
            ),
        ));
    }
    let mut sizes = dst.sizes().to_vec();
    sizes[0] = sizes[0].max(index + 1);
    dst.resize(&sizes)?;
    let row = src_bytes.len();
    let bytes = store.bytes_mut(to)?;
    let start = index as usize * row;
    bytes
        .get_mut(start..start + row)
        .ok_or_else(|| RuntimeError::kernel(OP, "row out of bounds"))?
        .copy_from_slice(&src_bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_integer_division_semantics() {
        // Hand-checked against Python: -7 // 2 == -4, -7 % 2 == 1, 7 // -2 == -4, 7 % -2 == -1.
        assert_eq!(python_floordiv(-7, 2), Some(-4));
        assert_eq!(python_mod(-7, 2), Some(1));
        assert_eq!(python_floordiv(7, -2), Some(-4));
        assert_eq!(python_mod(7, -2), Some(-1));
        assert_eq!(python_floordiv(6, 3), Some(2));
        assert_eq!(python_mod(6, 3), Some(0));
        assert_eq!(python_floordiv(1, 0), None);
        assert_eq!(python_mod(1, 0), None);
        assert_eq!(python_floordiv(i64::MIN, -1), None);
    }

    #[test]
    fn view_infers_one_minus_one() {
        assert_eq!(infer_view_sizes(vec![-1, 2], 12), Some(vec![6, 2]));
        assert_eq!(infer_view_sizes(vec![3, 4], 12), Some(vec![3, 4]));
        assert_eq!(infer_view_sizes(vec![-1, -1], 12), None);
        assert_eq!(infer_view_sizes(vec![-1, 5], 12), None);
        assert_eq!(infer_view_sizes(vec![2, 2], 12), None);
    }
}
