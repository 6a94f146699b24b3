//! Two ropes of adjacent parts of one head split (q and k after [`super::merge_heads`]) → one rope of both.
//!
//! After `merge_heads`, attention splits `[B, ΣH, T, D]` into q, k and v along the head axis and rotates q
//! and k with the same positions, frequencies and dims: two `Rope` nodes. A rope treats every head alike
//! (the positions run along T), so rotating the q and k heads together and splitting them after computes the
//! same values with one rope node instead of two; on a GPU each node costs microseconds of host time in a
//! decode step. Fires when two consecutive parts of a split along axis 1 are each read only by a rope with
//! identical parameters.

use super::ssa::{fresh_temp, Uses};
use crate::ir::{Graph, IntOrVid, Op, Tid};

struct Pair {
    split_at: usize,
    /// Index in the split's outputs of the first of the two parts.
    part: usize,
    /// The two ropes, in chain order, and their outputs (of the first and second part).
    ropes: [usize; 2],
    rotated: [Tid; 2],
}

/// Returns how many rope pairs were merged.
pub fn run(graph: &mut Graph) -> usize {
    let main = graph.main_chain;
    let mut count = 0;
    // One rewrite at a time, matched afresh: each one moves ops, so indices found before it would be stale.
    loop {
        let found = {
            let chain = &graph.chains[main];
            let uses = Uses::of(chain);
            chain
                .iter()
                .enumerate()
                .find_map(|(at, op)| match_pair(chain, &uses, at, op))
        };
        let Some(pair) = found else {
            return count;
        };
        rewrite(graph, pair);
        count += 1;
    }
}

/// Splits `[.., first, second, ..]` as `[.., first + second, ..]`, rotates that part with one rope where the first
/// rope was, splits it right after into the two rotated parts, and drops the second rope.
fn rewrite(graph: &mut Graph, pair: Pair) {
    let main = graph.main_chain;
    let (joined, rotated) = (fresh_temp(graph), fresh_temp(graph));
    let chain = &mut graph.chains[main];
    let Op::Split { outs, sizes, .. } = &mut chain[pair.split_at] else {
        unreachable!("matched a split");
    };
    let (IntOrVid::Lit(first), IntOrVid::Lit(second)) = (sizes[pair.part], sizes[pair.part + 1])
    else {
        unreachable!("matched literal sizes");
    };
    outs.splice(pair.part..pair.part + 2, [joined]);
    sizes.splice(pair.part..pair.part + 2, [IntOrVid::Lit(first + second)]);
    // The first rope's operands are all defined where it stands, so the joint rope takes its place.
    let mut rope = chain[pair.ropes[0]].clone();
    if let Op::Rope { x, out, .. } = &mut rope {
        (*x, *out) = (joined, rotated);
    }
    chain[pair.ropes[0]] = rope;
    chain.remove(pair.ropes[1]);
    chain.insert(
        pair.ropes[0] + 1,
        Op::Split {
            x: rotated,
            outs: pair.rotated.to_vec(),
            sizes: vec![IntOrVid::Lit(first), IntOrVid::Lit(second)],
            axis: 1,
        },
    );
}

fn match_pair(chain: &[Op], uses: &Uses, at: usize, op: &Op) -> Option<Pair> {
    let Op::Split {
        outs,
        sizes,
        axis: 1,
        ..
    } = op
    else {
        return None;
    };
    let only_rope = |t: Tid| match uses.readers(t) {
        [reader] => match &chain[*reader] {
            Op::Rope { x, out, .. } if *x == t => Some((*reader, *out)),
            _ => None,
        },
        _ => None,
    };
    (0..outs.len().saturating_sub(1)).find_map(|part| {
        let (IntOrVid::Lit(_), IntOrVid::Lit(_)) = (sizes.get(part)?, sizes.get(part + 1)?) else {
            return None;
        };
        let (first, first_out) = only_rope(outs[part])?;
        let (second, second_out) = only_rope(outs[part + 1])?;
        if !same_rotation(&chain[first], &chain[second]) {
            return None;
        }
        let (ropes, rotated) = if first < second {
            ([first, second], [first_out, second_out])
        } else {
            ([second, first], [first_out, second_out])
        };
        Some(Pair {
            split_at: at,
            part,
            ropes,
            rotated,
        })
    })
}

/// Whether two ropes rotate with the same parameters (everything but their input and output).
fn same_rotation(a: &Op, b: &Op) -> bool {
    let strip = |op: &Op| {
        let mut op = op.clone();
        if let Op::Rope { x, out, .. } = &mut op {
            (*x, *out) = (Tid(0), Tid(0));
        }
        op
    };
    strip(a) == strip(b)
}
