//! A layer's attention block of a one-token decode step as one MLX node (`mlx::fast::decode_attention`), where
//! the unfused block is eight (two head splits, a rope, two KV-cache writes, two cache views, attention). On a
//! GPU each node costs microseconds of host time, and a batch-1 decode step of a ~1B model is bound by that
//! (docs/benchmarks.md).
//!
//! [`crate::passes::decode_attention`] finds the blocks in the IR; here [`step`] runs before each main-chain op
//! the blocks cover. At a block's first op (the head split) it decides, from the arrays in hand, whether this
//! execute fuses the block: one token (T = 1), a supported dtype and head size, the rope over the whole head,
//! and on CUDA caches already evaluated and row-contiguous. If so the block's ops are skipped as they come:
//! the cache writes and reads only have their positions checked (one row written at `start`, rows `0..=start`
//! read: anything else is an error, not a silent fallback), `SymSize` reads of the skipped tensors are
//! answered from the known shapes, and the attention op runs the block. Otherwise every op runs as usual.
//!
//! On CUDA the block is the custom kernel, which writes the new k and v rows through the cache arrays: the
//! cache slots keep the same arrays. Elsewhere (a CPU forced to fuse, for testing this bookkeeping) the
//! block is built from the same MLX ops the unfused block uses, so its results are identical to them.

use mlx::fast::{self, RopeOffset};
use mlx::ops;
use mlx::{Array, Dtype};

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{Op, Tid, VidOrTid};
use crate::passes::decode_attention::{DecodeAttention, Part};

const OP: &str = "decode attention";

/// The most cache rows a fused block attends over. The kernel gives each query head one block of threads that
/// walks the rows itself; MLX's own attention splits long rows across blocks (and cuDNN takes over at 256 keys
/// on CUDA), so past a few thousand rows the unfused block is the faster one. Measured on an H200 (W1, bf16):
/// at 1025 and 3001 rows the fused step is still 1.5-1.7x the unfused (docs/benchmarks.md).
pub const MAX_FUSED_ROWS: i64 = 4096;

/// What an op is to the block it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    HeadsSplit,
    /// The rope and the q/k split: nothing to check.
    Skip,
    CacheWrite,
    CacheRead,
    Attention,
    ShapeRead(Part),
}

/// A block, with what its ops say read once from the (slot-allocated) main chain.
#[derive(Debug)]
struct Block {
    found: DecodeAttention,
    heads: Tid,
    offset: Tid,
    freqs: Option<Tid>,
    rope_dims: i32,
    traditional: bool,
    base: f32,
    rope_scale: f32,
    k_cache: Tid,
    v_cache: Tid,
}

impl Block {
    /// `None` when the ops at the found indices are not the block's kinds (a plan for another chain).
    fn read(found: DecodeAttention, chain: &[Op]) -> Option<Block> {
        let (
            Op::Split { x: heads, .. },
            Op::Rope {
                dims,
                offset: VidOrTid::Tid(offset),
                freqs,
                traditional,
                base,
                scale,
                ..
            },
            Op::SliceUpdate { dst: k_cache, .. },
            Op::SliceUpdate { dst: v_cache, .. },
        ) = (
            chain.get(found.heads_split)?,
            chain.get(found.rope)?,
            chain.get(found.k_write)?,
            chain.get(found.v_write)?,
        )
        else {
            return None;
        };
        Some(Block {
            heads: *heads,
            offset: *offset,
            freqs: *freqs,
            rope_dims: *dims,
            traditional: *traditional,
            base: *base,
            rope_scale: *scale,
            k_cache: *k_cache,
            v_cache: *v_cache,
            found,
        })
    }
}

/// The blocks of one graph and, per main-chain op, its role in one of them.
#[derive(Debug, Default)]
pub struct Plan {
    blocks: Vec<Block>,
    roles: Vec<Option<(usize, Role)>>,
}

impl Plan {
    /// No blocks (graphs the passes did not rewrite).
    pub const EMPTY: Plan = Plan {
        blocks: Vec::new(),
        roles: Vec::new(),
    };

