//! Staged submission of a large call (option `submit_every`).
//!
//! Without it, a call builds its whole lazy graph and only then submits it (`async_eval`): during a prefill the
//! device idles while the host interprets the chain, and MLX then encodes the graph in batches, so the device
//! also starts late and ends with a backlog. With `submit_every = N`, the graph built so far is submitted after
//! every N-th matrix product (or attention, or convolution) of the main chain, so the device works on the first
//! layers while the host builds the next ones. Only calls whose products have at least [`MIN_STAGED_ROWS`] rows
//! are staged: a one-token decode step is small, and the pipelined decode loop already overlaps it.
//!
//! Staging changes when MLX schedules nodes, not which nodes run: the outputs are the same arrays, bit for bit.

use std::time::Instant;

use mlx::Array;

use super::Ctx;
use crate::backend::elapsed_ns;
use crate::error::ExecError;
use crate::ir::Op;

/// Products with fewer rows (tokens × batch) than this never trigger a stage.
pub const MIN_STAGED_ROWS: usize = 16;

/// After `op` has been built: submits the graph so far when `op` is the `submit_every`-th large product of the
/// call. Main chain only (the caller's check).
pub(super) fn after_op(cx: &mut Ctx<'_>, op: &Op) -> Result<(), ExecError> {
    let every = cx.options.submit_every;
    if every == 0 || !is_product(op) {
        return Ok(());
    }
    let mut out = None;
    op.for_each_output_tid(|t| {
        out.get_or_insert(t);
    });
    let Some(out) = out else {
        return Ok(());
    };
    if rows(op, cx.get(out)?) < MIN_STAGED_ROWS {
        return Ok(());
    }
    cx.transient.staged_products += 1;
    if !cx.transient.staged_products.is_multiple_of(every) {
        return Ok(());
    }
    let array = cx.get(out)?;
    if !cx.options.profile {
        mlx::async_eval(&[array])?;
        return Ok(());
    }
    let counting = Instant::now();
    let primitives = mlx::graph_primitive_counts(&[array])?;
    let count_ns = elapsed_ns(counting);
    let submitting = Instant::now();
    mlx::async_eval(&[array])?;
    crate::backend::record_stage(elapsed_ns(submitting), count_ns, primitives);
    Ok(())
}

/// The ops MLX runs as library calls or large kernels: what a stage is counted in.
fn is_product(op: &Op) -> bool {
    matches!(
        op,
        Op::Addmm { .. }
            | Op::QuantizedMatmul { .. }
            | Op::GatherMm { .. }
            | Op::GatherQmm { .. }
            | Op::Sdpa { .. }
            | Op::UpdateAndAttend { .. }
            | Op::Conv1D { .. }
            | Op::Conv2D { .. }
            | Op::Conv3D { .. }
            | Op::ConvTranspose1D { .. }
            | Op::ConvTranspose2D { .. }
            | Op::ConvTranspose3D { .. }
    )
}

/// Rows of a product's output: the queries of an attention ([.., T, D]), else every position but the last axis.
fn rows(op: &Op, out: &Array) -> usize {
    let shape = out.shape();
    match op {
        Op::Sdpa { .. } | Op::UpdateAndAttend { .. } => {
            shape.len().checked_sub(2).map_or(1, |i| shape[i] as usize)
        }
        _ => {
            let last = shape.last().copied().unwrap_or(1).max(1) as usize;
            out.size() / last
        }
    }
}
