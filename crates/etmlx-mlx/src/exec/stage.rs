//! Staged submission of a large call (options `stage_mflop`, `submit_every`).
//!
//! Without it, a call builds its whole lazy graph and only then submits it (`async_eval`): during a prefill the
//! device idles while the host interprets the chain, and MLX then encodes the graph in batches, so the device
//! also starts late and ends with a backlog. Staged, the graph built so far is submitted at points of the main
//! chain, so the device works on the first layers while the host builds the next ones.
//!
//! Where: after a matrix product (or attention, or convolution) whose output has at least [`MIN_STAGED_ROWS`]
//! rows, once the products since the last stage amount to `stage_mflop` MFLOP and number at least
//! [`MIN_PRODUCTS_PER_STAGE`] (by default on CUDA; measured there, docs/benchmarks.md). A stage costs MLX a
//! graph launch (~50-80 µs on an H200), so a stage must carry enough device work: small models and short prompts
//! stage rarely or never, and a one-token decode step never (the pipelined decode loop already overlaps it).
//! `submit_every = N` stages after every N-th large product instead (for A/B runs and tests).
//!
//! Staging changes when MLX schedules nodes, not which nodes run: the outputs are the same arrays, bit for bit.

use std::time::Instant;

use mlx::Array;

use super::Ctx;
use crate::backend::elapsed_ns;
use crate::error::ExecError;
use crate::ir::{Op, Tid};

/// Products with fewer rows (tokens × batch) than this never trigger a stage.
pub const MIN_STAGED_ROWS: usize = 16;
/// Products per stage at least (by work): about one Llama layer with fused projections (q/k/v, attention, o,
/// gate/up, down), so that a large model does not stage after every product.
pub const MIN_PRODUCTS_PER_STAGE: usize = 5;

/// Progress of the current call since its last stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageProgress {
    products: usize,
    mflop: f64,
}

/// After `op` has been built: submits the graph so far when the large products since the last stage call for
/// it. Main chain only (the caller's check).
pub(super) fn after_op(cx: &mut Ctx<'_>, op: &Op) -> Result<(), ExecError> {
    let every = cx.options.submit_every;
    let mflop_per_stage = cx.stage_mflop();
    if (every == 0 && mflop_per_stage == 0) || !is_product(op) {
        return Ok(());
    }
    let mut out = None;
    op.for_each_output_tid(|t| {
        out.get_or_insert(t);
    });
    let Some(out) = out else {
        return Ok(());
    };
    let array = cx.get(out)?;
    if rows(op, array) < MIN_STAGED_ROWS {
        return Ok(());
    }
    let mflop = work_mflop(cx, op, array);
    let progress = &mut cx.transient.stage_progress;
    progress.products += 1;
    progress.mflop += mflop;
    let due = if every > 0 {
        progress.products >= every
    } else {
        progress.products >= MIN_PRODUCTS_PER_STAGE && progress.mflop >= mflop_per_stage as f64
    };
    if !due {
        return Ok(());
    }
    *progress = StageProgress::default();
    submit(cx, out)
}

fn submit(cx: &Ctx<'_>, out: Tid) -> Result<(), ExecError> {
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

/// Floating-point work of a product in MFLOP, from its output and operands (multiply-adds count two): an
/// estimate of its device time, which is all staging needs.
fn work_mflop(cx: &Ctx<'_>, op: &Op, out: &Array) -> f64 {
    let size = out.size() as f64;
    let last_dim = |tid: Tid| -> f64 {
        cx.get(tid)
            .ok()
            .and_then(|a| a.shape().last().copied())
            .unwrap_or(1) as f64
    };
    let flop = match op {
        // out [.., M, N] from x [.., M, K]: 2·M·N·K.
        Op::Addmm { mat1, .. } => 2.0 * size * last_dim(*mat1),
        Op::QuantizedMatmul { x, .. } | Op::GatherMm { a: x, .. } | Op::GatherQmm { x, .. } => {
            2.0 * size * last_dim(*x)
        }
        // q·kᵀ and p·v over S keys: 4·(B·H·T·D)·S.
        Op::Sdpa { k, .. } => {
            let keys = cx
                .get(*k)
                .ok()
                .and_then(|a| a.shape().iter().rev().nth(1).copied())
                .unwrap_or(1) as f64;
            4.0 * size * keys
        }
        // The off-graph cache's attention attends over at least its T new keys.
        Op::UpdateAndAttend { .. } => 4.0 * size * rows(op, out) as f64,
        // Convolutions: twice the output size, a lower bound (a threshold needs only the order of magnitude).
        _ => 2.0 * size,
    };
    flop / 1e6
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
