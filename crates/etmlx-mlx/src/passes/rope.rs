//! HF's decomposed rotary embedding → one `Rope` node per rotated tensor.
//!
//! HF Llama-style models (and ExecuTorch's exports of them in every mode) apply RoPE as
//! `q·cos + rotate_half(q)·sin`, `rotate_half(q) = cat(-q[..., h:], q[..., :h])`, with `cos`/`sin` built
//! once per step from `inv_freq ⊗ position_ids`. That is seven nodes per rotated tensor (two per layer)
//! where MLX has one fused kernel (`fast::rope`).
//!
//! The rewrite fires only when the whole chain matches, back to its roots:
//! - `emb = cat(f, f)`, `f = transpose(inv_freq[None, :, None] @ float(position_ids[:, None, :]))`,
//!   `inv_freq` a constant of the file of shape `[h]`, `position_ids = cache_position[None]` with
//!   `cache_position` a rank-1 input;
//! - `cos = Cos(emb)·s_c`, `sin = Sin(emb)·s_s` (the multiplies optional, each scale a constant equal to
//!   1: HF's `attention_scaling`, which is 1 for the default and llama3 rope types), optionally cast to
//!   the rotated tensor's dtype, then `unsqueeze(1)`;
//! - `q` of rank 4, sliced at `h` along its last axis.
//!
//! Then `fast::rope(q, dims = 2h, traditional = false, freqs = 1 / inv_freq, offset = cache_position[0])`
//! computes the same values provided the positions are consecutive, `cache_position = p0 + arange(T)`:
//! every ExecuTorch LLM runner passes that, and the custom-cache exports' cache writes assume it too. The
//! pass reports the input it relies on ([`RopeFusion::position_inputs`]) so the backend can refuse
//! other positions instead of computing something else.

use std::collections::HashMap;

use super::infer::{Infer, FLOAT32};
use super::ssa::{fresh_temp, value_output, Uses};
use super::ConstantValues;
use crate::ir::{Graph, IntOrVid, IntOrVidOrTid, Op, Tid, TidClass, Vid, VidOrTid};

/// ExecuTorch ScalarType code of int32 (the offset dtype `fast::rope` wants).
const INT32: i8 = 3;

/// What the pass did.
#[derive(Debug, Default)]
pub struct RopeFusion {
    /// Rope nodes written.
    pub fused: usize,
    /// Inputs whose values the fused nodes assume consecutive.
    pub position_inputs: Vec<Tid>,
}

/// The tables a rotation reads, traced back to the file.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Tables {
    inv_freq: Tid,
    cache_position: Tid,
    half: i64,
    /// dtype the cos/sin tables are multiplied in.
    dtype: i8,
}

/// One match: the op to replace and the rotated value.
struct Rotation {
    at: usize,
    out: Tid,
    x: Tid,
    tables: Tables,
}

pub fn run(graph: &mut Graph, constants: &dyn ConstantValues) -> RopeFusion {
    let main = graph.main_chain;
    let rotations = {
        let chain = &graph.chains[main];
        let uses = Uses::of(chain);
        let infer = Infer::new(graph, chain, &uses);
        chain
            .iter()
            .enumerate()
            .filter_map(|(at, op)| match_rotation(&infer, constants, at, op))
            .collect::<Vec<_>>()
    };
    let mut report = RopeFusion::default();
    if rotations.is_empty() {
        return report;
    }
    // Per table set: the offset and the frequencies, computed once at the top of the chain. The offset
    // stays on the device (an int32 scalar array): reading it on the host would be a sync in the middle of
    // building the step, which the default-mode exports do not have.
    let mut prologue: Vec<Op> = Vec::new();
    let mut inputs_of: HashMap<Tables, (Tid, Tid)> = HashMap::new();
    let mut replacements: Vec<(usize, Op)> = Vec::new();
    for rotation in &rotations {
        let tables = rotation.tables;
        let &mut (offset, freqs) = inputs_of.entry(tables).or_insert_with(|| {
            let (first, offset, freqs) = (fresh_temp(graph), fresh_temp(graph), fresh_temp(graph));
            prologue.extend([
                Op::Take {
                    x: tables.cache_position,
                    out: first,
                    index: IntOrVidOrTid::Lit(0),
                    axis: 0,
                },
                Op::AsType {
                    x: first,
                    out: offset,
                    scalar_type: INT32,
                },
                // fast::rope takes frequencies as 1 / inv_freq; a constant-only op, folded at load.
                Op::Reciprocal {
                    x: tables.inv_freq,
                    out: freqs,
                },
            ]);
            (offset, freqs)
        });
        if !report.position_inputs.contains(&tables.cache_position) {
            report.position_inputs.push(tables.cache_position);
        }
        replacements.push((
            rotation.at,
            Op::Rope {
                x: rotation.x,
                out: rotation.out,
                dims: (2 * tables.half) as i32,
                offset: VidOrTid::Tid(offset),
                freqs: Some(freqs),
                traditional: false,
                base: 0.0,
                scale: 1.0,
            },
        ));
    }
    let chain = &mut graph.chains[main];
    for (at, op) in replacements {
        chain[at] = op;
    }
    report.fused = rotations.len();
    share_first_position(chain, &report.position_inputs);
    chain.splice(0..0, prologue);
    report
}

