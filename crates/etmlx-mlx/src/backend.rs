//! `MLXBackend`: the runtime's [`Backend`] for MLX payloads — init (constants, mutable buffers,
//! init chain) and execute (bind inputs, interpret the main chain, evaluate, copy outputs back).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use etmlx_runtime::{
    Backend, BackendError, BackendInitContext, DelegateArgs, DelegateHandle, OptionValue,
};
use mlx::{Array, DeviceType, Stream};

use crate::cache::{self, SequenceCache};
use crate::error::ExecError;
use crate::exec::{self, Ctx, Layout, Persistent, Transient};
use crate::ir::{Graph, SlotKind, Tid};
use crate::passes::{self, PassOptions};
use crate::weights::{self, StateLease, WeightLease};
use crate::{dtype, payload};

mod device;
pub use device::{lock_graph, DeviceInput, GraphLock};

/// The delegate id the official exporter writes.
pub const BACKEND_ID: &str = "MLXBackend";

/// Backend option keys (set with `BackendOptions::set("MLXBackend", key, value)`).
pub mod option_keys {
    /// Bool: run `MetalKernel` nodes (GPU source code embedded in the file). Off by default.
    pub const ALLOW_CUSTOM_KERNELS: &str = "allow_custom_kernels";
    /// Str: "gpu" or "cpu". Default: the GPU when MLX has one, else the CPU.
    pub const DEVICE: &str = "device";
    /// Int: call MLX `clear_cache()` every N executes (0 = never), as the reference runtime.
    pub const CLEAR_CACHE_INTERVAL: &str = "clear_cache_interval";
    /// Str: key of an off-graph KV cache installed with [`crate::install_sequence_cache`].
    pub const CACHE_KEY: &str = "cache_key";
    /// Bool: a constant whose named-data key is missing (a `.pte` stripped of its weights) is filled with
    /// deterministic pseudo-random values of its declared shape and dtype instead of failing. For benchmarks
    /// only: the outputs are meaningless. Off by default.
    pub const SYNTHETIC_WEIGHTS: &str = "synthetic_weights";
    /// Bool: compute views of constants (the transposed weights of `addmm`, ...) once at load instead of
    /// on every execute (see `exec::fold`). On by default; off only to measure what it saves.
    pub const FOLD_CONSTANT_VIEWS: &str = "fold_constant_views";
    /// Bool: a rank-3 tensor output [B, T, X] with T > 1 is returned as its last position [B, 1, X]. For LLM
    /// runners that only read the last token's logits of an export whose `forward` returns every position
    /// (HF exports): the other T - 1 rows then never cross to the host (at T = 2048 and a 128k vocabulary,
    /// 525 MB of bf16, most of a prefill's time). Off by default: it changes the method's output shape.
    pub const LAST_POSITION_OUTPUTS: &str = "last_position_outputs";
    /// Bool: graph pass (`crate::passes::rope`) turning HF's decomposed rotary embedding into MLX's fused
    /// `fast::rope`. Default: on for the GPU, off for the CPU (MLX's CPU backend has no fused rope kernel and
    /// decomposes it again, into more nodes than the export had).
    pub const FUSE_ROPE: &str = "fuse_rope";
    /// Bool: graph pass merging projections of one input (q/k/v, gate/up) into one product over weights
    /// concatenated at load. On by default; needs `fold_constant_views` (else it stays off).
    pub const FUSE_PROJECTIONS: &str = "fuse_projections";
    /// Bool: graph pass viewing a fused q/k/v product as heads once and splitting the heads (after
    /// `fuse_projections`). On by default.
    pub const MERGE_HEADS: &str = "merge_heads";
    /// Bool: graph pass rotating the q and k parts of one head split with one rope instead of two (after
    /// `merge_heads`). On by default.
    pub const PAIR_ROPES: &str = "pair_ropes";
    /// Bool: graph pass merging chained reshapes, transposes and expand-dims. On by default.
    pub const SIMPLIFY_VIEWS: &str = "simplify_views";
    /// Bool: graph pass running rank-3 × 2-D products batched, without MLX's flatten/unflatten. On by default.
    pub const BATCHED_MATMUL: &str = "batched_matmul";
    /// Bool: SiLU and the multiply of a gated MLP (`silu(gate) * up`) run as one kernel compiled with
    /// `mx::compile` (`exec::elementwise::silu`): one MLX node instead of three. Default: on for the GPU,
    /// where every node costs microseconds of host time; off for the CPU, where MLX compiles fused kernels
    /// with the system C++ compiler at run time.
    pub const COMPILE_SWIGLU: &str = "compile_swiglu";
    /// Bool: run each attention block of a one-token step (rope, KV-cache writes, attention) as one kernel
    /// (`exec::decode_attention`). Default: on with MLX's CUDA backend, the only one with that kernel; forced on
    /// elsewhere the block is built from the unfused block's MLX ops (for testing).
    pub const FUSE_DECODE_ATTENTION: &str = "fuse_decode_attention";
    /// Bool: run a residual add and the RMS norm of its sum as one kernel (`exec::residual_norm`; MLX's CUDA
    /// backend only has that kernel, elsewhere the pair is built from the unfused add and norm, for testing).
    /// Off by default: on an H200 the custom-kernel node costs about what the two nodes it replaces cost, and
    /// seven interleaved A/B pairs showed no gain (docs/benchmarks.md).
    pub const FUSE_RESIDUAL_NORM: &str = "fuse_residual_norm";
    /// Int: submit a large call's graph in stages (`exec::stage`), each once the matrix products, attentions
    /// and convolutions since the last one (with at least 16 rows: a prefill, not a decode step) amount to this
    /// many MFLOP, so the device starts while the host builds the rest. Default: 48000 on CUDA (measured there),
    /// 0 (one submission after the whole chain) elsewhere.
    pub const STAGE_MFLOP: &str = "stage_mflop";
    /// Int: stage after every N-th such product instead of by work (for A/B runs and tests). 0, the default,
    /// leaves it to `stage_mflop`.
    pub const SUBMIT_EVERY: &str = "submit_every";
    /// Bool: accumulate host-side timings of every execute (see [`super::take_exec_timings`]). Off by default.
    pub const PROFILE: &str = "profile";
}

