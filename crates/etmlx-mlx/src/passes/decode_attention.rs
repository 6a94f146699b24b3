//! Finds each layer's attention block of an LLM export: the ops that rotate q and k, write k and v into the
//! layer's KV caches and attend over them. Analysis only: the graph is left as it is, and the executor runs a
//! found block as one kernel when the step decodes one token on a device that has that kernel
//! (`exec::decode_attention`).
//!
//! The block, as the official exports read after [`super::merge_heads`] and [`super::pair_ropes`]:
//!
//! ```text
//! Split(heads [B, HQ+2HK, T, D], axis 1) -> qk [B, HQ+HK, ..], v [B, HK, ..]
//! Rope(qk) -> rotated;  Split(rotated, axis 1) -> q [B, HQ, ..], k [B, HK, ..]
//! SliceUpdate(k_cache, k, axis 2);  SliceUpdate(v_cache, v, axis 2)   (both before both reads)
//! Slice(k_cache, axis 2, from 0) -> keys;  Slice(v_cache, axis 2, from 0) -> values
//! Sdpa(q, keys, values, no mask) -> out
//! ```
//!
//! Every intermediate is a temp the passes renamed, read only inside the block except by `SymSize` ops (shapes
//! the executor knows without the arrays). The caches are mutable buffers that no other op of any chain touches
//! (the fused kernel writes them where MLX sees only a read, so nothing else may order itself around them), and
//! the rope's offset and frequencies are defined before the block starts (so the executor can read them there).
//! Blocks do not overlap. Runs on the single-assignment chain after the last dead-op elimination: op indices stay
//! valid through slot allocation, which renames slots but moves no op.

use super::ssa::{Ssa, Uses};
use crate::ir::{Graph, IntOrVid, Op, Tid, TidClass, VidOrTid};

/// One attention block, by main-chain op index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeAttention {
    pub heads_split: usize,
    pub rope: usize,
    pub qk_split: usize,
    pub k_write: usize,
    pub v_write: usize,
    pub k_read: usize,
    pub v_read: usize,
    pub attention: usize,
    pub q_heads: i32,
    pub kv_heads: i32,
    /// `SymSize` ops that read an intermediate of the block, and which one.
    pub shape_reads: Vec<(usize, Part)>,
}

/// An intermediate of the block whose shape a `SymSize` may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// q and k heads, before or after the rope: `[B, HQ + HK, T, D]`.
    QueryKey,
    /// `[B, HQ, T, D]`.
    Query,
    /// The new keys or values: `[B, HK, T, D]`.
    NewKeyValue,
    /// The cache rows attended: `[B, HK, start + T, D]`.
    CacheRows,
}

/// Every block of the main chain (a chain in single-assignment form, renamed by `ssa`).
pub fn find(graph: &Graph, ssa: &Ssa) -> Vec<DecodeAttention> {
    let chain = &graph.chains[graph.main_chain];
    let uses = Uses::of(chain);
    let mut blocks: Vec<DecodeAttention> = Vec::new();
    for found in (0..chain.len()).filter_map(|at| match_block(graph, ssa, chain, &uses, at)) {
        // Blocks are matched in chain order; one that starts inside the previous one means the pattern is not
        // what this analysis understands: fuse nothing.
        if blocks
            .last()
            .is_some_and(|prev| found.heads_split <= prev.attention)
        {
            return Vec::new();
        }
        blocks.push(found);
    }
    blocks
}

/// Whether any op of any chain, other than the main chain's `block_ops`, reads or writes `tid`. The exports'
/// closing `IdCopy` of a buffer onto itself (the mutable-buffer write-back) keeps the same array and does not count.
fn touched_elsewhere(graph: &Graph, tid: Tid, block_ops: &[usize]) -> bool {
    graph.chains.iter().enumerate().any(|(c, chain)| {
        chain.iter().enumerate().any(|(i, op)| {
            if c == graph.main_chain && block_ops.contains(&i) {
                return false;
            }
            if matches!(op, Op::IdCopy { x, out } if x == out) {
                return false;
            }
            let mut touches = false;
            op.for_each_tid(|t| touches |= t == tid);
            touches
        })
    })
}

