//! Load-time folding of main-chain ops whose result is the same on every execute: views (transpose,
//! expand-dims, reshape to a literal shape) of constants.
//!
//! HF-style exports apply each Linear as `addmm(bias, x, transpose(W))`, so without folding every decode
//! step rebuilds and submits one Transpose node per weight matrix (113 of the 907 ops of a Llama-3.2-1B
//! step), and MLX's host cost is per graph node. A folded result is an evaluated view sharing its
//! constant's buffer, so folding adds no memory; at execute time the op's output slot just receives the
//! stored array, which adds no graph node.

use mlx::Array;

use super::state::{Ctx, Layout, Location};
use crate::error::ExecError;
use crate::ir::{Graph, IntOrVid, Op, Tid};

/// The (input, output) of an op that only re-views its input with attributes fixed in the file.
fn fixed_view(op: &Op) -> Option<(Tid, Tid)> {
    match op {
        Op::Transpose { x, out, .. } | Op::ExpandDims { x, out, .. } => Some((*x, *out)),
        Op::Reshape { x, out, shape } if shape.iter().all(|d| matches!(d, IntOrVid::Lit(_))) => {
            Some((*x, *out))
        }
        _ => None,
    }
}

/// For each op of the main chain, whether it folds. Conservative: a view folds when its input slot is
/// known to hold a constant or a folded value at that point and its output is a per-execute slot; any
/// other op is assumed to overwrite every slot it names (and an op running nested chains, every slot).
pub fn foldable_ops(graph: &Graph, layout: &Layout) -> Vec<bool> {
    folded_outputs(graph, layout)
        .iter()
        .map(Option::is_some)
        .collect()
}

/// [`foldable_ops`], giving the output slot of each op that folds.
fn folded_outputs(graph: &Graph, layout: &Layout) -> Vec<Option<Tid>> {
    let Some(ops) = graph.chains.get(graph.main_chain) else {
        return Vec::new();
    };
    let is_constant = |t: Tid| matches!(layout.locate(t), Ok(Location::Constant(_)));
    let mut invariant: Vec<bool> = (0..graph.total_tensors())
        .map(|t| is_constant(Tid(t)))
        .collect();
    let mut plan = Vec::with_capacity(ops.len());
    for op in ops {
        let folded_out = fixed_view(op)
            .filter(|&(x, out)| {
                invariant.get(x.0 as usize) == Some(&true)
                    && matches!(layout.locate(out), Ok(Location::Transient(_)))
            })
            .map(|(_, out)| out);
        match folded_out {
            Some(out) => invariant[out.0 as usize] = true,
            None if op.called_chains().is_empty() => op.for_each_tid(|t| {
                if !is_constant(t) {
                    if let Some(slot) = invariant.get_mut(t.0 as usize) {
                        *slot = false;
                    }
                }
            }),
            None => {
                for (t, slot) in invariant.iter_mut().enumerate() {
                    *slot = *slot && is_constant(Tid(t as u32));
                }
            }
        }
        plan.push(folded_out);
    }
    plan
}

/// Runs the foldable ops of the main chain once (in order, so a view of a folded view works) and returns,
/// per op index, the output slot and its evaluated value. Leaves the per-execute slots it used set: the
/// caller clears them.
pub fn fold_main_chain(cx: &mut Ctx<'_>) -> Result<Vec<Option<(Tid, Array)>>, ExecError> {
    let graph = cx.graph;
    let plan = folded_outputs(graph, &cx.layout);
    let mut folded = Vec::with_capacity(plan.len());
    for (op, out) in graph.chains[graph.main_chain].iter().zip(plan) {
        let entry = match out {
            Some(out) => {
                super::dispatch(cx, op)?;
                Some((out, cx.get(out)?.clone()))
            }
            None => None,
        };
        folded.push(entry);
    }
    let arrays: Vec<&Array> = folded.iter().flatten().map(|(_, a)| a).collect();
    mlx::eval(&arrays)?;
    Ok(folded)
}