/// Where an execute's host time goes, summed over executes while the `profile` option is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecTimings {
    pub executes: u64,
    /// Waiting for the MLX lock, copying inputs into MLX and interpreting the chain (building the lazy graph).
    pub build_ns: u64,
    /// `async_eval` of the outputs: MLX schedules the graph and encodes/launches its kernels.
    pub submit_ns: u64,
    /// Waiting for the results and copying them into the runtime's output tensors.
    pub wait_ns: u64,
    /// Counting the primitives below (a walk of the graph): inside a call's wall time, outside every part above.
    pub count_ns: u64,
    /// Staged submissions within the executes (see `exec::stage`); their time is in `submit_ns`.
    pub stages: u64,
    /// MLX graph nodes submitted, per primitive kind, summed over executes (what `submit` encodes and
    /// launches). Counted just before `async_eval`, in `count_ns`.
    pub primitives: BTreeMap<String, u64>,
}

impl ExecTimings {
    /// No executes (`Default` in a `const` context, for the statics below).
    const EMPTY: ExecTimings = ExecTimings {
        executes: 0,
        build_ns: 0,
        submit_ns: 0,
        wait_ns: 0,
        count_ns: 0,
        stages: 0,
        primitives: BTreeMap::new(),
    };

    /// Adds `other`'s executes to these.
    pub fn merge(&mut self, other: ExecTimings) {
        self.executes += other.executes;
        self.build_ns += other.build_ns;
        self.submit_ns += other.submit_ns;
        self.wait_ns += other.wait_ns;
        self.count_ns += other.count_ns;
        self.stages += other.stages;
        for (name, count) in other.primitives {
            *self.primitives.entry(name).or_default() += count;
        }
    }

    /// One submission's part: its submit and count times and its primitives.
    fn submitted(s: Submission) -> ExecTimings {
        ExecTimings {
            submit_ns: s.submit_ns,
            count_ns: s.count_ns,
            primitives: s
                .primitives
                .into_iter()
                .map(|(name, n)| (name, n as u64))
                .collect(),
            ..ExecTimings::EMPTY
        }
    }
}

static EXEC_TIMINGS: Mutex<ExecTimings> = Mutex::new(ExecTimings::EMPTY);

/// Staged submissions since the last recorded execute (stages, their submit and count times, the primitives
/// they submitted). They run inside a call's graph building; [`record_exec_timings`] adds them to the call's
/// record and takes their time out of its building. Recorded with the `profile` option only.
static PENDING_STAGES: Mutex<ExecTimings> = Mutex::new(ExecTimings::EMPTY);

/// Records one staged submission (see `exec::stage`).
pub(crate) fn record_stage(submission: Submission) {
    let mut p = PENDING_STAGES.lock().unwrap_or_else(|p| p.into_inner());
    p.merge(ExecTimings {
        stages: 1,
        ..ExecTimings::submitted(submission)
    });
}

/// What one submission measured: the `async_eval` itself and, when profiling, the primitives it submitted
/// (counted just before, timed apart).
#[derive(Debug, Default)]
pub struct Submission {
    pub submit_ns: u64,
    pub count_ns: u64,
    pub primitives: Vec<(String, usize)>,
}

/// `async_eval` of `arrays`, timed; with `profile`, first counts the primitives it will submit.
pub fn submit(arrays: &[&Array], profile: bool) -> mlx::Result<Submission> {
    let mut s = Submission::default();
    if profile {
        let counting = Instant::now();
        s.primitives = mlx::graph_primitive_counts(arrays)?;
        s.count_ns = elapsed_ns(counting);
    }
    let submitting = Instant::now();
    mlx::async_eval(arrays)?;
    s.submit_ns = elapsed_ns(submitting);
    Ok(s)
}

/// Returns the timings accumulated by handles loaded with the `profile` option, and resets them.
pub fn take_exec_timings() -> ExecTimings {
    let mut t = EXEC_TIMINGS.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *t)
}

/// Adds one execute's timings to the totals [`take_exec_timings`] returns (the device-resident decode path
/// records its steps here too): `build_ns` of graph building (staged submissions included: they are moved to
/// submission here), its final `submission`, and `wait_ns` for the results.
pub fn record_exec_timings(build_ns: u64, submission: Submission, wait_ns: u64) {
    let staged = std::mem::take(&mut *PENDING_STAGES.lock().unwrap_or_else(|p| p.into_inner()));
    let mut t = EXEC_TIMINGS.lock().unwrap_or_else(|p| p.into_inner());
    t.merge(ExecTimings {
        executes: 1,
        build_ns: build_ns.saturating_sub(staged.submit_ns + staged.count_ns),
        wait_ns,
        ..ExecTimings::submitted(submission)
    });
    t.merge(staged);
}

