//! What the rewrites need to know about a value without running the graph: its rank and its dtype, when
//! they follow from the file (tensor metadata, literal shapes) through a small set of ops. Anything else
//! is `None`, and a rewrite that needs it does not fire.

use std::collections::{HashMap, HashSet};

use super::ssa::Uses;
use crate::ir::{Graph, IntOrVidOrTid, Op, Tid, TidClass};

/// ExecuTorch ScalarType code of float32.
pub const FLOAT32: i8 = 6;

/// Rank and dtype queries over a main chain in single-assignment form, computed in one forward walk.
pub struct Infer<'a> {
    graph: &'a Graph,
    chain: &'a [Op],
    uses: &'a Uses,
    /// Constants the init chain overwrites: their metadata need not describe what they hold.
    init_written: HashSet<Tid>,
    ranks: HashMap<Tid, Option<usize>>,
    dtypes: HashMap<Tid, Option<i8>>,
}

impl<'a> Infer<'a> {
    pub fn new(graph: &'a Graph, chain: &'a [Op], uses: &'a Uses) -> Infer<'a> {
        let mut init_written = HashSet::new();
        if let Some(init) = graph.init_chain.and_then(|c| graph.chains.get(c)) {
            init.iter()
                .for_each(|op| op.for_each_output_tid(|t| _ = init_written.insert(t)));
        }
        let mut infer = Infer {
            graph,
            chain,
            uses,
            init_written,
            ranks: HashMap::new(),
            dtypes: HashMap::new(),
        };
        let mut written: HashSet<Tid> = HashSet::new();
        for op in chain {
            let (rank, dtype) = (infer.op_rank(op), infer.op_dtype(op));
            op.for_each_output_tid(|t| {
                // A slot written twice (a pinned temp, an output) has no single answer.
                let twice = !written.insert(t);
                infer.ranks.insert(t, rank.filter(|_| !twice));
                infer.dtypes.insert(t, dtype.filter(|_| !twice));
            });
        }
        infer
    }

    /// The main-chain ops that read `tid`.
    pub fn readers(&self, tid: Tid) -> &'a [usize] {
        self.uses.readers(tid)
    }

