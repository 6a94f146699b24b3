//! The model adapter: recognises an official LLM export from its `forward` signature and metadata getters, and
//! runs `forward` on chunks of token ids at absolute positions.
//!
//! Supported signatures (see `docs/architecture.md` and the exporter's README):
//! - HF exporter, all three modes: `input_ids` int64 [1,T], `cache_position` int64 [T] → logits [1,T,V];
//! - llama `export_llm`: `tokens` [1,T], `input_pos` [1] (start position) or [T] → logits [1,T,V] or [1,V];
//! - custom exports with a sampling head: `tokens`, `input_pos`, `temperature`, `top_k`, `top_p`, `seed` → one
//!   token id.
//!
//! The KV cache is either in the graph (delegate mutable buffers, zeroed at method load) or off the graph
//! (`--use-offgraph-cache`: an `etmlx_mlx::SequenceCache` this adapter creates from the geometry getters and
//! hands to the delegate through the `cache_key` load option).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use etmlx_mlx::cache::CacheGeometry;
use etmlx_mlx::{KvCacheSpec, MlxBackend, SequenceCache};
use etmlx_runtime::{
    BackendOptions, HostTensor, HostValue, Method, Program, ScalarType, ShapeDynamism,
};

use crate::error::{LlmError, Result};

mod device;
pub use device::DeviceStep;

/// The method every official single-method LLM export names its step function.
pub const FORWARD_METHOD: &str = "forward";

/// Context lengths above this are refused: a getter claiming more is corrupt, and the off-graph cache would
/// size its pools from it.
pub const MAX_CONTEXT_LEN: usize = 1 << 22;

/// Vocabularies above this are refused for the same reason (logits rows are copied per step).
pub const MAX_VOCAB: usize = 1 << 24;

/// How input #1 carries positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionInput {
    /// One absolute position per token (`cache_position` [T], HF exports; llama `input_pos` [T]).
    PerToken,
    /// The start position only (llama `input_pos` [1]).
    Start,
}

/// What output #0 holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Logits for every input token, [1,T,V].
    AllLogits,
    /// Logits of the last input token only, [1,V].
    LastLogits,
    /// One sampled token id (an on-device sampling head).
    SampledToken,
}

/// Where the KV cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCacheKind {
    /// Delegate mutable buffers; writes are addressed by position, so a rewind only moves the position.
    InGraph,
    /// A host-provided `SequenceCache` (`--use-offgraph-cache` exports), with the geometry its getters declare.
    OffGraph(CacheGeometry),
}

/// What an export declares about itself (getters) and its `forward` signature.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    /// Positions the KV cache holds: `get_max_ctx_len`, else `get_max_context_len`, else `get_max_seq_len`.
    pub max_ctx_len: usize,
    /// `get_max_seq_len`, when the export has it.
    pub max_seq_len: Option<usize>,
    /// Most tokens one `forward` call takes: `get_prefill_chunk_size` capped by input #0's bound.
    pub prefill_chunk_size: usize,
    /// Whether every call must pass exactly `prefill_chunk_size` tokens (a static input shape).
    pub static_tokens: bool,
    pub bos_id: Option<u32>,
    /// `get_eos_ids`, else `get_eos_id`; empty when the export has neither.
    pub eos_ids: Vec<u32>,
    /// Rows of the logits (`get_vocab_size`, else the logits' last dimension).
    pub vocab_size: Option<usize>,
    pub kv_cache: KvCacheKind,
    pub positions: PositionInput,
    pub output: OutputKind,
    /// Dtype of output #0 (the logits, or the sampled id).
    pub output_dtype: ScalarType,
    pub token_dtype: ScalarType,
    pub position_dtype: ScalarType,
}