pub(crate) fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// MLX's graph construction is not thread-safe: one process-wide lock serialises graph building
/// and evaluation submission, as in the reference runtime.
static MLX_LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn mlx_lock() -> MutexGuard<'static, ()> {
    MLX_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Options an executing handle consults.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub allow_custom_kernels: bool,
    pub device: Option<DeviceType>,
    pub clear_cache_interval: u64,
    pub cache_key: Option<String>,
    pub synthetic_weights: bool,
    pub profile: bool,
    /// `fold_constant_views` = false.
    pub skip_folding: bool,
    pub last_position_outputs: bool,
    /// Graph pass switches; `None` takes the default (see [`option_keys`]).
    pub fuse_rope: Option<bool>,
    pub fuse_projections: Option<bool>,
    pub merge_heads: Option<bool>,
    pub pair_ropes: Option<bool>,
    pub simplify_views: Option<bool>,
    pub batched_matmul: Option<bool>,
    /// `None` takes the device's default (see [`option_keys::COMPILE_SWIGLU`]).
    pub compile_swiglu: Option<bool>,
    /// `None` takes the device's default (see [`option_keys::FUSE_DECODE_ATTENTION`]).
    pub fuse_decode_attention: Option<bool>,
    /// `None` takes the device's default (see [`option_keys::FUSE_RESIDUAL_NORM`]).
    pub fuse_residual_norm: Option<bool>,
    /// See [`option_keys::SUBMIT_EVERY`]; 0 = off.
    pub submit_every: usize,
    /// `None` takes the device's default (see [`option_keys::STAGE_MFLOP`]).
    pub stage_mflop: Option<usize>,
}

impl ExecOptions {
    /// The graph passes to run for a handle on `device`.
    fn passes(&self, device: DeviceType) -> PassOptions {
        PassOptions {
            fuse_rope: self.fuse_rope.unwrap_or(device == DeviceType::Gpu),
            fuse_projections: self.fuse_projections.unwrap_or(true) && !self.skip_folding,
            merge_heads: self.merge_heads.unwrap_or(true),
            pair_ropes: self.pair_ropes.unwrap_or(true),
            simplify_views: self.simplify_views.unwrap_or(true),
            batched_matmul: self.batched_matmul.unwrap_or(true),
        }
    }

    fn from_context(ctx: &BackendInitContext<'_>) -> Result<ExecOptions, ExecError> {
        let mut o = ExecOptions::default();
        for (key, value) in ctx.options {
            match (key.as_str(), value) {
                (option_keys::ALLOW_CUSTOM_KERNELS, OptionValue::Bool(b)) => {
                    o.allow_custom_kernels = *b
                }
                (option_keys::DEVICE, OptionValue::Str(s)) => {
                    o.device = Some(match s.as_str() {
                        "cpu" => DeviceType::Cpu,
                        "gpu" => DeviceType::Gpu,
                        other => {
                            return Err(ExecError::Other(format!(
                                "unknown device '{other}' (cpu, gpu)"
                            )))
                        }
                    })
                }
                (option_keys::CLEAR_CACHE_INTERVAL, OptionValue::Int(n)) if *n >= 0 => {
                    o.clear_cache_interval = *n as u64
                }
                (option_keys::SUBMIT_EVERY, OptionValue::Int(n)) if *n >= 0 => {
                    o.submit_every = usize::try_from(*n).unwrap_or(usize::MAX)
                }
                (option_keys::STAGE_MFLOP, OptionValue::Int(n)) if *n >= 0 => {
                    o.stage_mflop = Some(usize::try_from(*n).unwrap_or(usize::MAX))
                }
                (option_keys::CACHE_KEY, OptionValue::Str(s)) => o.cache_key = Some(s.clone()),
                (option_keys::SYNTHETIC_WEIGHTS, OptionValue::Bool(b)) => o.synthetic_weights = *b,
                (option_keys::PROFILE, OptionValue::Bool(b)) => o.profile = *b,
                (option_keys::FOLD_CONSTANT_VIEWS, OptionValue::Bool(b)) => o.skip_folding = !*b,
                (option_keys::LAST_POSITION_OUTPUTS, OptionValue::Bool(b)) => {
                    o.last_position_outputs = *b
                }
                (option_keys::FUSE_ROPE, OptionValue::Bool(b)) => o.fuse_rope = Some(*b),
                (option_keys::FUSE_PROJECTIONS, OptionValue::Bool(b)) => {
                    o.fuse_projections = Some(*b)
                }
                (option_keys::MERGE_HEADS, OptionValue::Bool(b)) => o.merge_heads = Some(*b),
                (option_keys::PAIR_ROPES, OptionValue::Bool(b)) => o.pair_ropes = Some(*b),
                (option_keys::SIMPLIFY_VIEWS, OptionValue::Bool(b)) => o.simplify_views = Some(*b),
                (option_keys::BATCHED_MATMUL, OptionValue::Bool(b)) => o.batched_matmul = Some(*b),
                (option_keys::COMPILE_SWIGLU, OptionValue::Bool(b)) => o.compile_swiglu = Some(*b),
                (option_keys::FUSE_DECODE_ATTENTION, OptionValue::Bool(b)) => {
                    o.fuse_decode_attention = Some(*b)
                }
                (option_keys::FUSE_RESIDUAL_NORM, OptionValue::Bool(b)) => {
                    o.fuse_residual_norm = Some(*b)
                }
                (key, value) => {
                    return Err(ExecError::Other(format!(
                        "unknown or mistyped MLXBackend option {key}={value:?}"
                    )))
                }
            }
        }
        Ok(o)
    }
}

