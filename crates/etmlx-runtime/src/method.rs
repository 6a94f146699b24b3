//! A loaded method: its value table, planned memory, delegates and the instruction loop.

use etmlx_pte::ScalarType;

use crate::backend::{backend_error, DelegateArgs, DelegateHandle, TensorView};
use crate::error::{Result, RuntimeError};
use crate::evalue::EValue;
use crate::kernels::KernelFn;
use crate::tensor::{Storage, Tensor};

/// Upper bound on instructions executed by one `execute` call, so a malformed program whose jumps
/// loop forever fails instead of hanging.
pub const MAX_STEPS_PER_EXECUTE: u64 = 50_000_000;

/// The value table and the planned arenas its tensors point into.
#[derive(Debug, Default)]
pub struct ValueStore {
    pub(crate) values: Vec<EValue>,
    pub(crate) arenas: Vec<Vec<u8>>,
}

impl ValueStore {
    pub(crate) fn get(&self, idx: usize) -> Result<&EValue> {
        self.values
            .get(idx)
            .ok_or_else(|| RuntimeError::InvalidValue {
                index: idx,
                message: format!("out of range (the method has {} values)", self.values.len()),
            })
    }

    pub(crate) fn tensor(&self, idx: usize) -> Result<&Tensor> {
        match self.get(idx)? {
            EValue::Tensor(t) => Ok(t),
            other => Err(RuntimeError::InvalidValue {
                index: idx,
                message: format!("expected a Tensor, found {}", other.kind()),
            }),
        }
    }

    pub(crate) fn tensor_mut(&mut self, idx: usize) -> Result<&mut Tensor> {
        match self.values.get_mut(idx) {
            Some(EValue::Tensor(t)) => Ok(t),
            Some(other) => Err(RuntimeError::InvalidValue {
                index: idx,
                message: format!("expected a Tensor, found {}", other.kind()),
            }),
            None => Err(RuntimeError::InvalidValue {
                index: idx,
                message: "out of range".into(),
            }),
        }
    }

    /// The bytes of `t` (exactly `t.nbytes()` long).
    pub(crate) fn bytes_of<'s>(&'s self, t: &'s Tensor) -> Result<&'s [u8]> {
        let n = t.nbytes();
        match &t.storage {
            Storage::Empty if n == 0 => Ok(&[]),
            Storage::Empty => Err(RuntimeError::Memory("tensor has no data yet".into())),
            Storage::Owned(bytes) => bytes
                .get(..n)
                .ok_or_else(|| RuntimeError::Memory("owned tensor shorter than its size".into())),
            Storage::Planned { arena, offset } => self
                .arenas
                .get(*arena)
                .and_then(|a| a.get(*offset..offset + n))
                .ok_or_else(|| RuntimeError::Memory(format!("arena {arena} slice out of range"))),
        }
    }

    pub(crate) fn tensor_view(&self, idx: usize) -> Result<TensorView<'_>> {
        let t = self.tensor(idx)?;
        Ok(TensorView {
            dtype: t.dtype(),
            sizes: t.sizes(),
            dim_order: t.dim_order(),
            bytes: self.bytes_of(t)?,
        })
    }

    /// Resizes tensor `idx` to `sizes` and copies `bytes` into its storage (allocating owned
    /// storage for tensors that have none planned).
    pub(crate) fn write_tensor(&mut self, idx: usize, sizes: &[i64], bytes: &[u8]) -> Result<()> {
        let t = self.tensor_mut(idx)?;
        t.resize(sizes)?;
        let n = t.nbytes();
        if bytes.len() != n {
            return Err(RuntimeError::Memory(format!(
                "{} bytes given for a {:?} tensor of sizes {:?} ({n} bytes)",
                bytes.len(),
                t.dtype(),
                sizes
            )));
        }
        match t.storage.clone() {
            Storage::Planned { arena, offset } => {
                let dst = self
                    .arenas
                    .get_mut(arena)
                    .and_then(|a| a.get_mut(offset..offset + n))
                    .ok_or_else(|| {
                        RuntimeError::Memory(format!("arena {arena} slice out of range"))
                    })?;
                dst.copy_from_slice(bytes);
            }
            Storage::Owned(_) | Storage::Empty => t.storage = Storage::Owned(bytes.to_vec()),
        }
        Ok(())
    }

    /// Mutable bytes of tensor `idx` at its current size (allocating owned storage if it has none).
    pub(crate) fn bytes_mut(&mut self, idx: usize) -> Result<&mut [u8]> {
        let t = self.tensor_mut(idx)?;
        let n = t.nbytes();
        if matches!(t.storage, Storage::Empty) {
            t.storage = Storage::Owned(vec![0; n]);
        }
        if let Storage::Planned { arena, offset } = t.storage {
            return self
                .arenas
                .get_mut(arena)
                .and_then(|a| a.get_mut(offset..offset + n))
                .ok_or_else(|| RuntimeError::Memory(format!("arena {arena} slice out of range")));
        }
        let Some(EValue::Tensor(Tensor {
            storage: Storage::Owned(bytes),
            ..
        })) = self.values.get_mut(idx)
        else {
            unreachable!("owned storage was ensured above")
        };
        if bytes.len() < n {
            bytes.resize(n, 0);
        }
        Ok(&mut bytes[..n])
    }
}