/// Load-time choices.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// External weights (`.ptd`) merged with the `.pte`'s named data.
    pub ptd: Option<PathBuf>,
    /// Backend options (device, custom kernels, ...); the adapter adds `cache_key` for off-graph caches.
    pub backend: BackendOptions,
    /// Off-graph KV storage dtype; default: the logits' dtype (fp32 exports keep fp32 keys and values).
    pub kv_dtype: Option<mlx::Dtype>,
    /// Keep the logits of every prompt position in `forward`'s output (exports that return [1, T, V]). By
    /// default only the last position crosses from the device (generation reads nothing else), so output #0
    /// is [1, 1, V] after a prefill.
    pub all_position_logits: bool,
}

/// On-device sampling parameters, for exports with a sampling head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceSampling {
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: usize,
    pub top_p: f32,
    pub seed: u64,
}

/// What one `forward` call gives the generator.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput<'a> {
    /// Logits of the last token, as f32 (in a buffer the model reuses on every call).
    Logits(&'a [f32]),
    /// A token id sampled on the device.
    Token(u32),
}

/// A loaded LLM export: the program, its loaded `forward`, the metadata, and the off-graph cache if any.
pub struct LlmModel {
    path: PathBuf,
    program: Program,
    forward: Method,
    meta: ModelMetadata,
    options: ModelOptions,
    /// Keeps the off-graph cache registered while `forward` uses it.
    offgraph_cache: Option<Arc<Mutex<SequenceCache>>>,
    /// The last logits row [`LlmModel::forward`] returns, reused: a fresh vocabulary-sized buffer per call
    /// cost more (page faults) than widening the row.
    last_logits: Vec<f32>,
}

impl std::fmt::Debug for LlmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmModel")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

impl LlmModel {
    /// Opens an LLM `.pte`: reads its getters and signature, then loads `forward` (for an off-graph-cache
    /// export, with a fresh cache sized from the geometry getters).
    pub fn open(path: impl AsRef<Path>, options: ModelOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut program = Program::open(&path, options.ptd.as_deref())?;
        program.register_backend(Arc::new(MlxBackend));
        let meta = read_metadata(&program, &path)?;
        let (forward, offgraph_cache) = load_forward(&mut program, &meta, &options)?;
        Ok(LlmModel {
            path,
            program,
            forward,
            meta,
            options,
            offgraph_cache,
            last_logits: Vec::new(),
        })
    }