/// The MLX delegate backend.
#[derive(Debug, Default)]
pub struct MlxBackend;

impl Backend for MlxBackend {
    fn id(&self) -> &str {
        BACKEND_ID
    }

    fn is_available(&self) -> bool {
        mlx::is_available(DeviceType::Cpu) || mlx::is_available(DeviceType::Gpu)
    }

    fn init(&self, ctx: &BackendInitContext<'_>) -> Result<Box<dyn DelegateHandle>, BackendError> {
        let _guard = mlx_lock();
        MlxHandle::new(ctx)
            .map(|h| Box::new(h) as Box<dyn DelegateHandle>)
            .map_err(|e| BackendError::new(format!("init: {e}")))
    }
}

/// One initialised MLX delegate: its graph, persistent arrays and stream.
pub struct MlxHandle {
    graph: Graph,
    layout: Layout,
    persistent: Persistent,
    transient: Transient,
    stream: Stream,
    options: ExecOptions,
    cache: Option<Arc<Mutex<SequenceCache>>>,
    executes: u64,
    /// Inputs the graph passes assume hold consecutive positions (checked on every execute).
    consecutive_inputs: Vec<Tid>,
    /// With `last_position_outputs`, the outputs no op reads back (see [`exec::Ctx::last_position_product`]).
    last_position_products: Vec<Tid>,
    /// The main chain's attention blocks (see [`exec::decode_attention`]).
    decode_attention: exec::decode_attention::Plan,
    /// The main chain's residual add + norm pairs (see [`exec::residual_norm`]).
    residual_norm: exec::residual_norm::Plan,
    /// Keeps the constants and load-time state shared with other handles alive (see [`crate::weights`]).
    _shared: Option<StateLease>,
}

impl MlxHandle {
    fn new(ctx: &BackendInitContext<'_>) -> Result<MlxHandle, ExecError> {
        let options = ExecOptions::from_context(ctx)?;
        let mut graph = payload::parse(ctx.blob)?;
        let device = match options.device {
            Some(d) => {
                if !mlx::is_available(d) {
                    return Err(ExecError::Other(format!(
                        "MLX device {d:?} is not available in this libmlx"
                    )));
                }
                d
            }
            None if mlx::is_available(DeviceType::Gpu) => DeviceType::Gpu,
            None => DeviceType::Cpu,
        };
        // Executes may come from any thread (serialised by the MLX lock); MLX 0.32 streams from
        // `new_stream` belong to their creating thread.
        let stream = Stream::new_any_thread(device)?;
        let cache = match &options.cache_key {
            Some(key) => Some(cache::lookup(key).ok_or_else(|| {
                ExecError::Other(format!(
                    "no off-graph KV cache is registered under key '{key}'"
                ))
            })?),
            None => None,
        };
        // A handle of the same payload, named data and options may already have loaded, rewritten and folded
        // everything: take its state (shared buffers) instead of deriving another copy.
        let state_options = format!(
            "{:?} synthetic={} fold={} device={device:?}",
            options.passes(device),
            options.synthetic_weights,
            !options.skip_folding
        );
        let digests = weights::constant_digests(&graph, ctx.named_data);
        let key = weights::state_key(ctx.blob, &graph, ctx.named_data, &digests, state_options);
        if let Some((state, lease)) = weights::shared_state(&key) {
            return MlxHandle::from_state(state, stream, options, cache, Some(lease));
        }
        let (constants, mut weights) =
            load_constants(&graph, ctx, &digests, options.synthetic_weights, stream)?;
        let passes = passes::run(
            &mut graph,
            &options.passes(device),
            &exec::pass_inputs::LoadedConstants(&constants),
        );
        let loaded = weights::LoadedState {
            graph,
            consecutive_inputs: passes.consecutive_inputs,
            decode_attention: passes.decode_attention,
            constants: constants.into_iter().map(Some).collect(),
            folded: Vec::new(),
        };
        let mut handle = MlxHandle::from_state(loaded, stream, options, cache, None)?;
        if let Some(init_chain) = handle.graph.init_chain {
            handle.run(init_chain, true)?;
            let refs: Vec<&Array> = handle.persistent.constants.iter().flatten().collect();
            mlx::eval(&refs)?;
            handle.transient.clear();
        }
        if !handle.options.skip_folding {
            let folded = handle.with_ctx(false, exec::fold::fold_main_chain);
            handle.transient.clear();
            handle.persistent.folded = folded?;
        }
        // Parts that folding released are freed unless another handle holds them.
        weights.retain_used(&handle.persistent.constants);
        let state = weights::LoadedState {
            graph: handle.graph.clone(),
            consecutive_inputs: handle.consecutive_inputs.clone(),
            decode_attention: handle.decode_attention.found(),
            constants: handle.persistent.constants.clone(),
            folded: handle.persistent.folded.clone(),
        };
        handle._shared = Some(weights::share_state(key, state, weights));
        Ok(handle)
    }