/// One instruction, with every index validated at load.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Kernel { op: usize, args: Vec<usize> },
    Delegate { delegate: usize, args: Vec<usize> },
    Move { from: usize, to: usize },
    JumpFalse { cond: usize, destination: usize },
    Free { value: usize },
}

/// A contiguous host tensor handed to or returned from a method.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub dtype: ScalarType,
    pub sizes: Vec<i64>,
    /// Row-major contiguous bytes.
    pub bytes: Vec<u8>,
}

impl HostTensor {
    pub fn new(dtype: ScalarType, sizes: Vec<i64>, bytes: Vec<u8>) -> Result<Self> {
        let t = Tensor::from_bytes(dtype, sizes.clone(), bytes)?;
        let Storage::Owned(bytes) = t.storage else {
            unreachable!("from_bytes owns its bytes")
        };
        Ok(HostTensor {
            dtype,
            sizes,
            bytes,
        })
    }
    pub fn numel(&self) -> usize {
        self.sizes.iter().map(|&d| d as usize).product()
    }
}

/// An input or output of a method, as the caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum HostValue {
    Tensor(HostTensor),
    Int(i64),
    Double(f64),
    Bool(bool),
    None,
}

pub(crate) struct LoadedDelegate {
    pub backend_id: String,
    pub handle: Box<dyn DelegateHandle>,
}

/// A method ready to execute.
pub struct Method {
    pub(crate) name: String,
    pub(crate) store: ValueStore,
    pub(crate) inputs: Vec<usize>,
    pub(crate) outputs: Vec<usize>,
    pub(crate) steps: Vec<Step>,
    /// Kernel per operator index (`Step::Kernel::op`), resolved at load.
    pub(crate) kernels: Vec<(String, KernelFn)>,
    pub(crate) delegates: Vec<LoadedDelegate>,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("inputs", &self.inputs.len())
            .field("outputs", &self.outputs.len())
            .field("instructions", &self.steps.len())
            .finish()
    }
}

/// What a delegate argument of a [`SoleDelegate`] is, seen from the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegateArgRole {
    /// Method input `i`.
    Input(usize),
    /// Method output `i`.
    Output(usize),
    /// Any other value (a constant of the plan).
    Other,
}

/// The only instruction of a method that is a single delegate call, opened for a runner that drives the
/// backend directly (bypassing host inputs and outputs).
pub struct SoleDelegate<'a> {
    pub backend_id: &'a str,
    /// The handle as its concrete type, when the backend exposes it ([`DelegateHandle::as_any_mut`]).
    pub handle: Option<&'a mut dyn std::any::Any>,
    /// One role per delegate argument, in argument order (inputs first, then outputs).
    pub args: Vec<DelegateArgRole>,
}

