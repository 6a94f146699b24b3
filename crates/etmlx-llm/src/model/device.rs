//! The device-resident `forward`: for exports whose `forward` is one MLX delegate call (every official LLM
//! export), token ids go in and logits come out as MLX arrays that never visit the host, so a decode loop can
//! sample on the device and build step t+1 before it reads step t's token (see `crate::pipeline`).

use etmlx_mlx::{DeviceInput, GraphLock, MlxHandle};
use etmlx_runtime::DelegateArgRole;
use mlx::{Array, Stream};

use super::{LlmModel, OutputKind};
use crate::error::{LlmError, Result};

/// How `forward`'s single MLX delegate call is wired: which delegate input takes the token ids and which the
/// positions, and which delegate output is the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStep {
    token_input: usize,
    position_input: usize,
    logits_output: usize,
}

fn device_err(e: impl std::fmt::Display) -> LlmError {
    LlmError::Unsupported(format!("device-resident forward: {e}"))
}

impl LlmModel {
    /// The device step of this export, or `None` when `forward` is not one MLX delegate call taking exactly
    /// (tokens, positions) and returning logits (then the generic host path runs).
    pub fn device_step(&mut self) -> Option<DeviceStep> {
        if !matches!(
            self.meta.output,
            OutputKind::AllLogits | OutputKind::LastLogits
        ) {
            return None;
        }
        let sole = self.forward.sole_delegate()?;
        if sole.backend_id != etmlx_mlx::BACKEND_ID {
            return None;
        }
        let handle = sole.handle?.downcast_mut::<MlxHandle>()?;
        let num_inputs = handle.num_inputs();
        if num_inputs != 2 || sole.args.len() != num_inputs + handle.num_outputs() {
            return None;
        }
        let input_of = |role| sole.args[..num_inputs].iter().position(|r| *r == role);
        let token_input = input_of(DelegateArgRole::Input(0))?;
        let position_input = input_of(DelegateArgRole::Input(1))?;
        let logits_output = sole.args[num_inputs..]
            .iter()
            .position(|r| *r == DelegateArgRole::Output(0))?;
        Some(DeviceStep {
            token_input,
            position_input,
            logits_output,
        })
    }

    fn mlx_handle(&mut self) -> Result<&mut MlxHandle> {
        self.forward
            .sole_delegate_handle()
            .and_then(|h| h.downcast_mut::<MlxHandle>())
            .ok_or_else(|| device_err("`forward` is not a single MLX delegate call"))
    }

    /// Whether `forward`'s delegate was loaded with the MLX backend's `profile` option (the pipelined loop then
    /// records its steps with the backend's timings).
    pub fn device_profiling(&mut self) -> Result<bool> {
        Ok(self.mlx_handle()?.profiling())
    }

    /// The MLX stream `forward` runs on: build sampling on it.
    pub fn device_stream(&mut self) -> Result<Stream> {
        Ok(self.mlx_handle()?.stream())
    }

    /// Builds `forward` over `tokens` (an integer array of `len` ids, any shape with `len` elements; on the
    /// device or not) at positions `start..start+len`, and returns the last position's logits, [V], lazily:
    /// nothing is evaluated. Call with the graph lock held; schedule what you derive from the result, then drop
    /// it. `host_ids`, when the ids are known on the host, are checked against the vocabulary.
    pub fn device_forward(
        &mut self,
        lock: &GraphLock,
        step: &DeviceStep,
        tokens: &Array,
        len: usize,
        start: usize,
        host_ids: Option<&[u32]>,
    ) -> Result<Array> {
        self.check_chunk(len, start, host_ids)?;
        let n = i32::try_from(len).map_err(device_err)?;
        let positions = self.position_values(start, len);
        let positions = DeviceInput::HostInts {
            shape: vec![i32::try_from(positions.len()).map_err(device_err)?],
            values: positions,
        };
        let handle = self.mlx_handle()?;
        let stream = handle.stream();
        let tokens =
            DeviceInput::Tensor(mlx::ops::reshape(tokens, &[1, n], stream).map_err(device_err)?);
        // `device_step` checked that the two delegate inputs are the tokens and the positions.
        let inputs = if step.token_input < step.position_input {
            vec![tokens, positions]
        } else {
            vec![positions, tokens]
        };
        let mut outputs = handle
            .build_outputs(lock, inputs)
            .map_err(|e| LlmError::Unsupported(format!("forward: {e}")))?;
        if step.logits_output >= outputs.len() {
            return Err(device_err("the logits output is missing"));
        }
        let logits = outputs.swap_remove(step.logits_output);
        drop(outputs);
        last_row(&logits, stream)
    }
}

/// The last row of [1, T, V], [1, V] or [V] logits, as [V].
fn last_row(logits: &Array, s: Stream) -> Result<Array> {
    let shape = logits.shape();
    let row = match shape[..] {
        [1, 1, v] | [1, v] if v >= 1 => mlx::ops::reshape(logits, &[v], s).map_err(device_err)?,
        [1, t, v] if t > 1 && v >= 1 => {
            let last = mlx::ops::slice(logits, &[0, t - 1, 0], &[1, t, v], &[1, 1, 1], s)
                .map_err(device_err)?;
            mlx::ops::reshape(&last, &[v], s).map_err(device_err)?
        }
        [v] if v >= 1 => logits.clone(),
        _ => {
            return Err(LlmError::ModelOutput(format!(
                "logits of shape {shape:?}; expected [1,T,V] or [1,V]"
            )))
        }
    };
    Ok(row)
}