/// The custom-cache exports read `cache_position[0]` on the host more than once per step (`ItemInt`, a sync
/// each): every read after the first becomes a copy of the first's value while that value slot is unchanged.
fn share_first_position(chain: &mut [Op], position_inputs: &[Tid]) {
    let uses = Uses::of(chain);
    let def = |t: Tid| uses.def(t).map(|at| &chain[at]);
    let take_first = |t: Tid| match def(t)? {
        Op::Take {
            x,
            index: IntOrVidOrTid::Lit(0),
            axis: 0,
            ..
        } => Some(*x),
        _ => None,
    };
    // cache_position[0], or cache_position[None][0][0].
    let first_position_of = |t: Tid| -> Option<Tid> {
        let taken = take_first(t)?;
        if position_inputs.contains(&taken) {
            return Some(taken);
        }
        match def(take_first(taken)?)? {
            Op::ExpandDims { x, axis: 0, .. } if position_inputs.contains(x) => Some(*x),
            _ => None,
        }
    };
    let mut first_read: HashMap<Tid, Vid> = HashMap::new();
    let mut copies: Vec<(usize, Vid, Vid)> = Vec::new();
    for (at, op) in chain.iter().enumerate() {
        if let Op::ItemInt { x, out } = *op {
            if let Some(input) = first_position_of(x) {
                match first_read.get(&input) {
                    Some(&value) => copies.push((at, value, out)),
                    None => _ = first_read.insert(input, out),
                }
                continue;
            }
        }
        // A value slot written again no longer holds the position.
        if let Some(written) = value_output(op) {
            first_read.retain(|_, value| *value != written);
        }
    }
    for (at, value, out) in copies {
        chain[at] = Op::AddInt {
            a: IntOrVid::Vid(value),
            b: IntOrVid::Lit(0),
            out,
        };
    }
}

fn match_rotation(
    infer: &Infer<'_>,
    constants: &dyn ConstantValues,
    at: usize,
    op: &Op,
) -> Option<Rotation> {
    let Op::Add { a, b, out } = op else {
        return None;
    };
    for (direct, rotated) in [(*a, *b), (*b, *a)] {
        let Some((x, half, sin_side)) = rotated_half_times_sin(infer, rotated) else {
            continue;
        };
        let Some(cos_side) = other_factor(infer, direct, x) else {
            continue;
        };
        let cos = table(infer, constants, cos_side, TableKind::Cos)?;
        let sin = table(infer, constants, sin_side, TableKind::Sin)?;
        if cos != sin || cos.half != half || infer.rank(x) != Some(4) {
            return None;
        }
        if infer.dtype(x) != Some(cos.dtype) {
            return None;
        }
        return Some(Rotation {
            at,
            out: *out,
            x,
            tables: cos,
        });
    }
    None
}

/// `t = Multiply(x, other)` in either order: `other`.
fn other_factor(infer: &Infer<'_>, t: Tid, x: Tid) -> Option<Tid> {
    match infer.def(t)? {
        Op::Multiply { a, b, .. } if *a == x => Some(*b),
        Op::Multiply { a, b, .. } if *b == x => Some(*a),
        _ => None,
    }
}

/// `t = rotate_half(x) · s` in either order: `(x, h, s)`.
fn rotated_half_times_sin(infer: &Infer<'_>, t: Tid) -> Option<(Tid, i64, Tid)> {
    let Op::Multiply { a, b, .. } = infer.def(t)? else {
        return None;
    };
    for (rotated, sin) in [(*a, *b), (*b, *a)] {
        if let Some((x, half)) = rotate_half(infer, rotated) {
            return Some((x, half, sin));
        }
    }
    None
}

/// `t = cat(-x[..., h:], x[..., :h], axis = -1)`: `(x, h)`.
fn rotate_half(infer: &Infer<'_>, t: Tid) -> Option<(Tid, i64)> {
    let Op::Concatenate { tensors, axis, .. } = infer.def(t)? else {
        return None;
    };
    let [negated, first] = tensors[..] else {
        return None;
    };
    let Op::Neg { x: second, .. } = infer.def(negated)? else {
        return None;
    };
    let (x, start, stop, first_axis) = last_axis_slice(infer, first)?;
    let (x2, h, stop2, second_axis) = last_axis_slice(infer, *second)?;
    let rank = infer.rank(x)? as i64;
    let is_last = |axis: i64| axis == -1 || axis == rank - 1;
    let ok = x == x2
        && start == 0
        && stop == h
        && h > 0
        && stop2 >= 2 * h
        && is_last(first_axis)
        && is_last(second_axis)
        && is_last(i64::from(*axis));
    ok.then_some((x, h))
}