impl Method {
    /// The method's delegate when its whole program is one delegate call (every official LLM export's
    /// `forward`); `None` otherwise.
    pub fn sole_delegate(&mut self) -> Option<SoleDelegate<'_>> {
        let [Step::Delegate { delegate, args }] = self.steps.as_slice() else {
            return None;
        };
        let roles = args
            .iter()
            .map(|v| {
                if let Some(i) = self.inputs.iter().position(|x| x == v) {
                    DelegateArgRole::Input(i)
                } else if let Some(i) = self.outputs.iter().position(|x| x == v) {
                    DelegateArgRole::Output(i)
                } else {
                    DelegateArgRole::Other
                }
            })
            .collect();
        let d = self.delegates.get_mut(*delegate)?;
        Some(SoleDelegate {
            backend_id: &d.backend_id,
            handle: d.handle.as_any_mut(),
            args: roles,
        })
    }

    /// The concrete handle of [`Method::sole_delegate`] alone, without working out the argument roles: for a
    /// runner that checked the wiring once and now drives the handle every step.
    pub fn sole_delegate_handle(&mut self) -> Option<&mut dyn std::any::Any> {
        let [Step::Delegate { delegate, .. }] = self.steps.as_slice() else {
            return None;
        };
        self.delegates.get_mut(*delegate)?.handle.as_any_mut()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }
    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Value-table index of input `i`.
    fn input_value_index(&self, i: usize) -> Result<usize> {
        self.inputs
            .get(i)
            .copied()
            .ok_or_else(|| RuntimeError::InvalidInput {
                index: i,
                message: format!("the method has {} inputs", self.inputs.len()),
            })
    }

    /// Value-table index of output `i`.
    fn output_value_index(&self, i: usize) -> Result<usize> {
        self.outputs
            .get(i)
            .copied()
            .ok_or_else(|| RuntimeError::InvalidValue {
                index: i,
                message: format!(
                    "output {i} requested but the method has {}",
                    self.outputs.len()
                ),
            })
    }

    /// The declared input value (its dtype, bound and dynamism), for callers that build inputs.
    pub fn input_meta(&self, i: usize) -> Result<&EValue> {
        let idx = self.input_value_index(i)?;
        self.store.get(idx)
    }

    /// Sets input `i`, with ExecuTorch's rules: the kind and dtype must match the declaration, a
    /// tensor is resized within its bound and copied, a scalar must equal the value traced at export.
    pub fn set_input(&mut self, i: usize, value: &HostValue) -> Result<()> {
        let idx = self.input_value_index(i)?;
        let bad = |message: String| RuntimeError::InvalidInput { index: i, message };
        match (self.store.get(idx)?.clone(), value) {
            (EValue::Tensor(t), HostValue::Tensor(h)) => {
                if t.dtype() != h.dtype {
                    return Err(bad(format!(
                        "expected dtype {:?}, got {:?}",
                        t.dtype(),
                        h.dtype
                    )));
                }
                if t.dim() != h.sizes.len() {
                    return Err(bad(format!(
                        "expected rank {} (sizes {:?}), got sizes {:?}",
                        t.dim(),
                        t.bound(),
                        h.sizes
                    )));
                }
                self.store
                    .write_tensor(idx, &h.sizes, &h.bytes)
                    .map_err(|e| {
                        bad(format!(
                            "sizes {:?} do not fit {}: {e}",
                            h.sizes,
                            t_bound(&t)
                        ))
                    })
            }
            (EValue::Int(expected), HostValue::Int(v)) if expected == *v => Ok(()),
            (EValue::Bool(expected), HostValue::Bool(v)) if expected == *v => Ok(()),
            (EValue::Double(expected), HostValue::Double(v))
                if (expected - v).abs() <= 1e-4 + 1e-5 * expected.abs() =>
            {
                Ok(())
            }
            (EValue::None, HostValue::None) => Ok(()),
            (declared, given) => Err(bad(format!(
                "expected {} (as traced at export: {declared:?}), got {given:?}",
                declared.kind()
            ))),
        }
    }

    /// Runs the method's instructions once.
    pub fn execute(&mut self) -> Result<()> {
        let mut pc = 0usize;
        let mut steps_run = 0u64;
        while pc < self.steps.len() {
            steps_run += 1;
            if steps_run > MAX_STEPS_PER_EXECUTE {
                return Err(RuntimeError::StepLimit(MAX_STEPS_PER_EXECUTE));
            }
            let mut next = pc + 1;
            match &self.steps[pc] {
                Step::Kernel { op, args } => {
                    let (name, kernel) = &self.kernels[*op];
                    kernel(&mut self.store, args).map_err(|e| RuntimeError::Instruction {
                        pc,
                        what: format!("kernel {name}"),
                        message: e.to_string(),
                    })?;
                }
                Step::Delegate { delegate, args } => {
                    let d = &mut self.delegates[*delegate];
                    let mut call = DelegateArgs {
                        store: &mut self.store,
                        args,
                    };
                    d.handle
                        .execute(&mut call)
                        .map_err(|e| RuntimeError::Instruction {
                            pc,
                            what: format!("delegate {delegate} ({})", d.backend_id),
                            message: backend_error(&d.backend_id, e).to_string(),
                        })?;
                }
                Step::Move { from, to } => {
                    let v = self.store.get(*from)?.clone();
                    self.store.values[*to] = v;
                }
                Step::JumpFalse { cond, destination } => {
                    if !self
                        .condition(*cond)
                        .map_err(|e| RuntimeError::Instruction {
                            pc,
                            what: "jump_false".into(),
                            message: e.to_string(),
                        })?
                    {
                        next = *destination;
                    }
                }
                Step::Free { value } => {
                    // Planned storage stays reserved (as in ExecuTorch); owned bytes are released.
                    if let Ok(t) = self.store.tensor_mut(*value) {
                        if matches!(t.storage, Storage::Owned(_)) {
                            t.storage = Storage::Empty;
                        }
                    }
                }
            }
            pc = next;
        }
        Ok(())
    }

    fn condition(&self, idx: usize) -> Result<bool> {
        match self.store.get(idx)? {
            EValue::Bool(b) => Ok(*b),
            EValue::Tensor(t) if t.dtype() == ScalarType::Bool => {
                let bytes = self.store.bytes_of(t)?;
                Ok(bytes.iter().all(|&b| b != 0) && !bytes.is_empty())
            }
            other => Err(RuntimeError::InvalidValue {
                index: idx,
                message: format!(
                    "a jump condition must be Bool or a bool tensor, found {}",
                    other.kind()
                ),
            }),
        }
    }

    /// Output `i` copied to the host (tensors in row-major order).
    pub fn output(&self, i: usize) -> Result<HostValue> {
        let idx = self.output_value_index(i)?;
        self.host_value(idx)
    }

    /// Output tensor `i` borrowed in place (no copy): what a caller that reads part of a large
    /// output (e.g. the last row of a [1, T, vocab] logits tensor) should use.
    pub fn output_view(&self, i: usize) -> Result<crate::backend::TensorView<'_>> {
        let idx = self.output_value_index(i)?;
        self.store.tensor_view(idx)
    }

    /// All outputs copied to the host.
    pub fn outputs(&self) -> Result<Vec<HostValue>> {
        (0..self.outputs.len()).map(|i| self.output(i)).collect()
    }

    pub(crate) fn host_value(&self, idx: usize) -> Result<HostValue> {
        Ok(match self.store.get(idx)? {
            EValue::Tensor(t) => {
                let bytes = self.store.bytes_of(t)?;
                let bytes = if t.is_contiguous() {
                    bytes.to_vec()
                } else {
                    crate::kernels::to_contiguous(t, bytes)?
                };
                HostValue::Tensor(HostTensor {
                    dtype: t.dtype(),
                    sizes: t.sizes().to_vec(),
                    bytes,
                })
            }
            EValue::Int(v) => HostValue::Int(*v),
            EValue::Double(v) => HostValue::Double(*v),
            EValue::Bool(v) => HostValue::Bool(*v),
            EValue::None => HostValue::None,
            other => {
                return Err(RuntimeError::InvalidValue {
                    index: idx,
                    message: format!("{} outputs are not supported", other.kind()),
                })
            }
        })
    }
}

fn t_bound(t: &Tensor) -> String {
    format!("bound {:?} ({:?})", t.bound(), t.dynamism())
}