    /// The op that writes `tid` in the main chain.
    pub fn def(&self, tid: Tid) -> Option<&'a Op> {
        self.uses.def(tid).map(|index| &self.chain[index])
    }

    pub fn class(&self, tid: Tid) -> Option<TidClass> {
        self.graph.tid_class(tid)
    }

    /// A constant whose value is the file's (the init chain does not overwrite it).
    pub fn is_file_constant(&self, tid: Tid) -> bool {
        self.graph.tid_class(tid) == Some(TidClass::Constant) && !self.init_written.contains(&tid)
    }

    /// The static shape the file declares for a value read as it is (constants, inputs, buffers).
    pub fn declared_shape(&self, tid: Tid) -> Option<Vec<i32>> {
        if self.uses.def(tid).is_some() || self.init_written.contains(&tid) {
            return None;
        }
        self.graph.meta(tid)?.static_shape()
    }

    pub fn rank(&self, tid: Tid) -> Option<usize> {
        match self.ranks.get(&tid) {
            Some(known) => *known,
            None if self.init_written.contains(&tid) => None,
            None => self.graph.meta(tid).map(|meta| meta.shape.len()),
        }
    }

    /// The ExecuTorch ScalarType code of a value.
    pub fn dtype(&self, tid: Tid) -> Option<i8> {
        match self.dtypes.get(&tid) {
            Some(known) => *known,
            None if self.init_written.contains(&tid) => None,
            None => self.graph.meta(tid).map(|meta| meta.scalar_type),
        }
    }

    /// The rank of what `op` writes, from what is known of its inputs.
    fn op_rank(&self, op: &Op) -> Option<usize> {
        let rank = |t: Tid| self.rank(t);
        if let Some(x) = like_its_input(op) {
            return rank(x);
        }
        match op {
            Op::Transpose { perm, .. } => Some(perm.len()),
            Op::Reshape { shape, .. } | Op::BroadcastTo { shape, .. } => Some(shape.len()),
            Op::ExpandDims { x, .. } => rank(*x).map(|r| r + 1),
            Op::Take { x, index, .. } => {
                let index_rank = match index {
                    IntOrVidOrTid::Tid(t) => rank(*t)?,
                    _ => 0,
                };
                (rank(*x)? + index_rank).checked_sub(1)
            }
            Op::Addmm { mat1, mat2, .. } => {
                let (a, b) = (rank(*mat1)?, rank(*mat2)?);
                (a >= 2 && b >= 2).then_some(a.max(b))
            }
            Op::Add { a, b, .. }
            | Op::Multiply { a, b, .. }
            | Op::Subtract { a, b, .. }
            | Op::Divide { a, b, .. } => Some(rank(*a)?.max(rank(*b)?)),
            Op::RMSNorm { x, .. }
            | Op::LayerNorm { x, .. }
            | Op::AsType { x, .. }
            | Op::Softmax { x, .. } => rank(*x),
            Op::Concatenate { tensors, .. } => rank(*tensors.first()?),
            Op::Sdpa { q, .. } | Op::UpdateAndAttend { q, .. } => rank(*q),
            Op::SliceUpdate { dst, .. } | Op::IndexCopy { dst, .. } => rank(*dst),
            _ => None,
        }
    }

    /// The dtype of what `op` writes, from what is known of its inputs.
    fn op_dtype(&self, op: &Op) -> Option<i8> {
        let dtype = |t: Tid| self.dtype(t);
        let same = |a: Tid, b: Tid| {
            let (x, y) = (dtype(a)?, dtype(b)?);
            (x == y).then_some(x)
        };
        if let Some(x) = like_its_input(op) {
            return dtype(x);
        }
        match op {
            Op::AsType { scalar_type, .. } => Some(*scalar_type),
            Op::Addmm { mat1, mat2, .. } => same(*mat1, *mat2),
            Op::Add { a, b, .. }
            | Op::Multiply { a, b, .. }
            | Op::Subtract { a, b, .. }
            | Op::Divide { a, b, .. } => same(*a, *b),
            Op::Transpose { x, .. }
            | Op::Reshape { x, .. }
            | Op::BroadcastTo { x, .. }
            | Op::ExpandDims { x, .. }
            | Op::Take { x, .. } => dtype(*x),
            Op::RMSNorm { x, weight, .. } => match weight {
                Some(w) => same(*x, *w),
                None => dtype(*x),
            },
            Op::Concatenate { tensors, .. } => {
                let first = dtype(*tensors.first()?)?;
                tensors
                    .iter()
                    .all(|t| dtype(*t) == Some(first))
                    .then_some(first)
            }
            Op::Sdpa { q, .. } => dtype(*q),
            Op::UpdateAndAttend { q, out_dtype, .. } => out_dtype.or_else(|| dtype(*q)),
            Op::SliceUpdate { dst, .. } | Op::IndexCopy { dst, .. } => dtype(*dst),
            _ => None,
        }
    }
}

/// The input `x` of an op whose output has `x`'s rank and dtype (element-wise maps, slices, splits, a rope, a
/// quantized product by `[N, K]` weights).
fn like_its_input(op: &Op) -> Option<Tid> {
    match op {
        Op::Split { x, .. }
        | Op::Slice { x, .. }
        | Op::QuantizedMatmul { x, .. }
        | Op::Rope { x, .. }
        | Op::Contiguous { x, .. }
        | Op::IdCopy { x, .. }
        | Op::Neg { x, .. }
        | Op::Silu { x, .. }
        | Op::Sigmoid { x, .. }
        | Op::Gelu { x, .. }
        | Op::Cos { x, .. }
        | Op::Sin { x, .. }
        | Op::Reciprocal { x, .. } => Some(*x),
        _ => None,
    }
}
