//! A residual add and the RMS norm of its sum (the op right after it) as one MLX node
//! (`mlx::fast::residual_rms_norm`) instead of two. A transformer layer has two such pairs; on a GPU every MLX
//! node costs microseconds of host time and a batch-1 decode step is bound by that (docs/benchmarks.md).
//!
//! [`crate::passes::residual_norm`] finds the pairs; [`step`] runs at each pair's add and writes both outputs
//! (the sum, which later residual adds read, and the normalised sum), and the caller skips the norm. On CUDA the
//! pair is the custom kernel; a CPU forced to fuse (for testing this bookkeeping) builds the unfused add and
//! norm, so its results are identical to the unfused pair's.
//!
//! Off by default (option `fuse_residual_norm`): on an H200 a custom-kernel node costs MLX about as much host
//! time as the add and norm nodes it replaces (its source is assembled and hashed on every call), and seven
//! interleaved A/B pairs of W1 decode showed no gain (docs/benchmarks.md, session 6).

use mlx::fast;
use mlx::ops::{self, BinaryOp};
use mlx::Dtype;

use super::Ctx;
use crate::error::ExecError;
use crate::ir::Op;

/// Per main-chain op: whether it is the add of a fusable pair.
#[derive(Debug, Default)]
pub struct Plan {
    pair_starts: Vec<bool>,
}

impl Plan {
    pub const EMPTY: Plan = Plan {
        pair_starts: Vec::new(),
    };

    pub fn new(main_chain: &[Op]) -> Plan {
        let mut pair_starts = vec![false; main_chain.len()];
        for at in crate::passes::residual_norm::find(main_chain) {
            pair_starts[at] = true;
        }
        Plan { pair_starts }
    }

    pub fn pairs(&self) -> usize {
        self.pair_starts.iter().filter(|&&p| p).count()
    }
}

/// At main-chain op `index`: when it is the add of a pair and the pair fuses, writes the add's and the next
/// op's (the norm's) outputs and returns true; the caller must then skip the next op.
pub fn step(cx: &mut Ctx<'_>, index: usize) -> Result<bool, ExecError> {
    if !cx
        .residual_norm
        .pair_starts
        .get(index)
        .copied()
        .unwrap_or(false)
        || !cx.fuses_residual_norm()
    {
        return Ok(false);
    }
    let chain = &cx.graph.chains[cx.graph.main_chain];
    let (
        Some(Op::Add { a, b, out: sum_out }),
        Some(Op::RMSNorm {
            weight: Some(weight),
            out: norm_out,
            eps,
            ..
        }),
    ) = (chain.get(index), chain.get(index + 1))
    else {
        return Ok(false);
    };
    let (a, b, weight) = (cx.get(*a)?, cx.get(*b)?, cx.get(*weight)?);
    let dtype = a.dtype();
    let shape = a.shape();
    let fits = matches!(dtype, Dtype::Bfloat16 | Dtype::Float16 | Dtype::Float32)
        && b.shape() == shape
        && b.dtype() == dtype
        && weight.dtype() == dtype
        && weight.shape() == shape.last().map(|&h| vec![h]).unwrap_or_default();
    if !fits {
        return Ok(false);
    }
    let s = cx.s();
    let (sum, normed) = if cx.on_cuda() {
        fast::residual_rms_norm(a, b, weight, *eps, s)?
    } else {
        let sum = ops::binary(BinaryOp::Add, a, b, s)?;
        let normed = fast::rms_norm(&sum, Some(weight), *eps, s)?;
        (sum, normed)
    };
    // Both computed before either slot is written: the norm's output slot may hold one of the add's operands.
    let (sum_out, norm_out) = (*sum_out, *norm_out);
    cx.set(sum_out, sum)?;
    cx.set(norm_out, normed)?;
    Ok(true)
}