    /// Another session of this model: a `forward` loaded from a clone of this model's program, with its own KV
    /// state (fresh zeroed in-graph buffers, or a new off-graph cache) and position, sharing the weights — the
    /// MLX delegate loads constants once per named data (`etmlx_mlx::weights`). The two models may step from
    /// different threads.
    pub fn sibling(&self) -> Result<LlmModel> {
        let mut program = self.program.clone();
        let (forward, offgraph_cache) = load_forward(&mut program, &self.meta, &self.options)?;
        Ok(LlmModel {
            path: self.path.clone(),
            program,
            forward,
            meta: self.meta.clone(),
            options: self.options.clone(),
            offgraph_cache,
            last_logits: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Reloads `forward`: in-graph caches come back zero-filled, an off-graph export gets a new empty cache.
    /// Position-addressed caches never need this between conversations (see [`KvCacheKind`]); it is the hard
    /// reset for everything else.
    pub fn reload(&mut self) -> Result<()> {
        let (forward, cache) = load_forward(&mut self.program, &self.meta, &self.options)?;
        self.forward = forward;
        self.offgraph_cache = cache;
        Ok(())
    }

    /// Makes `position` the next position to write: positions from it on are forgotten. In-graph caches are
    /// position-addressed and need nothing; the off-graph cache drops its newer entries.
    pub fn rewind_to(&mut self, position: usize) -> Result<()> {
        if let Some(cache) = &self.offgraph_cache {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            let len = cache.len();
            if position == 0 {
                cache.clear();
            } else if position < len {
                cache
                    .rewind(len - position)
                    .map_err(|e| LlmError::Unsupported(format!("off-graph KV cache: {e}")))?;
            }
        }
        Ok(())
    }

    /// Runs `forward` on `tokens` placed at positions `start..start+len` and returns output #0 as it is
    /// (a copy; [`LlmModel::forward`] reads only the last logits row in place).
    pub fn forward_raw(
        &mut self,
        tokens: &[u32],
        start: usize,
        sampling: Option<&DeviceSampling>,
    ) -> Result<HostValue> {
        self.run_forward(tokens, start, sampling)?;
        Ok(self.forward.output(0)?)
    }

    /// Runs `forward` on `tokens` placed at positions `start..start+len` and returns output #0 as it is.
    ///
    /// `tokens` must be non-empty, at most [`ModelMetadata::prefill_chunk_size`] long (exactly that long for a
    /// static export) and end within the context. `sampling` is required by (and only used for) exports with a
    /// sampling head.
    fn run_forward(
        &mut self,
        tokens: &[u32],
        start: usize,
        sampling: Option<&DeviceSampling>,
    ) -> Result<()> {
        let end = self.check_chunk(tokens.len(), start, Some(tokens))?;
        let m = &self.meta;
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let positions = self.position_values(start, end - start);
        let n = ids.len() as i64;
        let pos_len = positions.len() as i64;
        let token_input = int_tensor(m.token_dtype, vec![1, n], &ids)?;
        let pos_input = int_tensor(m.position_dtype, vec![pos_len], &positions)?;
        self.forward.set_input(0, &token_input)?;
        self.forward.set_input(1, &pos_input)?;
        if m.output == OutputKind::SampledToken {
            let s = sampling.ok_or_else(|| {
                LlmError::Unsupported(
                    "this export samples on the device: sampling parameters are required".into(),
                )
            })?;
            let top_k = if s.top_k == 0 {
                i64::MAX
            } else {
                s.top_k as i64
            };
            // The seed is an int64 on the device; wrap rather than fail for seeds above i64::MAX.
            let values = [
                Num::F(f64::from(s.temperature)),
                Num::I(top_k),
                Num::F(f64::from(s.top_p)),
                Num::I(s.seed as i64),
            ];
            for (k, v) in values.into_iter().enumerate() {
                let input = scalar_input(&self.forward, 2 + k, v)?;
                self.forward.set_input(2 + k, &input)?;
            }
        }
        self.forward.execute()?;
        Ok(())
    }

    /// Checks one `forward` call of `len` tokens at `start` (and the ids, when known on the host) against the
    /// export's limits; returns the end position.
    pub(crate) fn check_chunk(
        &self,
        len: usize,
        start: usize,
        tokens: Option<&[u32]>,
    ) -> Result<usize> {
        let m = &self.meta;
        if len == 0 {
            return Err(LlmError::Unsupported(
                "forward needs at least one token".into(),
            ));
        }
        if len > m.prefill_chunk_size || (m.static_tokens && len != m.prefill_chunk_size) {
            return Err(LlmError::Unsupported(format!(
                "{len} tokens in one forward call; this export takes {} {}",
                if m.static_tokens {
                    "exactly"
                } else {
                    "at most"
                },
                m.prefill_chunk_size
            )));
        }
        let end = start
            .checked_add(len)
            .filter(|&e| e <= m.max_ctx_len)
            .ok_or(LlmError::ContextOverflow {
                new_tokens: len,
                position: start,
                needed: start.saturating_add(len),
                max_ctx_len: m.max_ctx_len,
            })?;
        if let (Some(vocab), Some(tokens)) = (m.vocab_size, tokens) {
            if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
                return Err(LlmError::Unsupported(format!(
                    "token id {bad} is outside the model's vocabulary of {vocab}"
                )));
            }
        }
        Ok(end)
    }

    /// The positions input of a call of `len` tokens at `start`, as `forward` declares it.
    pub(crate) fn position_values(&self, start: usize, len: usize) -> Vec<i64> {
        match self.meta.positions {
            PositionInput::PerToken => (start..start + len).map(|p| p as i64).collect(),
            PositionInput::Start => vec![start as i64],
        }
    }

    /// Runs `forward` and returns what sampling needs: the last token's logits as f32, or the device's token.
    pub fn forward(
        &mut self,
        tokens: &[u32],
        start: usize,
        sampling: Option<&DeviceSampling>,
    ) -> Result<StepOutput<'_>> {
        self.run_forward(tokens, start, sampling)?;
        // Read output #0 where the runtime holds it: prefill logits are [1, T, vocab], and only the
        // last row is needed (copying all of it was most of a long prefill's time).
        let t = self.forward.output_view(0)?;
        match self.meta.output {
            OutputKind::SampledToken => {
                let v = etmlx_runtime::elements::read(t.dtype, t.bytes, 0)
                    .map_err(|e| LlmError::ModelOutput(format!("sampled token: {e}")))?
                    .as_i64();
                let id = u32::try_from(v)
                    .ok()
                    .filter(|&id| {
                        self.meta
                            .vocab_size
                            .is_none_or(|vocab| (id as usize) < vocab)
                    })
                    .ok_or_else(|| {
                        LlmError::ModelOutput(format!(
                            "the device sampled token id {v}, outside the vocabulary"
                        ))
                    })?;
                Ok(StepOutput::Token(id))
            }
            OutputKind::AllLogits | OutputKind::LastLogits => {
                let row = logits_row_bytes(t.dtype, t.sizes, t.bytes)?;
                widen_logits_into(t.dtype, row, &mut self.last_logits)?;
                Ok(StepOutput::Logits(&self.last_logits))
            }
        }
    }
}

/// Loads `forward`, first creating and registering an off-graph cache when the export needs one.
fn load_forward(
    program: &mut Program,
    meta: &ModelMetadata,
    options: &ModelOptions,
) -> Result<(Method, Option<Arc<Mutex<SequenceCache>>>)> {
    let mut backend = options.backend.clone();
    let cache = match &meta.kv_cache {
        KvCacheKind::InGraph => None,
        KvCacheKind::OffGraph(g) => {
            let spec = offgraph_spec(g, meta, options.kv_dtype)?;
            let cache = etmlx_mlx::install_sequence_cache(&mut backend, &spec)
                .map_err(|e| LlmError::Unsupported(format!("off-graph KV cache: {e}")))?;
            Some(cache)
        }
    };
    if !options.all_position_logits
        && meta.output == OutputKind::AllLogits
        && logits_come_straight_from_one_delegate(program)
    {
        // Only the last position's logits are read: leave the rest on the device.
        backend.set(
            etmlx_mlx::BACKEND_ID,
            etmlx_mlx::backend::option_keys::LAST_POSITION_OUTPUTS,
            etmlx_runtime::OptionValue::Bool(true),
        );
    }
    program.set_backend_options(backend);
    let forward = program.load_method(FORWARD_METHOD)?;
    Ok((forward, cache))
}

/// Whether `forward` is one delegate call whose only output is the method's only output, so that a delegate
/// returning just the last position of its [1, T, V] output changes nothing but the output's length.
fn logits_come_straight_from_one_delegate(program: &Program) -> bool {
    let Some(plan) = program
        .pte()
        .program()
        .plans
        .iter()
        .find(|p| p.name == FORWARD_METHOD)
    else {
        return false;
    };
    let instructions: Vec<_> = plan.chains.iter().flat_map(|c| &c.instructions).collect();
    match (instructions.as_slice(), plan.outputs.as_slice()) {
        ([etmlx_pte::Instruction::DelegateCall { args, .. }], [output]) => {
            args.last() == Some(output)
        }
        _ => false,
    }
}

fn offgraph_spec(
    g: &CacheGeometry,
    meta: &ModelMetadata,
    kv_dtype: Option<mlx::Dtype>,
) -> Result<KvCacheSpec> {
    let dtype = kv_dtype.unwrap_or(match meta.output_dtype {
        ScalarType::Float => mlx::Dtype::Float32,
        ScalarType::Half => mlx::Dtype::Float16,
        _ => mlx::Dtype::Bfloat16,
    });
    KvCacheSpec::from_geometry(g, Some(meta.max_ctx_len), dtype, None)
        .map_err(|e| LlmError::Unsupported(format!("off-graph KV cache: {e}")))
}

enum Num {
    I(i64),
    F(f64),
}

/// A value for a sampling-head input, shaped as the export declares it (0-d or [1] tensor, or a scalar).
fn scalar_input(method: &Method, index: usize, v: Num) -> Result<HostValue> {
    let meta = method.input_meta(index)?;
    let as_scalar = match v {
        Num::I(i) => etmlx_runtime::elements::Scalar::Int(i),
        Num::F(f) => etmlx_runtime::elements::Scalar::Float(f),
    };
    match meta {
        etmlx_runtime::EValue::Tensor(t) => {
            let numel: i64 = t.bound().iter().product();
            if numel != 1 {
                return Err(LlmError::Unsupported(format!(
                    "sampling input {index} has shape {:?}; expected one element",
                    t.bound()
                )));
            }
            let dtype = t.dtype();
            let mut bytes = vec![0u8; dtype.element_size()];
            etmlx_runtime::elements::write(dtype, &mut bytes, 0, as_scalar)
                .map_err(|e| LlmError::Unsupported(format!("sampling input {index}: {e}")))?;
            Ok(HostValue::Tensor(HostTensor::new(
                dtype,
                t.bound().to_vec(),
                bytes,
            )?))
        }
        etmlx_runtime::EValue::Int(_) => Ok(HostValue::Int(as_scalar.as_i64())),
        etmlx_runtime::EValue::Double(_) => Ok(HostValue::Double(as_scalar.as_f64())),
        other => Err(LlmError::Unsupported(format!(
            "sampling input {index} is a {}",
            other.kind()
        ))),
    }
}

fn int_tensor(dtype: ScalarType, sizes: Vec<i64>, values: &[i64]) -> Result<HostValue> {
    let bytes: Vec<u8> = match dtype {
        ScalarType::Long => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ScalarType::Int => values
            .iter()
            .map(|&v| i32::try_from(v).map(i32::to_le_bytes))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| LlmError::Unsupported("a token id or position does not fit int32".into()))?
            .concat(),
        other => {
            return Err(LlmError::Unsupported(format!(
                "integer inputs of dtype {other:?}"
            )))
        }
    };
    Ok(HostValue::Tensor(HostTensor::new(dtype, sizes, bytes)?))
}