/// `t = x[start:stop]` along a literal axis with step 1: `(x, start, stop, axis)`.
fn last_axis_slice(infer: &Infer<'_>, t: Tid) -> Option<(Tid, i64, i64, i64)> {
    match infer.def(t)? {
        Op::Slice {
            x,
            axis: IntOrVid::Lit(axis),
            start: IntOrVid::Lit(start),
            stop: IntOrVid::Lit(stop),
            step: 1,
            ..
        } => Some((*x, *start, *stop, *axis)),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum TableKind {
    Cos,
    Sin,
}

/// `t = unsqueeze(astype?(Cos|Sin(emb) · 1?), 1)` with `emb` the HF frequency table.
fn table(
    infer: &Infer<'_>,
    constants: &dyn ConstantValues,
    t: Tid,
    kind: TableKind,
) -> Option<Tables> {
    let Op::ExpandDims { x, axis: 1, .. } = infer.def(t)? else {
        return None;
    };
    let mut value = *x;
    let mut dtype = None;
    if let Some(Op::AsType { x, scalar_type, .. }) = infer.def(value) {
        dtype = Some(*scalar_type);
        value = *x;
    }
    if let Some(Op::Multiply { a, b, .. }) = infer.def(value) {
        let (scaled, scale) = if is_one(infer, constants, *b) {
            (*a, *b)
        } else {
            (*b, *a)
        };
        if !is_one(infer, constants, scale) {
            return None;
        }
        value = scaled;
    }
    let emb = match (infer.def(value)?, kind) {
        (Op::Cos { x, .. }, TableKind::Cos) | (Op::Sin { x, .. }, TableKind::Sin) => *x,
        _ => return None,
    };
    let (inv_freq, cache_position, half) = frequency_table(infer, emb)?;
    Some(Tables {
        inv_freq,
        cache_position,
        half,
        dtype: dtype.unwrap_or(FLOAT32),
    })
}

/// A file constant holding exactly 1 (of any float dtype, any shape of one element).
fn is_one(infer: &Infer<'_>, constants: &dyn ConstantValues, t: Tid) -> bool {
    infer.is_file_constant(t) && constants.scalar(t) == Some(1.0)
}

/// `emb = cat(f, f)`, `f = transpose(inv_freq[None, :, None] @ float(cache_position[None][:, None]))`:
/// `(inv_freq, cache_position, h)`.
fn frequency_table(infer: &Infer<'_>, emb: Tid) -> Option<(Tid, Tid, i64)> {
    let Op::Concatenate { tensors, axis, .. } = infer.def(emb)? else {
        return None;
    };
    let [f, f2] = tensors[..] else { return None };
    if f != f2 || !(*axis == -1 || *axis == 2) {
        return None;
    }
    let Op::Transpose { x: freqs, perm, .. } = infer.def(f)? else {
        return None;
    };
    if perm[..] != [0, 2, 1] {
        return None;
    }
    let Op::Addmm {
        mat1,
        mat2,
        bias: None,
        ..
    } = infer.def(*freqs)?
    else {
        return None;
    };
    // inv_freq[None, :, None], possibly broadcast to the batch of 1.
    let mut column = *mat1;
    if let Some(Op::BroadcastTo { x, shape, .. }) = infer.def(column) {
        if shape.first() != Some(&IntOrVid::Lit(1)) {
            return None;
        }
        column = *x;
    }
    let Op::ExpandDims {
        x: row, axis: 2, ..
    } = infer.def(column)?
    else {
        return None;
    };
    let Op::ExpandDims {
        x: inv_freq,
        axis: 0,
        ..
    } = infer.def(*row)?
    else {
        return None;
    };
    let half = match infer.declared_shape(*inv_freq)?[..] {
        [h] if infer.is_file_constant(*inv_freq) && infer.dtype(*inv_freq) == Some(FLOAT32) => h,
        _ => return None,
    };
    // float(position_ids[:, None, :]) with position_ids = cache_position[None].
    let mut positions = *mat2;
    if let Some(Op::AsType {
        x,
        scalar_type: FLOAT32,
        ..
    }) = infer.def(positions)
    {
        positions = *x;
    }
    let Op::ExpandDims {
        x: position_ids,
        axis: 1,
        ..
    } = infer.def(positions)?
    else {
        return None;
    };
    let Op::ExpandDims {
        x: cache_position,
        axis: 0,
        ..
    } = infer.def(*position_ids)?
    else {
        return None;
    };
    let is_position_input = infer.def(*cache_position).is_none()
        && infer.rank(*cache_position) == Some(1)
        && infer.class(*cache_position) == Some(TidClass::Input);
    is_position_input.then_some((*inv_freq, *cache_position, i64::from(half)))
}