    /// A handle over `state` with fresh (zeroed) mutable buffers and empty transients.
    fn from_state(
        state: weights::LoadedState,
        stream: Stream,
        options: ExecOptions,
        cache: Option<Arc<Mutex<SequenceCache>>>,
        shared: Option<StateLease>,
    ) -> Result<MlxHandle, ExecError> {
        let mutable_buffers = zero_mutable_buffers(&state.graph, stream)?;
        let last_position_products = if options.last_position_outputs {
            unread_outputs(&state.graph)
        } else {
            Vec::new()
        };
        let main_chain = state
            .graph
            .chains
            .get(state.graph.main_chain)
            .map_or(&[][..], Vec::as_slice);
        let decode_attention =
            exec::decode_attention::Plan::new(state.decode_attention, main_chain);
        let residual_norm = exec::residual_norm::Plan::new(main_chain);
        Ok(MlxHandle {
            layout: Layout::new(&state.graph),
            transient: Transient::new(&state.graph),
            graph: state.graph,
            persistent: Persistent {
                constants: state.constants,
                mutable_buffers,
                folded: state.folded,
            },
            stream,
            options,
            cache,
            executes: 0,
            consecutive_inputs: state.consecutive_inputs,
            last_position_products,
            decode_attention,
            residual_norm,
            _shared: shared,
        })
    }

    /// Refuses inputs that break what the graph passes assumed of them (see `exec::pass_inputs`).
    fn check_rewritten_inputs(&self) -> Result<(), ExecError> {
        for &tid in &self.consecutive_inputs {
            exec::pass_inputs::check_consecutive(&self.graph, tid, &self.transient, &self.layout)?;
        }
        Ok(())
    }

    fn run(&mut self, chain: usize, is_init_chain: bool) -> Result<(), ExecError> {
        self.with_ctx(is_init_chain, |cx| exec::run_chain(cx, chain))
    }

    fn with_ctx<T>(
        &mut self,
        is_init_chain: bool,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T, ExecError>,
    ) -> Result<T, ExecError> {
        let mut cache_guard = self
            .cache
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()));
        let mut cx = Ctx {
            graph: &self.graph,
            layout: self.layout,
            persistent: &mut self.persistent,
            transient: &mut self.transient,
            stream: self.stream,
            is_init_chain,
            cache: cache_guard.as_deref_mut(),
            options: &self.options,
            last_position_products: &self.last_position_products,
            decode_attention: &self.decode_attention,
            residual_norm: &self.residual_norm,
        };
        f(&mut cx)
    }

    /// Builds the graph and submits it; returns the outputs to read and what the submission measured.
    fn execute_locked(
        &mut self,
        args: &mut DelegateArgs<'_>,
    ) -> Result<(Vec<(usize, Array)>, Submission), ExecError> {
        let n_in = self.graph.input_map.len();
        let expected = n_in + self.graph.output_map.len();
        if args.len() != expected {
            return Err(ExecError::Other(format!(
                "the delegate call passes {} arguments, the payload expects {n_in} inputs + {} outputs",
                args.len(),
                self.graph.output_map.len()
            )));
        }
        self.transient.clear();
        for i in 0..self.graph.input_map.len() {
            let slot = self.graph.input_map[i];
            match slot.kind {
                SlotKind::Tensor => {
                    let array = input_array(&self.graph, Tid(slot.idx), args, i)?;
                    let host = host_ints_of(args, i);
                    self.bind_tensor_input(i, array, host)?;
                }
                SlotKind::Int => {
                    let v = match args.value(i).map_err(|e| ExecError::Other(e.0))? {
                        etmlx_runtime::EValue::Int(v) => *v,
                        other => {
                            return Err(ExecError::Other(format!(
                                "input {i}: expected an Int, got {}",
                                other.kind()
                            )))
                        }
                    };
                    self.bind_int_input(i, v)?;
                }
                SlotKind::Float | SlotKind::Bool => {
                    return Err(ExecError::Other(format!(
                        "input {i}: float and bool scalar inputs are not supported"
                    )))
                }
            }
        }
        self.check_rewritten_inputs()?;
        self.run(self.graph.main_chain, false)?;
        let mut prepared = Vec::new();
        for (j, slot) in self.graph.output_map.iter().enumerate() {
            let arg = n_in + j;
            match slot.kind {
                SlotKind::Tensor => {
                    let out_dtype = args.tensor(arg).map(|t| t.dtype).or_else(|_| {
                        // An output with no storage yet still has its declared dtype.
                        match args.value(arg) {
                            Ok(etmlx_runtime::EValue::Tensor(t)) => Ok(t.dtype()),
                            _ => Err(ExecError::Other(format!("output {j} is not a tensor"))),
                        }
                    })?;
                    let wanted = dtype::mlx_dtype(out_dtype.to_i8())?;
                    let location_array = exec::state::slot(
                        &self.layout,
                        &self.persistent,
                        &self.transient,
                        Tid(slot.idx),
                    )?;
                    let last_position = self.last_position_view(location_array)?;
                    let source = last_position.as_ref().unwrap_or(location_array);
                    let mut a = mlx::ops::contiguous(source, false, self.stream)?;
                    if a.dtype() != wanted {
                        a = mlx::ops::astype(&a, wanted, self.stream)?;
                    }
                    prepared.push((arg, a));
                }
                SlotKind::Int => {
                    let v = match self
                        .transient
                        .values
                        .get(slot.idx as usize)
                        .copied()
                        .flatten()
                    {
                        Some(exec::Value::Int(v)) => v as i64,
                        other => {
                            return Err(ExecError::Other(format!(
                                "output {j}: int value slot holds {other:?}"
                            )))
                        }
                    };
                    args.set_int(arg, v).map_err(|e| ExecError::Other(e.0))?;
                }
                SlotKind::Float | SlotKind::Bool => {
                    return Err(ExecError::Other(format!(
                        "output {j}: float and bool scalar outputs are not supported"
                    )))
                }
            }
        }
        let refs: Vec<&Array> = prepared.iter().map(|(_, a)| a).collect();
        let submission = submit(&refs, self.options.profile)?;
        // Temps are no longer needed; dropping them now returns their buffers to MLX's cache.
        self.transient.clear();
        Ok((prepared, submission))
    }
}