/// The last row of a [1,T,V] or [1,V] logits tensor, widened to f32.
pub fn last_logits_row(t: &HostTensor) -> Result<Vec<f32>> {
    logits_last_row(t.dtype, &t.sizes, &t.bytes)
}

/// [`last_logits_row`] over borrowed contiguous bytes.
fn logits_last_row(dtype: ScalarType, sizes: &[i64], bytes: &[u8]) -> Result<Vec<f32>> {
    logits_to_f32(dtype, logits_row_bytes(dtype, sizes, bytes)?)
}

/// The bytes of the last row of a [1,T,V] or [1,V] logits tensor.
fn logits_row_bytes<'a>(dtype: ScalarType, sizes: &[i64], bytes: &'a [u8]) -> Result<&'a [u8]> {
    let vocab = match sizes {
        [1, tokens, v] if *tokens >= 1 && *v >= 1 => *v as usize,
        [1, v] if *v >= 1 => *v as usize,
        other => {
            return Err(LlmError::ModelOutput(format!(
                "logits of shape {other:?}; expected [1,T,V] or [1,V]"
            )))
        }
    };
    let size = dtype.element_size();
    let row_bytes = vocab * size;
    let row = bytes
        .len()
        .checked_sub(row_bytes)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| LlmError::ModelOutput("logits buffer shorter than its shape".into()))?;
    Ok(row)
}

