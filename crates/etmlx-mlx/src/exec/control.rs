//! Control flow: `If` (choose a chain by a host int) and `Scan` (run a body chain per slice).

use mlx::ops;

use super::{run_chain, Ctx};
use crate::error::ExecError;
use crate::ir::{IntOrVid, Tid};

/// Chains nest (an If inside a Scan body...); the parser rejects cycles, and this bounds depth.
pub const MAX_CHAIN_DEPTH: usize = 64;

pub fn exec_if(
    cx: &mut Ctx<'_>,
    cond: IntOrVid,
    then_chain: usize,
    else_chain: usize,
) -> Result<(), ExecError> {
    let chain = if cx.int(cond)? != 0 {
        then_chain
    } else {
        else_chain
    };
    run_chain(cx, chain)
}

/// For each `t` along `scan_axis` of `originals[0]`: `sliced[i] = take(originals[i], t, axis)`,
/// run the body, remember `outputs[i]`; afterwards `outputs[i] = stack(remembered, axis)`. Carry
/// slots are read and written by the body itself. Everything stays lazy.
pub fn exec_scan(
    cx: &mut Ctx<'_>,
    originals: &[Tid],
    sliced: &[Tid],
    outputs: &[Tid],
    body: usize,
    scan_axis: i32,
) -> Result<(), ExecError> {
    if originals.len() != sliced.len() {
        return Err(ExecError::invalid(
            "Scan",
            format!(
                "{} originals but {} sliced slots",
                originals.len(),
                sliced.len()
            ),
        ));
    }
    let first = originals
        .first()
        .ok_or_else(|| ExecError::invalid("Scan", "no originals to scan over"))?;
    let shape = cx.get(*first)?.shape();
    let rank = shape.len() as i32;
    let axis = if scan_axis < 0 {
        scan_axis + rank
    } else {
        scan_axis
    };
    let steps = *shape
        .get(usize::try_from(axis).unwrap_or(usize::MAX))
        .ok_or_else(|| {
            ExecError::invalid(
                "Scan",
                format!("scan axis {scan_axis} out of range for rank {rank}"),
            )
        })?;
    let mut collected: Vec<Vec<mlx::Array>> =
        vec![Vec::with_capacity(steps as usize); outputs.len()];
    for t in 0..steps {
        for (&orig, &slot) in originals.iter().zip(sliced) {
            let index = mlx::Array::scalar_i32(t)?;
            let piece = ops::take(cx.get(orig)?, &index, axis, cx.s())?;
            cx.set(slot, piece)?;
        }
        run_chain(cx, body)?;
        for (k, &o) in outputs.iter().enumerate() {
            collected[k].push(cx.get(o)?.clone());
        }
    }
    for (k, &o) in outputs.iter().enumerate() {
        let refs: Vec<&mlx::Array> = collected[k].iter().collect();
        let stacked = ops::stack(&refs, axis, cx.s())?;
        cx.set(o, stacked)?;
    }
    Ok(())
}