impl MlxHandle {
    /// Puts `array` in the slot of delegate input `i` (a tensor input), with its values when they are known
    /// on the host (see `exec::HostInts`).
    pub(crate) fn bind_tensor_input(
        &mut self,
        i: usize,
        array: Array,
        host: Option<exec::HostInts>,
    ) -> Result<(), ExecError> {
        let slot = self.input_slot(i)?;
        let exec::state::Location::Transient(t) = self.layout.locate(Tid(slot.idx))? else {
            return Err(ExecError::Other(format!(
                "input {i} maps to non-input slot {}",
                slot.idx
            )));
        };
        self.transient.tensors[t] = Some(array);
        self.transient.facts[t] = exec::state::SlotFacts {
            host_ints: host,
            silu_input: None,
        };
        Ok(())
    }

    /// Puts `v` in the value slot of delegate input `i` (an int input).
    pub(crate) fn bind_int_input(&mut self, i: usize, v: i64) -> Result<(), ExecError> {
        let slot = self.input_slot(i)?;
        let v = i32::try_from(v)
            .map_err(|_| ExecError::Other(format!("input {i}: {v} does not fit int32")))?;
        let slot_ref = self
            .transient
            .values
            .get_mut(slot.idx as usize)
            .ok_or(ExecError::UninitializedValue(slot.idx))?;
        *slot_ref = Some(exec::Value::Int(v));
        Ok(())
    }

    fn input_slot(&self, i: usize) -> Result<crate::ir::Slot, ExecError> {
        self.graph.input_map.get(i).copied().ok_or_else(|| {
            ExecError::Other(format!(
                "input {i}: the payload has {} inputs",
                self.graph.input_map.len()
            ))
        })
    }

    /// With `last_position_outputs`, the last position [B, 1, X] of a rank-3 output [B, T, X] with T > 1.
    pub(crate) fn last_position_view(&self, output: &Array) -> Result<Option<Array>, ExecError> {
        if !self.options.last_position_outputs {
            return Ok(None);
        }
        exec::state::last_position(output, self.stream)
    }
}

/// The tensor outputs of `graph` that no op of its main chain reads.
fn unread_outputs(graph: &Graph) -> Vec<Tid> {
    let mut read = std::collections::HashSet::new();
    for op in graph.chains.get(graph.main_chain).into_iter().flatten() {
        op.for_each_input_tid(|t| {
            read.insert(t);
        });
    }
    graph
        .output_map
        .iter()
        .filter_map(|slot| slot.tid())
        .filter(|t| !read.contains(t))
        .collect()
}

/// The values of a small integer input argument, kept on the host beside its MLX copy.
fn host_ints_of(args: &DelegateArgs<'_>, i: usize) -> Option<exec::HostInts> {
    use etmlx_runtime::ScalarType;
    let view = args.tensor(i).ok()?;
    if !matches!(
        view.dtype,
        ScalarType::Long
            | ScalarType::Int
            | ScalarType::Short
            | ScalarType::Char
            | ScalarType::Byte
    ) {
        return None;
    }
    let numel = view.bytes.len() / view.dtype.element_size().max(1);
    if numel > exec::HostInts::MAX_ELEMENTS {
        return None;
    }
    let values = (0..numel)
        .map(|k| etmlx_runtime::elements::read(view.dtype, view.bytes, k).map(|v| v.as_i64()))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let shape = view
        .sizes
        .iter()
        .map(|&d| i32::try_from(d).ok())
        .collect::<Option<Vec<_>>>()?;
    exec::HostInts::new(shape, values)
}

/// Wraps input argument `i` as an MLX array, checking it against the slot's declared dtype.
fn input_array(
    graph: &Graph,
    tid: Tid,
    args: &DelegateArgs<'_>,
    i: usize,
) -> Result<Array, ExecError> {
    let view = args.tensor(i).map_err(|e| ExecError::Other(e.0))?;
    if let Some(meta) = graph.meta(tid) {
        if meta.scalar_type != view.dtype.to_i8() {
            return Err(ExecError::Other(format!(
                "input {i}: dtype {} does not match the payload's ScalarType {}",
                view.dtype, meta.scalar_type
            )));
        }
    }
    if view
        .dim_order
        .iter()
        .enumerate()
        .any(|(k, &d)| d as usize != k)
    {
        return Err(ExecError::Other(format!(
            "input {i}: only contiguous (default dim order) tensors are supported"
        )));
    }
    let shape: Vec<i32> = view
        .sizes
        .iter()
        .map(|&d| i32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| ExecError::Other(format!("input {i}: a dimension does not fit int32")))?;
    Ok(Array::from_bytes(
        view.bytes,
        &shape,
        dtype::mlx_dtype(view.dtype.to_i8())?,
    )?)
}

