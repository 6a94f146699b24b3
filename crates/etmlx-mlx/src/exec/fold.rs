//! Load-time folding of main-chain ops whose result is the same on every execute: ops with attributes
//! fixed in the file (transpose, expand-dims, reshape to a literal shape, concatenate, reciprocal,
//! elementwise arithmetic, a literal arange) whose inputs are constants or folded values.
//!
//! HF-style exports apply each Linear as `addmm(bias, x, transpose(W))`, so without folding every decode
//! step rebuilds and submits one Transpose node per weight matrix (113 of the 907 ops of a Llama-3.2-1B
//! step), and MLX's host cost is per graph node. A folded view is an evaluated array sharing its
//! constant's buffer, so it adds no memory; at execute time the op's output slot just receives the
//! stored array, which adds no graph node. The graph passes (`crate::passes`) add the ops that do
//! allocate: weights concatenated for a fused projection, RoPE frequencies. A constant that only folded
//! ops read is released once folded, so a concatenated weight replaces its parts instead of doubling them.

use mlx::Array;

use super::state::{Ctx, Layout, Location};
use crate::error::ExecError;
use crate::ir::{Graph, IntOrVid, Op, Tid};

/// The inputs and output of an op whose result depends only on its inputs and attributes fixed in the
/// file, and that is cheap enough to run once at load.
fn fixed_op(op: &Op) -> Option<(Vec<Tid>, Tid)> {
    match op {
        Op::Transpose { x, out, .. }
        | Op::ExpandDims { x, out, .. }
        | Op::Reciprocal { x, out } => Some((vec![*x], *out)),
        Op::Reshape { x, out, shape } if shape.iter().all(|d| matches!(d, IntOrVid::Lit(_))) => {
            Some((vec![*x], *out))
        }
        Op::Concatenate { tensors, out, .. } => Some((tensors.clone(), *out)),
        // Elementwise arithmetic on load-time values (the default-mode exports build their mask from
        // `arange(max_ctx) + constant` on every step).
        Op::Add { a, b, out }
        | Op::Subtract { a, b, out }
        | Op::Multiply { a, b, out }
        | Op::Divide { a, b, out } => Some((vec![*a, *b], *out)),
        Op::ARange {
            out,
            start: IntOrVid::Lit(_),
            stop: IntOrVid::Lit(_),
            step: IntOrVid::Lit(_),
            ..
        } => Some((Vec::new(), *out)),
        _ => None,
    }
}

/// Whether the op's result is a view of its input (no new memory).
fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Transpose { .. } | Op::ExpandDims { .. } | Op::Reshape { .. }
    )
}

/// For each op of the main chain, whether it folds. Conservative: an op folds when its input slots are
/// known to hold constants or folded values at that point and its output is a per-execute slot; any
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
        let folded_out = fixed_op(op)
            .filter(|(inputs, out)| {
                inputs
                    .iter()
                    .all(|x| invariant.get(x.0 as usize) == Some(&true))
                    && matches!(layout.locate(*out), Ok(Location::Transient(_)))
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

/// Constants that only folded ops of the main chain read (not another chain, not an output): they are
/// not needed once the fold has run. Listed with the index of the last folded op that reads them.
fn released_after_fold(graph: &Graph, plan: &[Option<Tid>]) -> Vec<(usize, Tid)> {
    let mut last_reader: Vec<Option<usize>> = vec![None; graph.num_constants as usize];
    let mut kept = vec![false; graph.num_constants as usize];
    let keep = |t: Tid, kept: &mut Vec<bool>| {
        if let Some(flag) = kept.get_mut(t.0 as usize) {
            *flag = true;
        }
    };
    for (index, op) in graph.chains[graph.main_chain].iter().enumerate() {
        if plan.get(index).copied().flatten().is_some() {
            op.for_each_input_tid(|t| {
                if let Some(last) = last_reader.get_mut(t.0 as usize) {
                    *last = Some(index);
                }
            });
        } else {
            op.for_each_tid(|t| keep(t, &mut kept));
        }
    }
    for (chain_index, chain) in graph.chains.iter().enumerate() {
        // The init chain has run by the time the fold does.
        if chain_index != graph.main_chain && Some(chain_index) != graph.init_chain {
            chain
                .iter()
                .for_each(|op| op.for_each_tid(|t| keep(t, &mut kept)));
        }
    }
    for slot in graph.output_map.iter().chain(&graph.mutable_buffer_map) {
        if let Some(t) = slot.tid() {
            keep(t, &mut kept);
        }
    }
    last_reader
        .into_iter()
        .enumerate()
        .filter_map(|(t, last)| Some((last?, Tid(t as u32))).filter(|_| !kept[t]))
        .collect()
}

/// Runs the foldable ops of the main chain once (in order, so an op on a folded value works) and returns,
/// per op index, the output slot and its evaluated value; releases the constants only folded ops read.
/// Ops that allocate are evaluated one by one, each releasing the constants nothing later needs, so
/// peak memory stays near the weights' size. Leaves the per-execute slots it used set: the caller
/// clears them.
pub fn fold_main_chain(cx: &mut Ctx<'_>) -> Result<Vec<Option<(Tid, Array)>>, ExecError> {
    let graph = cx.graph;
    let plan = folded_outputs(graph, &cx.layout);
    let mut releases = released_after_fold(graph, &plan);
    releases.sort();
    let mut releases = releases.into_iter().peekable();
    let mut folded = Vec::with_capacity(plan.len());
    for (index, (op, out)) in graph.chains[graph.main_chain].iter().zip(plan).enumerate() {
        let entry = match out {
            Some(out) => {
                super::dispatch(cx, op)?;
                let value = cx.get(out)?.clone();
                if !is_view(op) {
                    value.eval()?;
                }
                Some((out, value))
            }
            None => None,
        };
        folded.push(entry);
        while let Some(&(_, tid)) = releases.peek().filter(|(last, _)| *last <= index) {
            releases.next();
            // Views of it evaluated later still hold its buffer; only this handle goes.
            pending_views_eval(&folded)?;
            if let Some(slot) = cx.persistent.constants.get_mut(tid.0 as usize) {
                *slot = None;
            }
        }
    }
    pending_views_eval(&folded)?;
    Ok(folded)
}

/// Evaluates every folded value (views are cheap; evaluated values are skipped by MLX).
fn pending_views_eval(folded: &[Option<(Tid, Array)>]) -> Result<(), ExecError> {
    let arrays: Vec<&Array> = folded.iter().flatten().map(|(_, a)| a).collect();
    mlx::eval(&arrays)?;
    Ok(())
}
