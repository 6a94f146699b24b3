//! Staged submission of a large call (options `stage_mflop`, `submit_every`).
//!
//! Without it, a call builds its whole lazy graph and only then submits it (`async_eval`): during a prefill the
//! device idles while the host interprets the chain, and MLX then encodes the graph in batches, so the device
//! also starts late and ends with a backlog. Staged, the graph built so far is submitted at points of the main
//! chain, so the device works on the first layers while the host builds the next ones.
//!
//! Where: after a matrix product (or attention, or convolution) whose output has at least [`MIN_STAGED_ROWS`]
//! rows, once the products since the last stage amount to `stage_mflop` MFLOP and number at least
//! [`MIN_PRODUCTS_PER_STAGE`] (by default on CUDA; measured there, docs/benchmarks.md). A stage costs host time,
//! so it must carry enough device work: a call whose products are too small to reach one stage's work within
//! [`MAX_PRODUCTS_PER_STAGE`] is not staged at all (a small model, where the host is the bottleneck anyway), and a
//! one-token decode step never is (the pipelined decode loop already overlaps it).
//! `submit_every = N` stages after every N-th large product instead (for A/B runs and tests).
//!
//! Staging changes when MLX schedules nodes, not which nodes run: the outputs are the same arrays, bit for bit.

use mlx::Array;

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{Op, Tid};

/// MFLOP of device work per staged submission on CUDA: on an H200 one stage per Llama-1B layer at 512 tokens
/// (~60 GFLOP) beat smaller and larger stages, and a model as small as SmolLM2-135M lost when staged per layer
/// (~4 GFLOP) — docs/benchmarks.md, session 7.
pub const DEFAULT_STAGE_MFLOP: usize = 48_000;
/// Products with fewer rows (tokens × batch) than this never trigger a stage.
pub const MIN_STAGED_ROWS: usize = 16;
/// Products per stage at least (by work): about one Llama layer with fused projections (q/k/v, attention, o,
/// gate/up, down), so that a large model does not stage after every product.
pub const MIN_PRODUCTS_PER_STAGE: usize = 5;
/// A call that builds this many products without reaching one stage's work stops staging: its products are too
/// small for the device to fall behind the host (on an H200, SmolLM2-135M at 512 tokens, ~0.8 GFLOP per
/// product, was slower staged even once per eleven layers), so a stage would only add host work.
pub const MAX_PRODUCTS_PER_STAGE: usize = 20;

/// Progress of the current call since its last stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct StageProgress {
    products: usize,
    mflop: f64,
    /// The call's products proved too small to stage (see [`MAX_PRODUCTS_PER_STAGE`]).
    given_up: bool,
}

impl StageProgress {
    /// Counts one large product of `mflop`; returns whether a stage is due after it (and then starts over).
    fn add(&mut self, mflop: f64, every: usize, mflop_per_stage: usize) -> bool {
        self.products += 1;
        self.mflop += mflop;
        let due = if every > 0 {
            self.products >= every
        } else if self.given_up {
            false
        } else if self.mflop < mflop_per_stage as f64 {
            self.given_up = self.products >= MAX_PRODUCTS_PER_STAGE;
            false
        } else {
            self.products >= MIN_PRODUCTS_PER_STAGE
        };
        if due {
            *self = StageProgress::default();
        }
        due
    }
}

/// After `op` has been built: submits the graph so far when the large products since the last stage call for
/// it. Main chain only (the caller's check).
pub(super) fn after_op(cx: &mut Ctx<'_>, op: &Op) -> Result<(), ExecError> {
    if !is_product(op) {
        return Ok(());
    }
    let (every, mflop_per_stage) = (cx.options.submit_every, cx.stage_mflop());
    if every == 0 && mflop_per_stage == 0 {
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
    if !cx
        .transient
        .stage_progress
        .add(mflop, every, mflop_per_stage)
    {
        return Ok(());
    }
    submit(cx, out)
}

fn submit(cx: &Ctx<'_>, out: Tid) -> Result<(), ExecError> {
    let submission = crate::backend::submit(&[cx.get(out)?], cx.options.profile)?;
    if cx.options.profile {
        crate::backend::record_stage(submission);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The stages a call of `products` (MFLOP each) gets, as product indices after which a stage is due.
    fn stages(products: &[f64], every: usize, mflop_per_stage: usize) -> Vec<usize> {
        let mut p = StageProgress::default();
        (0..products.len())
            .filter(|&i| p.add(products[i], every, mflop_per_stage))
            .collect()
    }

    #[test]
    fn stages_by_count_by_work_and_never_for_small_products() {
        // Every second product, whatever the work.
        assert_eq!(stages(&[0.0; 7], 2, 0), [1, 3, 5]);
        // By work: 10 MFLOP per product against 25 per stage, but never fewer than five products per stage.
        assert_eq!(stages(&[10.0; 12], 0, 25), [4, 9]);
        // Large products: one stage per five products.
        assert_eq!(stages(&[100.0; 10], 0, 25), [4, 9]);
        // Work reached within the product limit...
        let mut work = vec![1.0; MAX_PRODUCTS_PER_STAGE - 1];
        work.push(100.0);
        assert_eq!(stages(&work, 0, 50), [MAX_PRODUCTS_PER_STAGE - 1]);
        // ...and not: staging stops for the rest of the call, even when larger products follow.
        let mut work = vec![1.0; MAX_PRODUCTS_PER_STAGE];
        work.extend([100.0; 10]);
        assert!(stages(&work, 0, 50).is_empty());
    }
}
