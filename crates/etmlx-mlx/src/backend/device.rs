//! The device-resident step: a typed API for runners that keep a method's inputs and outputs on the device.
//!
//! [`MlxHandle::execute`](etmlx_runtime::DelegateHandle::execute) copies host inputs into MLX and waits for
//! the outputs to reach the host. A decode loop that samples on the device instead hands this API MLX arrays
//! (the previous step's sampled token), gets the outputs back as lazy arrays, builds its sampling on them and
//! submits step t+1 before it reads step t's token. Nothing is evaluated here: the caller owns submission
//! ([`mlx::async_eval`]) and must drop the returned arrays once its own results are scheduled, so that no
//! stray handle keeps an old KV-cache buffer alive.

use std::sync::MutexGuard;

use mlx::{Array, Stream};

use super::{mlx_lock, MlxHandle};
use crate::error::ExecError;
use crate::exec;
use crate::ir::{SlotKind, Tid};

/// Proof that the caller holds the process-wide MLX graph lock (graph building and submission are not
/// thread-safe in MLX). Hold it while building and submitting; release it before waiting for results.
pub struct GraphLock {
    _guard: MutexGuard<'static, ()>,
}

/// Takes the process-wide MLX graph lock.
pub fn lock_graph() -> GraphLock {
    GraphLock { _guard: mlx_lock() }
}

/// One delegate input of a device step.
#[derive(Clone)]
pub enum DeviceInput {
    /// A tensor input; integer arrays are cast to the payload's declared dtype when they differ.
    Tensor(Array),
    /// A small integer tensor given by its values (positions): copied into MLX in the declared dtype, and kept
    /// on the host so that reading it in the graph (`ItemInt`) never waits for the device.
    HostInts { shape: Vec<i32>, values: Vec<i64> },
    /// An int value input.
    Int(i64),
}

impl MlxHandle {
    /// The stream this delegate's graph runs on (build the caller's ops on it too).
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Whether the `profile` option is on.
    pub fn profiling(&self) -> bool {
        self.options.profile
    }

    /// Number of delegate inputs the payload declares.
    pub fn num_inputs(&self) -> usize {
        self.graph.input_map.len()
    }

    /// Number of delegate outputs the payload declares.
    pub fn num_outputs(&self) -> usize {
        self.graph.output_map.len()
    }

    /// Builds the main chain over `inputs` (one per delegate input, in order) and returns every output as a
    /// lazy array, with the `last_position_outputs` option applied. Int outputs are refused (no official LLM
    /// export has them; use `execute`).
    pub fn build_outputs(
        &mut self,
        _lock: &GraphLock,
        inputs: Vec<DeviceInput>,
    ) -> Result<Vec<Array>, ExecError> {
        let result = self.build_outputs_inner(inputs);
        // Whatever happened, no temp survives the call: the outputs returned hold what they need.
        self.transient.clear();
        result
    }

    fn build_outputs_inner(&mut self, inputs: Vec<DeviceInput>) -> Result<Vec<Array>, ExecError> {
        if inputs.len() != self.graph.input_map.len() {
            return Err(ExecError::Other(format!(
                "device step: {} inputs given, the payload expects {}",
                inputs.len(),
                self.graph.input_map.len()
            )));
        }
        self.transient.clear();
        for (i, input) in inputs.into_iter().enumerate() {
            let slot = self.graph.input_map[i];
            match (slot.kind, input) {
                (SlotKind::Tensor, DeviceInput::Tensor(array)) => {
                    let array = self.match_declared_dtype(i, Tid(slot.idx), array)?;
                    self.bind_tensor_input(i, array, None)?;
                }
                (SlotKind::Tensor, DeviceInput::HostInts { shape, values }) => {
                    let array = Array::from_slice(&values, &shape)?;
                    let array = self.match_declared_dtype(i, Tid(slot.idx), array)?;
                    let host = exec::HostInts::new(shape, values);
                    self.bind_tensor_input(i, array, host)?;
                }
                (SlotKind::Int, DeviceInput::Int(v)) => self.bind_int_input(i, v)?,
                (kind, _) => {
                    return Err(ExecError::Other(format!(
                        "device step: input {i} is a {kind:?} slot and was given another kind"
                    )))
                }
            }
        }
        self.check_rewritten_inputs()?;
        self.run(self.graph.main_chain, false)?;
        let mut outputs = Vec::with_capacity(self.graph.output_map.len());
        for (j, slot) in self.graph.output_map.iter().enumerate() {
            let Some(tid) = slot.tid() else {
                return Err(ExecError::Other(format!(
                    "device step: output {j} is a scalar value; only tensor outputs stay on the device"
                )));
            };
            let array = exec::state::slot(&self.layout, &self.persistent, &self.transient, tid)?;
            outputs.push(match self.last_position_view(array)? {
                Some(last) => last,
                None => array.clone(),
            });
        }
        Ok(outputs)
    }

    /// Integer inputs may come from the device in another integer dtype (a sampled token is uint32):
    /// cast them to the declared one. Anything else must already match.
    fn match_declared_dtype(&self, i: usize, tid: Tid, array: Array) -> Result<Array, ExecError> {
        let Some(meta) = self.graph.meta(tid) else {
            return Ok(array);
        };
        let declared = crate::dtype::mlx_dtype(meta.scalar_type)?;
        if array.dtype() == declared {
            return Ok(array);
        }
        if array.dtype().is_integer() && declared.is_integer() {
            return Ok(mlx::ops::astype(&array, declared, self.stream)?);
        }
        Err(ExecError::Other(format!(
            "device step: input {i} is {:?}, the payload declares {declared:?}",
            array.dtype()
        )))
    }
}
