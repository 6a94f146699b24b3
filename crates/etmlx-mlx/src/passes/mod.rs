//! Graph passes: IR → IR rewrites between `payload::parse` and execution that cut the MLX nodes each
//! execute builds. Know nothing of MLX: they see the IR and, through [`ConstantValues`], the value of a
//! scalar constant.
//!
//! On a GPU every MLX node costs ~2.5-3.5 µs of host time and a batch-1 decode step of a 1B model is
//! bound by it (docs/benchmarks.md, "Where decode time goes"). The passes, in the order they run:
//! 1. [`rope`]: HF's decomposed rotary embedding → one `Rope` node per rotated tensor;
//! 2. [`fuse_projections`]: q/k/v and gate/up products of one input → one product and a split (weights
//!    concatenated once at load by `exec::fold`);
//! 3. [`merge_heads`]: a fused q/k/v product viewed as heads once, then split along the heads;
//!    then [`pair_ropes`]: the q and k parts of that split rotated by one rope;
//! 4. [`views`]: chained reshapes / transposes / expand-dims merged;
//! 5. [`batched_matmul`]: rank-3 × 2-D products without MLX's flatten/unflatten around them;
//!
//! then dead-op elimination, [`decode_attention`] (an analysis: the attention blocks the executor may run as
//! one kernel) and slot allocation. Each pass is switched by an [`PassOptions`] field (an
//! MLXBackend option), so its effect can be measured A/B.

pub mod batched_matmul;
pub mod decode_attention;
pub mod fuse_projections;
pub mod infer;
pub mod merge_heads;
pub mod pair_ropes;
pub mod residual_norm;
pub mod rope;
pub mod ssa;
pub mod views;

use crate::ir::{Graph, Tid};

/// Which passes run. All on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassOptions {
    pub fuse_rope: bool,
    pub fuse_projections: bool,
    /// Runs only after `fuse_projections` (it rewrites the splits that pass writes).
    pub merge_heads: bool,
    /// Runs after `merge_heads`, on the ropes `fuse_rope` wrote (or the export had).
    pub pair_ropes: bool,
    pub simplify_views: bool,
    pub batched_matmul: bool,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions::all(true)
    }
}

impl PassOptions {
    pub fn all(on: bool) -> PassOptions {
        PassOptions {
            fuse_rope: on,
            fuse_projections: on,
            merge_heads: on,
            pair_ropes: on,
            simplify_views: on,
            batched_matmul: on,
        }
    }

    fn any(&self) -> bool {
        self.fuse_rope
            || self.fuse_projections
            || self.pair_ropes
            || self.simplify_views
            || self.batched_matmul
    }
}

/// The value of a constant, for rewrites that depend on it (HF's rope `attention_scaling` must be 1).
pub trait ConstantValues {
    /// The value of a one-element constant as loaded from the file, if it has one element.
    fn scalar(&self, tid: Tid) -> Option<f64>;
}

/// No constant values known: value-dependent rewrites do not fire.
pub struct NoConstantValues;

impl ConstantValues for NoConstantValues {
    fn scalar(&self, _: Tid) -> Option<f64> {
        None
    }
}

/// What the passes did to a graph.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Main-chain ops before and after.
    pub ops_before: usize,
    pub ops_after: usize,
    /// Rope nodes written.
    pub ropes: usize,
    /// Projections merged into fused products.
    pub fused_projections: usize,
    /// Fused products viewed as heads once.
    pub merged_heads: usize,
    /// Rope pairs (q and k) rotated as one.
    pub paired_ropes: usize,
    /// Chained views merged.
    pub simplified_views: usize,
    /// Products rewritten as batched.
    pub batched_matmuls: usize,
    /// Ops removed as dead after the rewrites.
    pub dead_ops: usize,
    /// Inputs the rewritten graph assumes hold consecutive integers (positions), which the backend
    /// checks on every execute.
    pub consecutive_inputs: Vec<Tid>,
    /// The attention blocks found in the rewritten chain (see [`decode_attention`]).
    pub decode_attention: Vec<decode_attention::DecodeAttention>,
}

/// Runs the enabled passes over the main chain. A graph whose main chain runs nested chains (If, Scan)
/// is left as it is.
pub fn run(graph: &mut Graph, options: &PassOptions, constants: &dyn ConstantValues) -> PassReport {
    let ops_before = graph.chains.get(graph.main_chain).map_or(0, Vec::len);
    let mut report = PassReport {
        ops_before,
        ops_after: ops_before,
        ..PassReport::default()
    };
    if !options.any() {
        return report;
    }
    let original = graph.clone();
    let Some(ssa) = ssa::rename(graph) else {
        return report;
    };
    if options.fuse_rope {
        let fused = rope::run(graph, constants);
        report.ropes = fused.fused;
        report.consecutive_inputs = fused.position_inputs;
    }
    if options.fuse_projections {
        report.fused_projections = fuse_projections::run(graph);
        if options.merge_heads {
            report.merged_heads = merge_heads::run(graph);
        }
    }
    if options.pair_ropes {
        // The ops the earlier rewrites left dead would count as extra readers of the parts.
        report.dead_ops += ssa::eliminate_dead_ops(graph, &ssa);
        report.paired_ropes = pair_ropes::run(graph);
    }
    if options.simplify_views {
        report.simplified_views = views::run(graph, &ssa);
    }
    if options.batched_matmul {
        report.batched_matmuls = batched_matmul::run(graph);
    }
    report.dead_ops += ssa::eliminate_dead_ops(graph, &ssa);
    let rewrites = report.ropes
        + report.fused_projections
        + report.paired_ropes
        + report.simplified_views
        + report.batched_matmuls;
    if rewrites == 0 {
        // Nothing matched: keep the exporter's slots exactly.
        *graph = original;
        return report;
    }
    report.decode_attention = decode_attention::find(graph, &ssa);
    ssa::allocate_slots(graph, &ssa);
    report.ops_after = graph.chains[graph.main_chain].len();
    report
}
