//! Projections of one input by several weights (q/k/v, gate/up) → one product over the weights
//! concatenated along the output dimension, then one split.
//!
//! Matches `Addmm(x, transpose(W_i))` (no bias) and affine `QuantizedMatmul(x, w_i, scales_i, biases_i)`
//! (transposed, same group size, bits and mode) reading the same value `x`, with every weight a constant
//! that no other op reads (a shared weight would stay alive next to its concatenated copy).
//! Writes, at the first member:
//! - dense: `Wc = cat(W_1..W_n, axis 0)`, `Y = Addmm(x, transpose(Wc))`;
//! - quantized: `wc, sc, bc = cat(w_i), cat(scales_i), cat(biases_i)` (rows are output features, so the
//!   packed words and their per-group scales/biases concatenate along axis 0 unchanged),
//!   `Y = QuantizedMatmul(x, wc, sc, bc)`;
//!
//! then `Split(Y, [N_1..N_n], axis -1)` into the members' outputs. The concatenations only read
//! constants, so the executor runs them once at load (`exec::fold`) and releases the parts, which no
//! other op reads any more; this pass is therefore only run when folding is on. The transposed weight
//! stays a view of row-major rows, the layout the unfused products had.

use std::collections::BTreeMap;

use super::infer::Infer;
use super::ssa::{fresh_temp, Uses};
use crate::ir::{Graph, IntOrVid, Op, Tid, TidClass};

/// One member projection: where it is, what it writes, its weights and output width.
struct Member {
    at: usize,
    out: Tid,
    weights: Weights,
    width: i32,
}

/// The constants a member multiplies by: a dense weight `[N, K]`, or packed words with their per-group scales
/// and biases (all with N rows).
struct Weights {
    w: Tid,
    scales: Option<Tid>,
    biases: Option<Tid>,
}

/// What members must share to be fused.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The weights' ScalarType: parts of different dtypes would be promoted by the concatenation.
    Dense { dtype: i8 },
    Quantized {
        scales_dtype: Option<i8>,
        group_size: i32,
        bits: i32,
        mode: String,
        has_biases: bool,
    },
}

/// Returns how many projections were merged into fused ones.
pub fn run(graph: &mut Graph) -> usize {
    let main = graph.main_chain;
    let groups: Vec<(Tid, Kind, Vec<Member>)> = {
        let chain = &graph.chains[main];
        let uses = Uses::of(chain);
        let infer = Infer::new(graph, chain, &uses);
        let mut by_input: BTreeMap<(Tid, Kind), Vec<Member>> = BTreeMap::new();
        for (at, op) in chain.iter().enumerate() {
            if let Some((x, kind, member)) = member(graph, &infer, at, op) {
                by_input.entry((x, kind)).or_default().push(member);
            }
        }
        by_input
            .into_iter()
            .filter(|(_, members)| members.len() > 1)
            .map(|((x, kind), members)| (x, kind, members))
            .collect()
    };
    let mut merged = 0;
    let mut replacements: Vec<(usize, Vec<Op>)> = Vec::new();
    let mut removed: Vec<usize> = Vec::new();
    for (x, kind, members) in groups {
        merged += members.len();
        let fused = fresh_temp(graph);
        let mut ops = Vec::new();
        let concat = |graph: &mut Graph, parts: Vec<Tid>, ops: &mut Vec<Op>| {
            let out = fresh_temp(graph);
            ops.push(Op::Concatenate {
                tensors: parts,
                out,
                axis: 0,
            });
            out
        };
        let rows = concat(
            graph,
            members.iter().map(|m| m.weights.w).collect(),
            &mut ops,
        );
        match &kind {
            Kind::Dense { .. } => {
                let columns = fresh_temp(graph);
                ops.push(Op::Transpose {
                    x: rows,
                    out: columns,
                    perm: vec![1, 0],
                });
                ops.push(Op::Addmm {
                    mat1: x,
                    mat2: columns,
                    out: fused,
                    bias: None,
                    alpha: 1.0,
                    beta: 1.0,
                });
            }
            Kind::Quantized {
                group_size,
                bits,
                mode,
                has_biases,
                ..
            } => {
                let scales = members.iter().filter_map(|m| m.weights.scales).collect();
                let scales = concat(graph, scales, &mut ops);
                let biases = has_biases.then(|| {
                    let biases = members.iter().filter_map(|m| m.weights.biases).collect();
                    concat(graph, biases, &mut ops)
                });
                ops.push(Op::QuantizedMatmul {
                    x,
                    w: rows,
                    scales,
                    out: fused,
                    biases,
                    group_size: *group_size,
                    bits: *bits,
                    mode: mode.clone(),
                    transpose: true,
                });
            }
        }
        let widths: Vec<i32> = members.iter().map(|m| m.width).collect();
        ops.push(Op::Split {
            x: fused,
            outs: members.iter().map(|m| m.out).collect(),
            sizes: widths
                .iter()
                .map(|&w| IntOrVid::Lit(i64::from(w)))
                .collect(),
            axis: -1,
        });
        replacements.push((members[0].at, ops));
        removed.extend(members[1..].iter().map(|m| m.at));
    }
    if merged == 0 {
        return 0;
    }
    let chain = std::mem::take(&mut graph.chains[main]);
    let mut by_index: BTreeMap<usize, Vec<Op>> = replacements.into_iter().collect();
    let mut rewritten = Vec::with_capacity(chain.len());
    for (index, op) in chain.into_iter().enumerate() {
        if let Some(ops) = by_index.remove(&index) {
            rewritten.extend(ops);
        } else if !removed.contains(&index) {
            rewritten.push(op);
        }
    }
    graph.chains[main] = rewritten;
    merged
}