    pub fn new(found: Vec<DecodeAttention>, main_chain: &[Op]) -> Plan {
        let blocks: Vec<Block> = found
            .into_iter()
            .filter_map(|f| Block::read(f, main_chain))
            .collect();
        let mut roles = vec![None; main_chain.len()];
        for (b, block) in blocks.iter().map(|b| &b.found).enumerate() {
            let mut assign = |index: usize, role: Role| {
                if let Some(slot) = roles.get_mut(index) {
                    *slot = Some((b, role));
                }
            };
            assign(block.heads_split, Role::HeadsSplit);
            assign(block.rope, Role::Skip);
            assign(block.qk_split, Role::Skip);
            assign(block.k_write, Role::CacheWrite);
            assign(block.v_write, Role::CacheWrite);
            assign(block.k_read, Role::CacheRead);
            assign(block.v_read, Role::CacheRead);
            assign(block.attention, Role::Attention);
            for &(index, part) in &block.shape_reads {
                assign(index, Role::ShapeRead(part));
            }
        }
        Plan { blocks, roles }
    }

    /// The blocks as the analysis found them (for another handle over the same graph).
    pub fn found(&self) -> Vec<DecodeAttention> {
        self.blocks.iter().map(|b| b.found.clone()).collect()
    }
}

/// A block this execute is fusing, from its head split to its attention.
pub struct Pending {
    block: usize,
    heads: Array,
    offset: Array,
    freqs: Option<Array>,
    batch: i32,
    head_dim: i32,
    cache_len: i32,
    /// The cache row written, once the first write has been reached.
    start: Option<i32>,
}

/// Handles main-chain op `index` when it belongs to a block: returns true when the op was handled here (skipped,
/// checked or run fused), false when it must be dispatched as usual.
pub fn step(cx: &mut Ctx<'_>, index: usize, op: &Op) -> Result<bool, ExecError> {
    let Some(&Some((block, role))) = cx.decode_attention.roles.get(index) else {
        return Ok(false);
    };
    if role == Role::HeadsSplit {
        cx.transient.decode_attention = if cx.fuses_decode_attention() {
            begin(cx, block)?
        } else {
            None
        };
        return Ok(cx.transient.decode_attention.is_some());
    }
    let fusing = matches!(&cx.transient.decode_attention, Some(p) if p.block == block);
    if !fusing {
        return Ok(false);
    }
    match (role, op) {
        (Role::Skip, _) => {}
        (Role::CacheWrite, Op::SliceUpdate { start, stop, .. }) => {
            let (start, stop) = (cx.int(*start)?, cx.int(*stop)?);
            let pending = pending_mut(cx)?;
            if stop != start + 1 || start < 0 || start >= pending.cache_len {
                return Err(ExecError::invalid(
                    OP,
                    format!(
                        "a one-token step writes cache rows {start}..{stop} of {}",
                        pending.cache_len
                    ),
                ));
            }
            match pending.start {
                None => pending.start = Some(start),
                Some(row) if row == start => {}
                Some(row) => {
                    return Err(ExecError::invalid(
                        OP,
                        format!("k and v written at different rows ({row}, {start})"),
                    ))
                }
            }
        }
        (Role::CacheRead, Op::Slice { stop, .. }) => {
            let stop = cx.int(*stop)?;
            let written = pending_mut(cx)?.start;
            if written.map(|row| row + 1) != Some(stop) {
                return Err(ExecError::invalid(
                    OP,
                    format!("attention over cache rows 0..{stop} after writing row {written:?}"),
                ));
            }
        }
        (Role::ShapeRead(part), Op::SymSize { dim, out, .. }) => {
            let shape = part_shape(cx.decode_attention, pending_mut(cx)?, part)?;
            let axis = if *dim < 0 { *dim + 4 } else { *dim };
            let size = usize::try_from(axis)
                .ok()
                .and_then(|a| shape.get(a).copied())
                .ok_or_else(|| {
                    ExecError::invalid(OP, format!("SymSize of axis {dim} of a rank-4 tensor"))
                })?;
            cx.set_value(*out, super::Value::Int(size))?;
        }
        (
            Role::Attention,
            Op::Sdpa {
                out, scale, causal, ..
            },
        ) => {
            let pending = cx
                .transient
                .decode_attention
                .take()
                .ok_or_else(|| ExecError::invalid(OP, "no block in progress"))?;
            attend(cx, pending, *out, *scale, *causal)?;
        }
        (role, op) => {
            return Err(ExecError::invalid(
                OP,
                format!("op {} does not fit its role {role:?}", op.name()),
            ))
        }
    }
    Ok(true)
}