/// Converts a logits buffer of a floating dtype to f32.
pub fn logits_to_f32(dtype: ScalarType, bytes: &[u8]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    widen_logits_into(dtype, bytes, &mut out)?;
    Ok(out)
}

/// Widens a logits buffer of a floating dtype into `out` (resized to the element count).
pub fn widen_logits_into(dtype: ScalarType, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    match dtype {
        ScalarType::Float => widen(bytes, out, f32::from_le_bytes),
        // bf16 is the top half of an f32, so widening is a shift (NaNs stay NaN). `half`'s conversion also quiets
        // signalling NaNs, which no sampler needs and which made it ~3x slower here.
        ScalarType::BFloat16 => widen(bytes, out, |b| {
            f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
        }),
        ScalarType::Half => widen(bytes, out, |b| half::f16::from_le_bytes(b).to_f32()),
        other => {
            return Err(LlmError::ModelOutput(format!(
                "logits of dtype {other:?}; expected a float type"
            )))
        }
    }
    Ok(())
}

/// `out` = `convert` of each `N`-byte element of `bytes`. Writing through a slice vectorizes where collecting an
/// iterator did not (bf16, 128k vocabulary: ~20 µs against ~100).
fn widen<const N: usize>(bytes: &[u8], out: &mut Vec<f32>, convert: impl Fn([u8; N]) -> f32) {
    out.clear();
    out.resize(bytes.len() / N, 0.0);
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(N)) {
        *o = convert(b.try_into().expect("chunks of N bytes"));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Metadata

/// Reads the getters and checks `forward`'s signature.
pub fn read_metadata(program: &Program, path: &Path) -> Result<ModelMetadata> {
    let not_llm = |reason: String| LlmError::NotAnLlm {
        path: path.to_path_buf(),
        reason,
    };
    let names: Vec<String> = program
        .method_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let plan = program.pte().plan(FORWARD_METHOD).ok_or_else(|| {
        not_llm(format!(
            "it has no `{FORWARD_METHOD}` method (methods: {})",
            names.join(", ")
        ))
    })?;
    let getters = Getters {
        program,
        names: &names,
    };

    let tensor_at = |value: usize| match plan.values.get(value) {
        Some(etmlx_pte::Value::Tensor(info)) => Some(info),
        _ => None,
    };
    let n_inputs = plan.inputs.len();
    if n_inputs != 2 && n_inputs != 6 {
        return Err(not_llm(format!(
            "`forward` takes {n_inputs} inputs; expected (tokens, positions) or (tokens, positions, temperature, top_k, top_p, seed)"
        )));
    }
    let tokens = tensor_at(plan.inputs[0])
        .filter(|t| {
            t.sizes.len() == 2 && t.sizes[0] == 1 && t.sizes[1] >= 1 && is_int(t.scalar_type)
        })
        .ok_or_else(|| not_llm("input 0 is not an integer tensor of token ids [1,T]".into()))?;
    let pos = tensor_at(plan.inputs[1])
        .filter(|t| t.sizes.len() == 1 && t.sizes[0] >= 1 && is_int(t.scalar_type))
        .ok_or_else(|| {
            not_llm("input 1 is not an integer tensor of positions [T] or [1]".into())
        })?;
    let max_tokens = tokens.sizes[1] as usize;
    let positions = if pos.sizes[0] as usize == max_tokens {
        PositionInput::PerToken
    } else if pos.sizes[0] == 1 {
        PositionInput::Start
    } else {
        return Err(not_llm(format!(
            "input 1 holds {} positions but input 0 up to {max_tokens} tokens",
            pos.sizes[0]
        )));
    };
    let static_tokens = tokens.dynamism == ShapeDynamism::Static;
    if static_tokens && max_tokens > 1 {
        return Err(LlmError::Unsupported(format!(
            "{}: `forward` takes a static [1,{max_tokens}] token input; only dynamic-shape or one-token exports can be driven",
            path.display()
        )));
    }

    let out = plan
        .outputs
        .first()
        .and_then(|&v| tensor_at(v))
        .ok_or_else(|| not_llm("`forward` has no tensor output".into()))?;
    let output = match (out.sizes.as_slice(), is_float(out.scalar_type), n_inputs) {
        ([1, _, v], true, 2) if *v >= 1 => OutputKind::AllLogits,
        ([1, v], true, 2) if *v >= 1 => OutputKind::LastLogits,
        (sizes, false, 6) if is_int(out.scalar_type) && sizes.iter().product::<i32>() == 1 => OutputKind::SampledToken,
        (sizes, _, _) => {
            return Err(not_llm(format!(
                "output 0 is {:?} {sizes:?}; expected logits [1,T,V] or [1,V] (or, with 6 inputs, one sampled token id)",
                out.scalar_type
            )))
        }
    };
    let logits_vocab = match output {
        OutputKind::SampledToken => None,
        _ => out.sizes.last().map(|&v| v as usize),
    };

    let use_kv_cache = getters.bool("use_kv_cache")?.unwrap_or(true);
    if !use_kv_cache {
        return Err(LlmError::Unsupported(format!(
            "{}: exported without a KV cache (use_kv_cache = false); re-export with a cache",
            path.display()
        )));
    }
    let max_seq_len = getters.size("get_max_seq_len")?;
    let max_ctx_len = match getters.size("get_max_ctx_len")? {
        Some(v) => v,
        None => match getters.size("get_max_context_len")? {
            Some(v) => v,
            None => max_seq_len.ok_or_else(|| {
                not_llm("no context-length getter (get_max_ctx_len, get_max_context_len or get_max_seq_len)".into())
            })?,
        },
    };
    if max_ctx_len == 0 || max_ctx_len > MAX_CONTEXT_LEN {
        return Err(LlmError::Metadata {
            getter: "get_max_ctx_len".into(),
            message: format!("{max_ctx_len} is outside 1..={MAX_CONTEXT_LEN}"),
        });
    }
    let prefill_chunk_size = match getters.size("get_prefill_chunk_size")? {
        Some(0) => {
            return Err(LlmError::Metadata {
                getter: "get_prefill_chunk_size".into(),
                message: "0".into(),
            })
        }
        Some(c) => c.min(max_tokens),
        None => max_tokens,
    }
    .min(max_ctx_len);

    let vocab_size = match getters.size("get_vocab_size")? {
        Some(v) if v > MAX_VOCAB => {
            return Err(LlmError::Metadata {
                getter: "get_vocab_size".into(),
                message: format!("{v} > {MAX_VOCAB}"),
            })
        }
        Some(v) => Some(v),
        None => logits_vocab,
    };
    let bos_id = getters
        .size("get_bos_id")?
        .and_then(|v| u32::try_from(v).ok());
    let mut eos_ids = match getters.ints("get_eos_ids")? {
        Some(ids) => ids,
        None => getters.ints("get_eos_id")?.unwrap_or_default(),
    }
    .into_iter()
    .filter_map(|v| u32::try_from(v).ok())
    .collect::<Vec<_>>();
    eos_ids.sort_unstable();
    eos_ids.dedup();

    let kv_cache = if names.iter().any(|n| n == "get_n_caches") {
        let geometry = CacheGeometry::from_program(program).map_err(|e| LlmError::Metadata {
            getter: "off-graph cache geometry".into(),
            message: e.to_string(),
        })?;
        KvCacheKind::OffGraph(geometry)
    } else {
        KvCacheKind::InGraph
    };

    Ok(ModelMetadata {
        max_ctx_len,
        max_seq_len,
        prefill_chunk_size,
        static_tokens,
        bos_id,
        eos_ids,
        vocab_size,
        kv_cache,
        positions,
        output,
        output_dtype: out.scalar_type,
        token_dtype: tokens.scalar_type,
        position_dtype: pos.scalar_type,
    })
}

fn is_int(t: ScalarType) -> bool {
    matches!(t, ScalarType::Long | ScalarType::Int)
}

fn is_float(t: ScalarType) -> bool {
    matches!(
        t,
        ScalarType::Float | ScalarType::Half | ScalarType::BFloat16
    )
}

/// Constant-method getters; a missing method reads as `None`.
struct Getters<'a> {
    program: &'a Program,
    names: &'a [String],
}

