//! The device-resident, pipelined decode loop (what mlx-lm's `generate_step` does, for ExecuTorch exports).
//!
//! The generic loop runs `forward` on host inputs, waits for the logits to reach the host, samples there, and
//! only then starts the next step: graph building, MLX's submission and the GPU's work run one after another.
//! Here the logits stay on the device, the token is sampled there ([`DeviceSampler`]), and the step that
//! consumes token t is built and submitted *before* token t is read back, so the host's work for step t+1
//! overlaps the device's work for step t. Positions are tracked on the host. The only waste: when a stop id,
//! stop string or the callback ends generation, the speculative step already submitted is dropped (its cache
//! write lies beyond the kept positions; an off-graph cache is rewound).

use std::ops::ControlFlow;
use std::time::Instant;

use etmlx_mlx::backend::Submission;
use etmlx_mlx::lock_graph;
use mlx::Array;

use crate::device_sampler::DeviceSampler;
use crate::error::{LlmError, Result};
use crate::generate::{Emitter, TokenEvent};
use crate::model::{DeviceStep, LlmModel};
use crate::sampler::SamplerConfig;
use crate::stats::GenerationTimer;
use crate::stop::StopReason;

fn mlx_err(e: impl std::fmt::Display) -> LlmError {
    LlmError::Unsupported(format!("device-resident decode: {e}"))
}

/// Host time of one step, for `bench --profile` (recorded with the MLX backend's execute timings).
struct StepTimer {
    enabled: bool,
    started: Instant,
    build_ns: u64,
    submission: Submission,
}

impl StepTimer {
    fn start(enabled: bool) -> Self {
        StepTimer {
            enabled,
            started: Instant::now(),
            build_ns: 0,
            submission: Submission::default(),
        }
    }

    /// Submits `arrays` (timed; with profiling, their pending primitives are counted first, untimed).
    fn submit(&mut self, arrays: &[&Array]) -> Result<()> {
        self.build_ns = nanos(self.started);
        self.submission = etmlx_mlx::backend::submit(arrays, self.enabled).map_err(mlx_err)?;
        Ok(())
    }

    fn finish(self, wait_ns: u64) {
        if self.enabled {
            etmlx_mlx::backend::record_exec_timings(self.build_ns, self.submission, wait_ns);
        }
    }
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The tokens of one `forward` call: `len` ids at positions `start..start+len`, as an MLX array (on the device
/// or not), and on the host too when known there (then they are checked against the vocabulary).
struct StepTokens<'a> {
    ids: &'a Array,
    len: usize,
    start: usize,
    host_ids: Option<&'a [u32]>,
}

/// Builds `forward` over `tokens`, samples the next token from its last logits, and submits both (and the
/// sampler's state). Returns the token, not yet read.
fn submit_step(
    model: &mut LlmModel,
    step: &DeviceStep,
    sampler: &mut DeviceSampler,
    tokens: StepTokens<'_>,
    profiling: bool,
) -> Result<(Array, StepTimer)> {
    let mut timer = StepTimer::start(profiling);
    let lock = lock_graph();
    let logits = model.device_forward(
        &lock,
        step,
        tokens.ids,
        tokens.len,
        tokens.start,
        tokens.host_ids,
    )?;
    let token = sampler.sample(&logits)?;
    // Only the token (and the sampler's state) is kept: the logits' graph is released once scheduled.
    drop(logits);
    let mut pending = vec![&token];
    pending.extend(sampler.state());
    timer.submit(&pending)?;
    drop(lock);
    Ok((token, timer))
}

/// Prefills `pending` (the prompt's uncached tail) and decodes until `emitter` says stop. `cached` gains every id
/// whose keys and values the model keeps.
pub(crate) fn decode<F: FnMut(TokenEvent<'_>) -> ControlFlow<()>>(
    model: &mut LlmModel,
    step: &DeviceStep,
    cached: &mut Vec<u32>,
    pending: &[u32],
    sampler_config: &SamplerConfig,
    emitter: &mut Emitter<'_, F>,
    timer: &mut GenerationTimer,
) -> Result<StopReason> {
    let meta = model.metadata().clone();
    let vocab = meta
        .vocab_size
        .ok_or_else(|| mlx_err("the export declares no vocabulary size"))?;
    let stream = model.device_stream()?;
    let profiling = model.device_profiling()?;
    let mut sampler = DeviceSampler::new(sampler_config, vocab, &emitter.history, stream)?;

    // Prefill in chunks of the export's size; only the last chunk's logits are sampled.
    let chunk = meta.prefill_chunk_size.max(1);
    let mut current: Option<(Array, StepTimer)> = None;
    let pieces: Vec<&[u32]> = pending.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let ids: Vec<i32> = piece
            .iter()
            .map(|&t| i32::try_from(t))
            .collect::<std::result::Result<_, _>>()
            .map_err(mlx_err)?;
        let ids = Array::from_slice(&ids, &[ids.len() as i32]).map_err(mlx_err)?;
        if i + 1 == pieces.len() {
            let tokens = StepTokens {
                ids: &ids,
                len: piece.len(),
                start: cached.len(),
                host_ids: Some(piece),
            };
            current = Some(submit_step(model, step, &mut sampler, tokens, profiling)?);
        } else {
            let mut timer = StepTimer::start(profiling);
            let lock = lock_graph();
            let logits =
                model.device_forward(&lock, step, &ids, piece.len(), cached.len(), Some(piece))?;
            timer.submit(&[&logits])?;
            drop(logits);
            drop(lock);
            // Nothing waits for an inner chunk: the next chunk's graph reads the caches it writes.
            timer.finish(0);
        }
        cached.extend_from_slice(piece);
    }
    // Each step's timer is finished when its own token is read (the prompt's last chunk included).
    let (mut token, mut token_timer) = current.ok_or_else(|| mlx_err("nothing to prefill"))?;

    loop {
        // Submit the step that consumes `token` before reading it, unless the limits already end generation.
        let following = if emitter.may_continue_after_next(cached.len()) {
            let tokens = StepTokens {
                ids: &token,
                len: 1,
                start: cached.len(),
                host_ids: None,
            };
            Some(submit_step(model, step, &mut sampler, tokens, profiling)?)
        } else {
            None
        };
        let waited = Instant::now();
        let id = token.item_i64().map_err(mlx_err)?;
        token_timer.finish(nanos(waited));
        drop(token);
        let id = u32::try_from(id)
            .ok()
            .filter(|&id| (id as usize) < vocab)
            .ok_or_else(|| {
                LlmError::ModelOutput(format!(
                    "the device sampled token id {id}, outside the vocabulary"
                ))
            })?;
        timer.first_token();
        if let Some(reason) = emitter.emit(id, cached.len())? {
            if following.is_some() {
                // The speculative step wrote position cached.len(): forget it (off-graph caches count entries).
                model.rewind_to(cached.len())?;
            }
            return Ok(reason);
        }
        cached.push(id);
        (token, token_timer) = following
            .ok_or_else(|| mlx_err("generation went on past its limits (an internal error)"))?;
    }
}