/// A split of one input along the heads axis (1) into two parts of literal sizes: `(x, parts, sizes)`.
fn two_part_head_split(op: &Op) -> Option<(Tid, [Tid; 2], [i64; 2])> {
    match op {
        Op::Split {
            x,
            outs,
            sizes,
            axis: 1,
        } => match (&outs[..], &sizes[..]) {
            (&[first, second], &[IntOrVid::Lit(a), IntOrVid::Lit(b)]) => {
                Some((*x, [first, second], [a, b]))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The readers of `tid` other than `SymSize` ops, and those `SymSize` ops.
fn readers_and_shape_reads(chain: &[Op], uses: &Uses, tid: Tid) -> (Vec<usize>, Vec<usize>) {
    uses.readers(tid)
        .iter()
        .partition(|&&r| !matches!(chain[r], Op::SymSize { .. }))
}

/// The single non-`SymSize` reader of `tid`; its `SymSize` readers go to `shape_reads` as `part`.
fn only_reader(
    chain: &[Op],
    uses: &Uses,
    tid: Tid,
    part: Part,
    shape_reads: &mut Vec<(usize, Part)>,
) -> Option<usize> {
    let (readers, shapes) = readers_and_shape_reads(chain, uses, tid);
    shape_reads.extend(shapes.into_iter().map(|r| (r, part)));
    match readers[..] {
        [reader] => Some(reader),
        _ => None,
    }
}

/// A cache write `SliceUpdate(buffer, update, axis 2, step 1)` at `at` writing a mutable buffer in place.
fn cache_write(graph: &Graph, op: &Op, update: Tid) -> Option<Tid> {
    match op {
        Op::SliceUpdate {
            dst,
            update: u,
            out,
            axis: IntOrVid::Lit(2),
            step: 1,
            ..
        } if *u == update
            && dst == out
            && graph.tid_class(*dst) == Some(TidClass::MutableBuffer) =>
        {
            Some(*dst)
        }
        _ => None,
    }
}

/// A cache read `Slice(buffer, axis 2, from 0, step 1)`: its output.
fn cache_read(op: &Op, buffer: Tid) -> Option<Tid> {
    match op {
        Op::Slice {
            x,
            out,
            axis: IntOrVid::Lit(2),
            start: IntOrVid::Lit(0),
            step: 1,
            ..
        } if *x == buffer => Some(*out),
        _ => None,
    }
}

/// Defined before op `at` (or never written in the chain: a constant, input or buffer).
fn defined_before(uses: &Uses, tid: Tid, at: usize) -> bool {
    uses.def(tid).is_none_or(|d| d < at)
}

fn match_block(
    graph: &Graph,
    ssa: &Ssa,
    chain: &[Op],
    uses: &Uses,
    at: usize,
) -> Option<DecodeAttention> {
    let (_, [qk, v], [qk_heads, kv_heads]) = two_part_head_split(&chain[at])?;
    let mut shape_reads = Vec::new();

    let rope = only_reader(chain, uses, qk, Part::QueryKey, &mut shape_reads)?;
    let Op::Rope {
        x,
        out: rotated,
        offset,
        freqs,
        ..
    } = &chain[rope]
    else {
        return None;
    };
    let VidOrTid::Tid(offset) = offset else {
        return None;
    };
    if *x != qk
        || !defined_before(uses, *offset, at)
        || !freqs.is_none_or(|f| defined_before(uses, f, at))
    {
        return None;
    }

    let qk_split = only_reader(chain, uses, *rotated, Part::QueryKey, &mut shape_reads)?;
    let (x, [q, k], [q_heads, k_heads]) = two_part_head_split(&chain[qk_split])?;
    if x != *rotated
        || q_heads <= 0
        || kv_heads <= 0
        || k_heads != kv_heads
        || q_heads + k_heads != qk_heads
        || q_heads % kv_heads != 0
    {
        return None;
    }

    let k_write = only_reader(chain, uses, k, Part::NewKeyValue, &mut shape_reads)?;
    let k_cache = cache_write(graph, &chain[k_write], k)?;
    let v_write = only_reader(chain, uses, v, Part::NewKeyValue, &mut shape_reads)?;
    let v_cache = cache_write(graph, &chain[v_write], v)?;
    let attention = only_reader(chain, uses, q, Part::Query, &mut shape_reads)?;
    let Op::Sdpa {
        q: query,
        k: keys,
        v: values,
        mask: None,
        ..
    } = &chain[attention]
    else {
        return None;
    };
    let k_read = uses.def(*keys)?;
    let v_read = uses.def(*values)?;
    if *query != q
        || k_cache == v_cache
        || cache_read(&chain[k_read], k_cache)? != *keys
        || cache_read(&chain[v_read], v_cache)? != *values
    {
        return None;
    }
    for rows in [*keys, *values] {
        if only_reader(chain, uses, rows, Part::CacheRows, &mut shape_reads)? != attention {
            return None;
        }
    }

    // Chain order: both writes after the q/k split, both reads after both writes, attention last.
    let writes = [k_write, v_write];
    let reads = [k_read, v_read];
    let in_order = at < rope
        && rope < qk_split
        && writes.iter().all(|&w| qk_split < w)
        && writes.iter().max()? < reads.iter().min()?
        && *reads.iter().max()? < attention;
    if !in_order {
        return None;
    }
    // Only the block touches the caches; the executor skips the ops that define its intermediates, so none may
    // be a slot the graph names (an output, a slot another chain reads).
    let block_ops = [k_write, v_write, k_read, v_read];
    if touched_elsewhere(graph, k_cache, &block_ops)
        || touched_elsewhere(graph, v_cache, &block_ops)
    {
        return None;
    }
    if ![qk, v, *rotated, q, k, *keys, *values]
        .iter()
        .all(|&t| ssa.is_renamed_temp(t))
    {
        return None;
    }
    // The executor answers shape reads from the block's pending state, which ends at the attention.
    if shape_reads.iter().any(|&(r, _)| r > attention) {
        return None;
    }
    shape_reads.sort_unstable_by_key(|&(r, _)| r);
    Some(DecodeAttention {
        heads_split: at,
        rope,
        qk_split,
        k_write,
        v_write,
        k_read,
        v_read,
        attention,
        q_heads: i32::try_from(q_heads).ok()?,
        kv_heads: i32::try_from(kv_heads).ok()?,
        shape_reads,
    })
}
