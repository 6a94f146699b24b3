//! Chained views: `Reshape(Reshape(x))` and `Transpose(Transpose(x))` read `x` directly; a chain of
//! `ExpandDims` on a value of rank ≤ 1 becomes one `Reshape` (the default-mode exports view `cache_position`
//! as `[1, 1, T, 1]` in three steps every call). Each MLX view is still a graph node with its per-node host
//! cost. (A cast to the dtype a value already has needs no pass: MLX returns the value itself.)

use super::infer::Infer;
use super::ssa::{Ssa, Uses};
use crate::ir::{Graph, IntOrVid, Op, Tid};

/// Returns how many ops were dropped or merged.
pub fn run(graph: &mut Graph, ssa: &Ssa) -> usize {
    let main = graph.main_chain;
    let rewrites = {
        let chain = &graph.chains[main];
        let uses = Uses::of(chain);
        let infer = Infer::new(graph, chain, &uses);
        // A value another op may read in its place: written once (or never) in the chain.
        let stable = |t: Tid| ssa.is_renamed_temp(t) || uses.def(t).is_none();
        let mut rewrites: Vec<(usize, Op)> = Vec::new();
        for (at, op) in chain.iter().enumerate() {
            match op {
                Op::Reshape { x, out, shape } => {
                    if let Some(Op::Reshape { x: inner, .. }) = infer.def(*x) {
                        if stable(*inner) {
                            rewrites.push((
                                at,
                                Op::Reshape {
                                    x: *inner,
                                    out: *out,
                                    shape: shape.clone(),
                                },
                            ));
                        }
                    }
                }
                Op::Transpose { x, out, perm } => {
                    if let Some(Op::Transpose {
                        x: inner,
                        perm: first,
                        ..
                    }) = infer.def(*x)
                    {
                        // out[i] = x[perm[i]] = inner[first[perm[i]]].
                        let composed: Option<Vec<i32>> = perm
                            .iter()
                            .map(|&p| usize::try_from(p).ok().and_then(|p| first.get(p).copied()))
                            .collect();
                        if let Some(composed) = composed.filter(|c| c.len() == first.len()) {
                            if stable(*inner) {
                                rewrites.push((
                                    at,
                                    Op::Transpose {
                                        x: *inner,
                                        out: *out,
                                        perm: composed,
                                    },
                                ));
                            }
                        }
                    }
                }
                Op::ExpandDims { out, .. } => {
                    // The last of a chain merges it all.
                    let continued = matches!(
                        infer.readers(*out),
                        [reader] if matches!(chain[*reader], Op::ExpandDims { .. })
                    );
                    if continued {
                        continue;
                    }
                    if let Some(merged) = expand_dims_chain(&infer, op, &stable) {
                        rewrites.push((at, merged));
                    }
                }
                _ => {}
            }
        }
        rewrites
    };
    let count = rewrites.len();
    let chain = &mut graph.chains[main];
    for (at, op) in rewrites {
        chain[at] = op;
    }
    count
}

/// `ExpandDims(ExpandDims(...(x)))` with at least two steps and `x` of rank 0 or 1 → `Reshape(x)` to the
/// final shape, `-1` standing for x's one dimension.
fn expand_dims_chain(infer: &Infer<'_>, op: &Op, stable: &dyn Fn(Tid) -> bool) -> Option<Op> {
    let Op::ExpandDims { out, .. } = op else {
        return None;
    };
    // Walk to the root, collecting the axes innermost first.
    let mut axes = Vec::new();
    let mut current = op;
    let root = loop {
        let Op::ExpandDims { x, axis, .. } = current else {
            return None;
        };
        axes.push(*axis);
        match infer.def(*x) {
            Some(inner @ Op::ExpandDims { .. }) => current = inner,
            _ => break *x,
        }
    };
    let rank = infer.rank(root)?;
    if axes.len() < 2 || rank > 1 || !stable(root) {
        return None;
    }
    // Replay the insertions on a symbolic shape: `None` is x's dimension, `Some(1)` an inserted one.
    let mut shape: Vec<Option<i64>> = vec![None; rank];
    for &axis in axes.iter().rev() {
        let len = shape.len() as i64 + 1;
        let at = if axis < 0 {
            i64::from(axis) + len
        } else {
            i64::from(axis)
        };
        if !(0..len).contains(&at) {
            return None;
        }
        shape.insert(at as usize, Some(1));
    }
    Some(Op::Reshape {
        x: root,
        out: *out,
        shape: shape
            .into_iter()
            .map(|d| IntOrVid::Lit(d.unwrap_or(-1)))
            .collect(),
    })
}
