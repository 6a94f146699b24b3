//! Host-side integer arithmetic on value slots (symbolic sizes, cache positions).
//!
//! Values are int32 at run time; arithmetic is done in i64 and must fit back in int32, with Python
//! floor-division and modulo semantics, as in the reference runtime.

use super::{Ctx, Value};
use crate::error::ExecError;
use crate::ir::{IntOrVid, Tid, Vid};

#[derive(Debug, Clone, Copy)]
pub enum IntOp {
    Add,
    Subtract,
    Multiply,
    FloorDivide,
    Mod,
}

pub fn int_op(
    cx: &mut Ctx<'_>,
    op: IntOp,
    a: IntOrVid,
    b: IntOrVid,
    out: Vid,
) -> Result<(), ExecError> {
    let (x, y) = (cx.int(a)? as i64, cx.int(b)? as i64);
    let name = match op {
        IntOp::Add => "AddInt",
        IntOp::Subtract => "SubtractInt",
        IntOp::Multiply => "MultiplyInt",
        IntOp::FloorDivide => "FloorDivideInt",
        IntOp::Mod => "ModInt",
    };
    if y == 0 && matches!(op, IntOp::FloorDivide | IntOp::Mod) {
        return Err(ExecError::invalid(
            name,
            format!("division by zero ({x} by 0)"),
        ));
    }
    let r = match op {
        IntOp::Add => x + y,
        IntOp::Subtract => x - y,
        IntOp::Multiply => x * y,
        IntOp::FloorDivide => x.div_euclid(y) - if y < 0 && x.rem_euclid(y) != 0 { 1 } else { 0 },
        IntOp::Mod => {
            let r = x % y;
            if r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }
        }
    };
    let r = i32::try_from(r)
        .map_err(|_| ExecError::invalid(name, format!("int32 overflow: {x}, {y} gives {r}")))?;
    cx.set_value(out, Value::Int(r))
}

/// `x.shape[dim]` (negative dims count from the end).
pub fn sym_size(cx: &mut Ctx<'_>, a: Tid, dim: i32, out: Vid) -> Result<(), ExecError> {
    let shape = cx.get(a)?.shape();
    let rank = shape.len() as i32;
    let d = if dim < 0 { dim + rank } else { dim };
    let size = *shape
        .get(
            usize::try_from(d)
                .map_err(|_| ExecError::invalid("SymSize", format!("dim {dim} for rank {rank}")))?,
        )
        .ok_or_else(|| {
            ExecError::invalid("SymSize", format!("dim {dim} out of range for rank {rank}"))
        })?;
    cx.set_value(out, Value::Int(size))
}

/// Evaluates `x` (a host sync) and stores its first element as an int32 value.
pub fn item_int(cx: &mut Ctx<'_>, x: Tid, out: Vid) -> Result<(), ExecError> {
    let v = match cx.host_ints(x) {
        // Known on the host: no MLX evaluation, so no wait for the device (see `HostInts`).
        Some(h) if h.values.len() == 1 => h.values[0],
        _ => {
            let a = cx.get(x)?;
            if a.size() == 0 {
                return Err(ExecError::invalid("ItemInt", "tensor is empty"));
            }
            a.item_i64()?
        }
    };
    let v = i32::try_from(v)
        .map_err(|_| ExecError::invalid("ItemInt", format!("value {v} does not fit int32")))?;
    cx.set_value(out, Value::Int(v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_floor_division_of_negatives() {
        // The expression used in int_op, checked against Python: -7 // 2 == -4, 7 // -2 == -4,
        // -7 // -2 == 3, 7 // 2 == 3.
        let f =
            |x: i64, y: i64| x.div_euclid(y) - if y < 0 && x.rem_euclid(y) != 0 { 1 } else { 0 };
        assert_eq!(f(-7, 2), -4);
        assert_eq!(f(7, -2), -4);
        assert_eq!(f(-7, -2), 3);
        assert_eq!(f(7, 2), 3);
        assert_eq!(f(-6, 2), -3);
    }
}