/// Constant tensors from the named-data map, by the names the payload binds them to. With
/// `synthetic_weights`, a name missing from the map gets [`synthetic_constant`] values instead. `digests` are
/// [`weights::constant_digests`] of the same named data.
/// Constants already loaded by another handle from the same bytes are shared, not copied again
/// ([`crate::weights`]); the returned lease keeps them alive.
fn load_constants(
    graph: &Graph,
    ctx: &BackendInitContext<'_>,
    digests: &[Option<u128>],
    synthetic_weights: bool,
    stream: Stream,
) -> Result<(Vec<Array>, WeightLease), ExecError> {
    let names = graph.tensor_names();
    let mut constants = Vec::with_capacity(graph.num_constants as usize);
    let mut lease = WeightLease::default();
    for t in 0..graph.num_constants {
        let tid = Tid(t);
        let name = names.get(&tid).ok_or_else(|| {
            ExecError::Other(format!("constant slot {t} has no name in the payload"))
        })?;
        let meta = graph
            .meta(tid)
            .ok_or_else(|| ExecError::Other(format!("constant '{name}' has no tensor metadata")))?;
        let shape = meta
            .static_shape()
            .ok_or_else(|| ExecError::Other(format!("constant '{name}' has a dynamic shape")))?;
        let dt = dtype::mlx_dtype(meta.scalar_type)?;
        let (Some(bytes), Some(digest)) = (
            ctx.named_data.get(name),
            digests.get(t as usize).copied().flatten(),
        ) else {
            if synthetic_weights {
                constants.push(synthetic_constant(name, &shape, dt, stream)?);
                continue;
            }
            return Err(ExecError::Other(format!(
                "constant '{name}' is missing from the program's named data (and any .ptd)"
            )));
        };
        let numel: usize = shape.iter().map(|&d| d as usize).product();
        if bytes.len() != numel * dt.size() {
            return Err(ExecError::Other(format!(
                "constant '{name}': {} bytes stored, shape {shape:?} of {dt:?} needs {}",
                bytes.len(),
                numel * dt.size()
            )));
        }
        constants.push(weights::shared_constant(
            name, bytes, digest, &shape, dt, &mut lease,
        )?);
    }
    let refs: Vec<&Array> = constants.iter().collect();
    mlx::eval(&refs)?;
    Ok((constants, lease))
}

/// Half-width of the uniform distribution synthetic float constants are drawn from: small enough that
/// activations stay finite through deep stacks of random layers.
const SYNTHETIC_FLOAT_RANGE: f64 = 0.05;

/// Deterministic pseudo-random values for a constant missing from a weight-stripped program: floats
/// uniform in ±[`SYNTHETIC_FLOAT_RANGE`], integers (packed quantized weights) random bits, booleans random.
/// The PRNG key is derived from the constant's name, so a constant gets the same values in every load.
/// Built with MLX ops on `stream`, so large weights are generated on the device.
fn synthetic_constant(
    name: &str,
    shape: &[i32],
    dt: mlx::Dtype,
    stream: Stream,
) -> Result<Array, ExecError> {
    exec::shape::check_bytes("synthetic constant", shape, dt)
        .map_err(|e| ExecError::Other(format!("'{name}': {e}")))?;
    let key = mlx::random::key(name_seed(name))?;
    use mlx::ops::{astype, binary, BinaryOp};
    let array = if dt.is_floating() {
        // 32 random bits -> [0, 2^32) as float32 -> [-range, range).
        let bits = mlx::random::bits(shape, 4, Some(&key), stream)?;
        let unit = astype(&bits, mlx::Dtype::Float32, stream)?;
        let scale = Array::scalar_f32((2.0 * SYNTHETIC_FLOAT_RANGE / 4_294_967_296.0) as f32)?;
        let offset = Array::scalar_f32(-SYNTHETIC_FLOAT_RANGE as f32)?;
        let scaled = binary(BinaryOp::Multiply, &unit, &scale, stream)?;
        let shifted = binary(BinaryOp::Add, &scaled, &offset, stream)?;
        astype(&shifted, dt, stream)?
    } else if dt.is_integer() || dt == mlx::Dtype::Bool {
        // Same-width bits reinterpret as any value of the type (8-byte integers get 32 random bits).
        let width = dt.size().min(4) as i32;
        let bits = mlx::random::bits(shape, width, Some(&key), stream)?;
        astype(&bits, dt, stream)?
    } else {
        return Err(ExecError::Other(format!(
            "synthetic constant '{name}': no synthetic values for {dt:?}"
        )));
    };
    // Evaluate now so the float32 intermediates of one weight are freed before the next is built.
    array.eval()?;
    Ok(array)
}