/// A projection this pass can merge: `(input, kind, member)`.
fn member(graph: &Graph, infer: &Infer<'_>, at: usize, op: &Op) -> Option<(Tid, Kind, Member)> {
    let is_constant = |t: Tid| graph.tid_class(t) == Some(TidClass::Constant);
    match op {
        Op::Addmm {
            mat1,
            mat2,
            out,
            bias: None,
            ..
        } => {
            let Op::Transpose { x: w, perm, .. } = infer.def(*mat2)? else {
                return None;
            };
            let [rows, _] = infer.declared_shape(*w)?[..] else {
                return None;
            };
            // Only this product reads the weight: the concatenation then replaces it instead of copying it.
            let ok = perm[..] == [1, 0]
                && infer.is_file_constant(*w)
                && infer.readers(*w).len() == 1
                && infer.readers(*mat2) == [at];
            ok.then_some((
                *mat1,
                Kind::Dense {
                    dtype: infer.dtype(*w)?,
                },
                Member {
                    at,
                    out: *out,
                    weights: Weights {
                        w: *w,
                        scales: None,
                        biases: None,
                    },
                    width: rows,
                },
            ))
        }
        Op::QuantizedMatmul {
            x,
            w,
            scales,
            out,
            biases,
            group_size,
            bits,
            mode,
            transpose: true,
        } => {
            let [rows, _] = infer.declared_shape(*w)?[..] else {
                return None;
            };
            let only_here = |t: Tid| is_constant(t) && infer.readers(t) == [at];
            let ok = only_here(*w)
                && only_here(*scales)
                && biases.is_none_or(only_here)
                && mode == "affine";
            ok.then_some((
                *x,
                Kind::Quantized {
                    scales_dtype: infer.dtype(*scales),
                    group_size: *group_size,
                    bits: *bits,
                    mode: mode.clone(),
                    has_biases: biases.is_some(),
                },
                Member {
                    at,
                    out: *out,
                    weights: Weights {
                        w: *w,
                        scales: Some(*scales),
                        biases: *biases,
                    },
                    width: rows,
                },
            ))
        }
        _ => None,
    }
}
