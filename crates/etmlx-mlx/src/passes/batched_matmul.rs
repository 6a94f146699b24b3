//! `Addmm(x, W)` with a rank-3 activation and a 2-D weight → the same product with the weight viewed as
//! `[1, K, N]`.
//!
//! A matrix product of `[B, T, K]` by `[K, N]` is computed by flattening the activation to `[B·T, K]`
//! and unflattening the result (MLX's `matmul` adds those two nodes for every Linear of an HF export:
//! 226 of a Llama-3.2-1B decode step's ~970). With the weight as a batch of one, `[B, T, K] @ [1, K, N]`
//! is a batched product over the same numbers with no reshapes (and, for B = 1, no broadcast either).
//! The added expand-dims of a weight (or of a folded view of one) is itself folded at load.

use super::infer::Infer;
use super::ssa::{fresh_temp, Uses};
use crate::ir::{Graph, Op, Tid};

/// Returns how many products were rewritten.
pub fn run(graph: &mut Graph) -> usize {
    let main = graph.main_chain;
    let targets: Vec<(usize, Tid)> = {
        let chain = &graph.chains[main];
        let uses = Uses::of(chain);
        let infer = Infer::new(graph, chain, &uses);
        chain
            .iter()
            .enumerate()
            .filter_map(|(index, op)| match op {
                Op::Addmm {
                    mat1,
                    mat2,
                    bias: None,
                    ..
                } if infer.rank(*mat1) == Some(3) && infer.rank(*mat2) == Some(2) => {
                    Some((index, *mat2))
                }
                _ => None,
            })
            .collect()
    };
    // Insert from the back so earlier indices stay valid.
    for &(index, weight) in targets.iter().rev() {
        let batched = fresh_temp(graph);
        let chain = &mut graph.chains[main];
        if let Op::Addmm { mat2, .. } = &mut chain[index] {
            *mat2 = batched;
        }
        chain.insert(
            index,
            Op::ExpandDims {
                x: weight,
                out: batched,
                axis: 0,
            },
        );
    }
    targets.len()
}