/// FNV-1a of the constant's name: a seed that depends on the name only, not on load order.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Delegate-owned buffers, zero-filled (the reference discards the model's initial values).
fn zero_mutable_buffers(graph: &Graph, stream: Stream) -> Result<Vec<Option<Array>>, ExecError> {
    let layout = Layout::new(graph);
    let mut buffers: Vec<Option<Array>> = vec![None; graph.num_mutable_buffers as usize];
    for slot in &graph.mutable_buffer_map {
        let tid = slot.tid().ok_or_else(|| {
            ExecError::Other(format!("mutable buffer slot {} is not a tensor", slot.idx))
        })?;
        let exec::state::Location::MutableBuffer(i) = layout.locate(tid)? else {
            return Err(ExecError::Other(format!(
                "mutable buffer map names non-buffer slot {}",
                tid.0
            )));
        };
        let meta = graph.meta(tid).ok_or_else(|| {
            ExecError::Other(format!("mutable buffer {} has no tensor metadata", tid.0))
        })?;
        let shape = meta.static_shape().ok_or_else(|| {
            ExecError::Other(format!("mutable buffer {} has a dynamic shape", tid.0))
        })?;
        let dt = dtype::mlx_dtype(meta.scalar_type)?;
        exec::shape::check_allocation("mutable buffer", &shape, dt)?;
        let z = mlx::ops::zeros(&shape, dt, stream)?;
        buffers[i] = Some(z);
    }
    let refs: Vec<&Array> = buffers.iter().flatten().collect();
    mlx::eval(&refs)?;
    Ok(buffers)
}

impl DelegateHandle for MlxHandle {
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn execute(&mut self, args: &mut DelegateArgs<'_>) -> Result<(), BackendError> {
        let started = Instant::now();
        let (prepared, submission) = {
            let _guard = mlx_lock();
            self.execute_locked(args).map_err(|e| {
                self.transient.clear();
                BackendError::new(e.to_string())
            })?
        };
        let built_and_submitted_ns = elapsed_ns(started);
        let wait_started = Instant::now();
        // Outside the lock: wait for the GPU and copy results into the runtime's tensors.
        for (arg, array) in prepared {
            let sizes: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
            // Straight into the runtime's tensor: no intermediate buffer (logits can be ~1 GB).
            let dst = args.output_bytes_mut(arg, &sizes)?;
            array
                .read_into(dst)
                .map_err(|e| BackendError::new(e.to_string()))?;
        }
        if self.options.profile {
            let build_ns = built_and_submitted_ns
                .saturating_sub(submission.submit_ns)
                .saturating_sub(submission.count_ns);
            record_exec_timings(build_ns, submission, elapsed_ns(wait_started));
        }
        self.executes += 1;
        if self.options.clear_cache_interval > 0
            && self
                .executes
                .is_multiple_of(self.options.clear_cache_interval)
        {
            let _guard = mlx_lock();
            mlx::memory::clear_cache().map_err(|e| BackendError::new(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Stream {
        Stream::new_any_thread(DeviceType::Cpu).expect("CPU stream")
    }

    fn as_f32(a: &Array) -> Vec<f32> {
        let f = mlx::ops::astype(a, mlx::Dtype::Float32, cpu()).expect("astype");
        f.to_vec::<f32>().expect("read back")
    }

    #[test]
    fn synthetic_floats_are_small_varied_and_reproducible() {
        let a =
            synthetic_constant("layers.0.w", &[64, 48], mlx::Dtype::Bfloat16, cpu()).expect("make");
        assert_eq!(a.shape(), vec![64, 48]);
        assert_eq!(a.dtype(), mlx::Dtype::Bfloat16);
        let v = as_f32(&a);
        // bf16 rounding of 0.05 stays within 0.0503 (8 significant bits).
        assert!(v.iter().all(|x| x.abs() <= 0.0503), "values within ±0.05");
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.005, "uniform around 0, mean {mean}");
        let distinct: std::collections::HashSet<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert!(distinct.len() > 100, "values vary");
        let again =
            synthetic_constant("layers.0.w", &[64, 48], mlx::Dtype::Bfloat16, cpu()).expect("make");
        assert_eq!(as_f32(&again), v, "same name, same values");
        let other =
            synthetic_constant("layers.1.w", &[64, 48], mlx::Dtype::Bfloat16, cpu()).expect("make");
        assert_ne!(as_f32(&other), v, "another name, other values");
    }

    #[test]
    fn synthetic_integers_are_random_bits_of_the_declared_type() {
        let packed =
            synthetic_constant("q.weight", &[32, 8], mlx::Dtype::Uint32, cpu()).expect("make");
        assert_eq!(packed.dtype(), mlx::Dtype::Uint32);
        let words = packed.to_vec::<u32>().expect("read");
        // Every one of the 32 bit positions is set in some word and clear in another.
        let (any, all) = words
            .iter()
            .fold((0u32, u32::MAX), |(o, a), &w| (o | w, a & w));
        assert_eq!((any, all), (u32::MAX, 0));
        let small = synthetic_constant("i8", &[256], mlx::Dtype::Int8, cpu()).expect("make");
        assert_eq!(small.dtype(), mlx::Dtype::Int8);
        let bytes = small.to_vec::<i8>().expect("read");
        assert!(bytes.iter().any(|&b| b < 0) && bytes.iter().any(|&b| b > 0));
    }

    #[test]
    fn synthetic_constants_refuse_oversized_shapes() {
        let e = synthetic_constant("huge", &[1 << 20, 1 << 20], mlx::Dtype::Float32, cpu())
            .unwrap_err();
        assert!(
            e.to_string().contains("huge") && e.to_string().contains("4 GiB"),
            "{e}"
        );
    }
}