fn pending_mut<'c>(cx: &'c mut Ctx<'_>) -> Result<&'c mut Pending, ExecError> {
    cx.transient
        .decode_attention
        .as_mut()
        .ok_or_else(|| ExecError::invalid(OP, "no block in progress"))
}

fn part_shape(plan: &Plan, pending: &Pending, part: Part) -> Result<[i32; 4], ExecError> {
    let block = &plan.blocks[pending.block].found;
    let (b, d) = (pending.batch, pending.head_dim);
    Ok(match part {
        Part::QueryKey => [b, block.q_heads + block.kv_heads, 1, d],
        Part::Query => [b, block.q_heads, 1, d],
        Part::NewKeyValue => [b, block.kv_heads, 1, d],
        Part::CacheRows => {
            let row = pending
                .start
                .ok_or_else(|| ExecError::invalid(OP, "cache rows read before the write"))?;
            [b, block.kv_heads, row + 1, d]
        }
    })
}

/// The block's operands, or `None` when this execute runs the block unfused.
fn begin(cx: &Ctx<'_>, block_index: usize) -> Result<Option<Pending>, ExecError> {
    let block = &cx.decode_attention.blocks[block_index];
    let (q_heads, kv_heads) = (block.found.q_heads, block.found.kv_heads);
    let heads = cx.get(block.heads)?;
    let [batch, all_heads, 1, head_dim] = heads.shape()[..] else {
        return Ok(None);
    };
    let dtype = heads.dtype();
    let float = matches!(dtype, Dtype::Bfloat16 | Dtype::Float16 | Dtype::Float32);
    let vector = 16 / heads.itemsize() as i32;
    if !float
        || all_heads != q_heads + 2 * kv_heads
        || block.rope_dims != head_dim
        || head_dim % 2 != 0
        || head_dim % vector != 0
        || head_dim > 256
    {
        return Ok(None);
    }
    let offset = cx.get(block.offset)?;
    if offset.dtype() != Dtype::Int32 || offset.size() != 1 {
        return Ok(None);
    }
    let freqs = cx.get_opt(block.freqs)?;
    if freqs.is_some_and(|f| f.dtype() != Dtype::Float32 || f.size() != head_dim as usize / 2) {
        return Ok(None);
    }
    let (k_cache, v_cache) = (cx.get(block.k_cache)?, cx.get(block.v_cache)?);
    let cache_shape = k_cache.shape();
    let cache_fits = |c: &Array| {
        c.shape() == cache_shape
            && c.dtype() == dtype
            // The kernel writes through these buffers and loads their rows 16 bytes at a time.
            && (!cx.on_cuda() || c.has_dense_aligned_data())
    };
    let [_, _, cache_len, _] = cache_shape[..] else {
        return Ok(None);
    };
    if cache_shape != [batch, kv_heads, cache_len, head_dim]
        || !cache_fits(k_cache)
        || !cache_fits(v_cache)
    {
        return Ok(None);
    }
    let position = cx
        .host_ints(block.offset)
        .and_then(|h| h.values.first().copied());
    if rows_bound(position, cache_len) > MAX_FUSED_ROWS {
        return Ok(None);
    }
    Ok(Some(Pending {
        block: block_index,
        heads: heads.clone(),
        offset: offset.clone(),
        freqs: freqs.cloned(),
        batch,
        head_dim,
        cache_len,
        start: None,
    }))
}

/// The most cache rows a step attends over: the position + 1 when the host knows the rope's position (the
/// official exports rotate at the cache row they write), else the whole cache.
fn rows_bound(host_position: Option<i64>, cache_len: i32) -> i64 {
    host_position.map_or(i64::from(cache_len), |p| p.saturating_add(1))
}