impl Getters<'_> {
    fn values(&self, name: &str) -> Result<Option<Vec<HostValue>>> {
        if !self.names.iter().any(|n| n == name) {
            return Ok(None);
        }
        Ok(Some(self.program.constant_method(name)?))
    }

    /// Every integer the getter returns: int outputs, and the elements of integer tensors.
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        let Some(values) = self.values(name)? else {
            return Ok(None);
        };
        let bad = |message: String| LlmError::Metadata {
            getter: name.into(),
            message,
        };
        let mut out = Vec::new();
        for v in &values {
            match v {
                HostValue::Int(i) => out.push(*i),
                HostValue::Tensor(t) if is_int(t.dtype) => {
                    if t.numel() > MAX_CONTEXT_LEN {
                        return Err(bad(format!("a tensor of {} elements", t.numel())));
                    }
                    for i in 0..t.numel() {
                        let s = etmlx_runtime::elements::read(t.dtype, &t.bytes, i)
                            .map_err(|e| bad(e.to_string()))?;
                        out.push(s.as_i64());
                    }
                }
                other => return Err(bad(format!("expected integers, got {other:?}"))),
            }
        }
        Ok(Some(out))
    }

    /// A single non-negative integer (a size, a token id).
    fn size(&self, name: &str) -> Result<Option<usize>> {
        let Some(values) = self.ints(name)? else {
            return Ok(None);
        };
        match values.as_slice() {
            [v] => usize::try_from(*v)
                .map(Some)
                .map_err(|_| LlmError::Metadata {
                    getter: name.into(),
                    message: format!("{v} is negative"),
                }),
            other => Err(LlmError::Metadata {
                getter: name.into(),
                message: format!("expected one integer, got {other:?}"),
            }),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>> {
        let Some(values) = self.values(name)? else {
            return Ok(None);
        };
        match values.as_slice() {
            [HostValue::Bool(b)] => Ok(Some(*b)),
            [HostValue::Int(i)] => Ok(Some(*i != 0)),
            other => Err(LlmError::Metadata {
                getter: name.into(),
                message: format!("expected a bool, got {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_value(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every bf16 and f16 bit pattern widens to the value the `half` crate gives (NaN to a NaN), into a buffer
    /// that shrinks and grows between calls.
    #[test]
    fn widening_matches_half_for_every_16_bit_pattern() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        let mut out = vec![7.0; 3];
        widen_logits_into(ScalarType::BFloat16, &bytes, &mut out).expect("bf16");
        assert_eq!(out.len(), 65536);
        for (bits, &got) in (0..=u16::MAX).zip(&out) {
            let want = half::bf16::from_bits(bits).to_f32();
            assert!(same_value(got, want), "bf16 {bits:#06x}: {got} vs {want}");
        }
        widen_logits_into(ScalarType::Half, &bytes[..8], &mut out).expect("f16");
        assert_eq!(out.len(), 4);
        widen_logits_into(ScalarType::Half, &bytes, &mut out).expect("f16");
        for (bits, &got) in (0..=u16::MAX).zip(&out) {
            let want = half::f16::from_bits(bits).to_f32();
            assert!(same_value(got, want), "f16 {bits:#06x}: {got} vs {want}");
        }
        let floats = [1.5f32, -0.0, f32::INFINITY, f32::MIN_POSITIVE];
        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        widen_logits_into(ScalarType::Float, &bytes, &mut out).expect("f32");
        assert_eq!(out, floats);
        assert!(widen_logits_into(ScalarType::Long, &bytes, &mut out).is_err());
    }

    /// The last row of [1,T,V] logits, and a buffer shorter than its shape refused.
    #[test]
    fn last_row_of_all_position_logits() {
        let rows: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let bytes: Vec<u8> = rows.iter().flat_map(|f| f.to_le_bytes()).collect();
        let row = logits_last_row(ScalarType::Float, &[1, 3, 2], &bytes).expect("row");
        assert_eq!(row, [4.0, 5.0]);
        assert!(logits_last_row(ScalarType::Float, &[1, 3, 4], &bytes[..4]).is_err());
        assert!(logits_last_row(ScalarType::Float, &[2, 3, 2], &bytes).is_err());
    }
}
