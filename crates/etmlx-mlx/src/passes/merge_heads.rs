//! A fused q/k/v projection's split, each part then viewed as heads (`reshape [B, T, -1, D]`,
//! `transpose [0, 2, 1, 3]`) → the views once on the fused product, then one split along the head axis.
//!
//! After [`super::fuse_projections`], attention reads `split(Y)` into q, k and v and views each as
//! `[B, H_i, T, D]`: seven nodes. Viewing `Y` as `[B, T, ΣH_i, D]`, transposing once and splitting the
//! head axis into `[H_q, H_k, H_v]` gives the same three tensors in three. Fires when every part of the
//! split goes only through such a reshape (the same shape, a literal head size `D` dividing every part)
//! and then only through that transpose.

use super::ssa::{fresh_temp, Uses};
use crate::ir::{Graph, IntOrVid, Op, Tid};

struct Merge {
    split_at: usize,
    fused: Tid,
    shape: Vec<IntOrVid>,
    heads: Vec<i64>,
    outs: Vec<Tid>,
    removed: Vec<usize>,
}

/// Returns how many splits were rewritten.
pub fn run(graph: &mut Graph) -> usize {
    let main = graph.main_chain;
    let merges: Vec<Merge> = {
        let chain = &graph.chains[main];
        let uses = Uses::of(chain);
        chain
            .iter()
            .enumerate()
            .filter_map(|(at, op)| match_merge(chain, &uses, at, op))
            .collect()
    };
    let count = merges.len();
    let mut replacements: Vec<(usize, Vec<Op>)> = Vec::new();
    let mut removed: Vec<usize> = Vec::new();
    for merge in merges {
        let (viewed, transposed) = (fresh_temp(graph), fresh_temp(graph));
        replacements.push((
            merge.split_at,
            vec![
                Op::Reshape {
                    x: merge.fused,
                    out: viewed,
                    shape: merge.shape,
                },
                Op::Transpose {
                    x: viewed,
                    out: transposed,
                    perm: vec![0, 2, 1, 3],
                },
                Op::Split {
                    x: transposed,
                    outs: merge.outs,
                    sizes: merge.heads.into_iter().map(IntOrVid::Lit).collect(),
                    axis: 1,
                },
            ],
        ));
        removed.extend(merge.removed);
    }
    let chain = std::mem::take(&mut graph.chains[main]);
    let mut rewritten = Vec::with_capacity(chain.len());
    let mut replacements = replacements.into_iter().peekable();
    for (index, op) in chain.into_iter().enumerate() {
        if replacements.peek().is_some_and(|(at, _)| *at == index) {
            rewritten.extend(replacements.next().map(|(_, ops)| ops).unwrap_or_default());
        } else if !removed.contains(&index) {
            rewritten.push(op);
        }
    }
    graph.chains[main] = rewritten;
    count
}

fn match_merge(chain: &[Op], uses: &Uses, at: usize, op: &Op) -> Option<Merge> {
    let Op::Split {
        x: fused,
        outs,
        sizes,
        axis: -1,
    } = op
    else {
        return None;
    };
    if outs.len() < 2 || sizes.len() != outs.len() {
        return None;
    }
    let only_reader = |t: Tid| match uses.readers(t) {
        [reader] => Some(*reader),
        _ => None,
    };
    let mut shape: Option<&Vec<IntOrVid>> = None;
    let mut heads = Vec::new();
    let mut views = Vec::new();
    let mut removed = Vec::new();
    for (part, size) in outs.iter().zip(sizes) {
        let IntOrVid::Lit(width) = size else {
            return None;
        };
        let reshape_at = only_reader(*part)?;
        let Op::Reshape {
            x,
            out: viewed,
            shape: part_shape,
        } = &chain[reshape_at]
        else {
            return None;
        };
        let head_dim = match part_shape[..] {
            [IntOrVid::Lit(1), _, IntOrVid::Lit(-1), IntOrVid::Lit(d)] if d > 0 => d,
            _ => return None,
        };
        if x != part || shape.is_some_and(|s| s != part_shape) || width % head_dim != 0 {
            return None;
        }
        shape = Some(part_shape);
        let transpose_at = only_reader(*viewed)?;
        let Op::Transpose {
            out: heads_first,
            perm,
            ..
        } = &chain[transpose_at]
        else {
            return None;
        };
        if perm[..] != [0, 2, 1, 3] {
            return None;
        }
        heads.push(width / head_dim);
        views.push(*heads_first);
        removed.extend([reshape_at, transpose_at]);
    }
    // The views move up to the split: a size they read from a value slot must not change in between.
    let shape = shape?;
    let last = *removed.iter().max()?;
    let reads_changed_value = chain[at + 1..last]
        .iter()
        .any(|op| super::ssa::value_output(op).is_some_and(|v| shape.contains(&IntOrVid::Vid(v))));
    if reads_changed_value {
        return None;
    }
    Some(Merge {
        split_at: at,
        fused: *fused,
        shape: shape.clone(),
        heads,
        outs: views,
        removed,
    })
}