/// Runs a block whose ops have all been reached: writes `out` and the caches.
fn attend(
    cx: &mut Ctx<'_>,
    pending: Pending,
    out: Tid,
    attention_scale: f32,
    causal: bool,
) -> Result<(), ExecError> {
    let block = &cx.decode_attention.blocks[pending.block];
    let (k_cache, v_cache) = (block.k_cache, block.v_cache);
    let start = pending
        .start
        .ok_or_else(|| ExecError::invalid(OP, "attention before the cache writes"))?;
    let s = cx.s();
    if cx.on_cuda() {
        let start = cx.transient.start_array(start)?;
        let params = fast::DecodeAttention {
            q_heads: block.found.q_heads,
            kv_heads: block.found.kv_heads,
            traditional: block.traditional,
            rope_scale: block.rope_scale,
            base: block.base,
            attention_scale,
        };
        let result = fast::decode_attention(
            &pending.heads,
            cx.get(k_cache)?,
            cx.get(v_cache)?,
            &pending.offset,
            &start,
            pending.freqs.as_ref(),
            &params,
            s,
        )?;
        // The caches were written through: their slots keep the same arrays.
        return cx.set(out, result);
    }
    // The unfused block's MLX ops, in its order.
    let (b, hq, hk, d) = (
        pending.batch,
        block.found.q_heads,
        block.found.kv_heads,
        pending.head_dim,
    );
    let heads_part = |x: &Array, from: i32, to: i32| {
        ops::slice(x, &[0, from, 0, 0], &[b, to, 1, d], &[1, 1, 1, 1], s)
    };
    let base = pending.freqs.is_none().then_some(block.base);
    let rotated = fast::rope(
        &heads_part(&pending.heads, 0, hq + hk)?,
        d,
        block.traditional,
        base,
        block.rope_scale,
        RopeOffset::Array(&pending.offset),
        pending.freqs.as_ref(),
        s,
    )?;
    let (q, k) = (
        heads_part(&rotated, 0, hq)?,
        heads_part(&rotated, hq, hq + hk)?,
    );
    let v = heads_part(&pending.heads, hq + hk, hq + 2 * hk)?;
    let mut rows = Vec::with_capacity(2);
    for (cache, new) in [(k_cache, k), (v_cache, v)] {
        // Taken out of the slot so MLX can update the buffer in place (put back if the update fails).
        let old = cx.take(cache)?;
        let updated = ops::slice_update(
            &old,
            &new,
            &[0, 0, start, 0],
            &[b, hk, start + 1, d],
            &[1, 1, 1, 1],
            s,
        );
        super::index::finish_update(cx, cache, cache, old, updated.map_err(Into::into))?;
        rows.push(ops::slice(
            cx.get(cache)?,
            &[0, 0, 0, 0],
            &[b, hk, start + 1, d],
            &[1, 1, 1, 1],
            s,
        )?);
    }
    let mode = if causal { "causal" } else { "" };
    let result = fast::scaled_dot_product_attention(
        &q,
        &rows[0],
        &rows[1],
        attention_scale,
        mode,
        None,
        None,
        s,
    )?;
    cx.set(out, result)
}

#[cfg(test)]
mod tests {
    use super::{rows_bound, MAX_FUSED_ROWS};

    #[test]
    fn long_attention_spans_are_left_to_mlx() {
        // A 128k-context export fuses its early steps (position known on the host) but not its late ones.
        assert!(rows_bound(Some(100), 131_072) <= MAX_FUSED_ROWS);
        assert!(rows_bound(Some(MAX_FUSED_ROWS - 1), 131_072) <= MAX_FUSED_ROWS);
        assert!(rows_bound(Some(MAX_FUSED_ROWS), 131_072) > MAX_FUSED_ROWS);
        // Without a host position the cache's length bounds the rows.
        assert_eq!(rows_bound(None, 4096), 4096);
        assert!(rows_bound(None, 8192) > MAX_FUSED_ROWS);
    }
}
