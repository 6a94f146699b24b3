//! A loaded program: the parsed `.pte` (plus optional `.ptd`), the backends that may run its
//! delegates, and method loading (planned arenas, values, kernels, delegate init).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use etmlx_pte::{Instruction, Ptd, Pte, TensorData, TensorKind, Value};

use crate::backend::{Backend, BackendInitContext, BackendOptions, BackendRegistry, NamedDataMap};
use crate::error::{Result, RuntimeError};
use crate::evalue::EValue;
use crate::kernels;
use crate::method::{HostValue, LoadedDelegate, Method, Step, ValueStore};
use crate::tensor::{Storage, Tensor};

/// Largest planned arena the runtime will allocate (64 GiB); a file asking for more is refused
/// rather than aborting the process on allocation failure.
pub const MAX_ARENA_BYTES: u64 = 64 << 30;

/// The `.pte`'s named data merged with the `.ptd`'s, as delegates see it.
struct MergedNamedData(etmlx_pte::NamedDataMap);

impl NamedDataMap for MergedNamedData {
    fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.bytes(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|b| b.key.as_str()).collect()
    }
}

/// A program ready to load methods from. Clones share the mapped file and its named data (so the MLX backend
/// shares the constants of methods loaded from them); each clone has its own backends and options.
#[derive(Clone)]
pub struct Program {
    pte: Arc<Pte>,
    named_data: Arc<MergedNamedData>,
    backends: BackendRegistry,
    options: BackendOptions,
}

impl Program {
    /// Opens a `.pte` (memory-mapped) and an optional `.ptd` whose named data is merged in.
    pub fn open(pte: impl AsRef<Path>, ptd: Option<&Path>) -> Result<Program> {
        let pte = Pte::open(pte.as_ref())?;
        let ptd = ptd.map(Ptd::open).transpose()?;
        Program::new(pte, ptd)
    }

    pub fn new(pte: Pte, ptd: Option<Ptd>) -> Result<Program> {
        let named = etmlx_pte::NamedDataMap::new(&pte, ptd.as_ref())?;
        Ok(Program {
            pte: Arc::new(pte),
            named_data: Arc::new(MergedNamedData(named)),
            backends: BackendRegistry::new(),
            options: BackendOptions::default(),
        })
    }

    /// Makes `backend` available to delegates with its id.
    pub fn register_backend(&mut self, backend: Arc<dyn Backend>) -> &mut Self {
        self.backends.register(backend);
        self
    }

    /// Load-time options passed to backends when methods are loaded.
    pub fn set_backend_options(&mut self, options: BackendOptions) -> &mut Self {
        self.options = options;
        self
    }

    pub fn pte(&self) -> &Pte {
        &self.pte
    }

    pub fn method_names(&self) -> Vec<&str> {
        self.pte.program().method_names().collect()
    }

    /// Operators of method `name` that no portable kernel implements.
    pub fn missing_kernels(&self, name: &str) -> Result<Vec<String>> {
        let plan = self.plan(name)?;
        let registry = kernels::registry();
        let missing: BTreeSet<String> = plan
            .operators
            .iter()
            .filter(|op| kernels::lookup(&registry, &op.name, &op.overload).is_none())
            .map(|op| op.qualified_name())
            .collect();
        Ok(missing.into_iter().collect())
    }

    fn plan(&self, name: &str) -> Result<&etmlx_pte::ExecutionPlan> {
        self.pte.plan(name).ok_or_else(|| {
            RuntimeError::MethodNotFound(name.to_string(), self.method_names().join(", "))
        })
    }

    /// Runs a constant-getter method (no inputs; e.g. `get_max_seq_len`) and returns its values.
    pub fn constant_method(&self, name: &str) -> Result<Vec<HostValue>> {
        let mut method = self.load_method(name)?;
        method.execute()?;
        method.outputs()
    }

    /// Loads method `name`: allocates its planned arenas, materialises its values, resolves its
    /// kernels (failing with the list of missing operators) and initialises its delegates.
    pub fn load_method(&self, name: &str) -> Result<Method> {
        let plan = self.plan(name)?;
        let missing = self.missing_kernels(name)?;
        if !missing.is_empty() {
            return Err(RuntimeError::MissingKernels {
                method: name.to_string(),
                missing: missing.join(", "),
            });
        }

        let mut arenas = Vec::new();
        for (id, &size) in plan.non_const_buffer_sizes.iter().enumerate().skip(1) {
            if size > MAX_ARENA_BYTES {
                return Err(RuntimeError::Memory(format!(
                    "planned buffer {id} of {size} bytes exceeds the {MAX_ARENA_BYTES}-byte limit"
                )));
            }
            let mut arena = Vec::new();
            arena.try_reserve_exact(size as usize).map_err(|_| {
                RuntimeError::Memory(format!(
                    "cannot allocate planned buffer {id} of {size} bytes"
                ))
            })?;
            arena.resize(size as usize, 0u8);
            arenas.push(arena);
        }

        let mut values = Vec::with_capacity(plan.values.len());
        for (index, value) in plan.values.iter().enumerate() {
            values.push(self.materialize(value, &mut arenas).map_err(|e| {
                RuntimeError::InvalidValue {
                    index,
                    message: e.to_string(),
                }
            })?);
        }

        let registry = kernels::registry();
        let kernel_fns = plan
            .operators
            .iter()
            .map(|op| {
                let f = kernels::lookup(&registry, &op.name, &op.overload)
                    .expect("missing kernels were rejected above");
                (op.qualified_name(), f)
            })
            .collect();

        let mut delegates = Vec::with_capacity(plan.delegates.len());
        for (index, d) in plan.delegates.iter().enumerate() {
            let backend = self.backends.get(&d.id).ok_or_else(|| {
                RuntimeError::MissingBackend(d.id.clone(), self.backends.ids().join(", "))
            })?;
            let blob = self.pte.delegate_blob(d)?;
            let specs: Vec<(String, Vec<u8>)> = d
                .compile_specs
                .iter()
                .map(|s| (s.key.clone(), s.value.clone()))
                .collect();
            let empty = Default::default();
            let ctx = BackendInitContext {
                blob,
                compile_specs: &specs,
                named_data: self.named_data.as_ref(),
                options: self.options.for_backend(&d.id).unwrap_or(&empty),
                method: name,
                delegate_index: index,
            };
            let handle = backend.init(&ctx).map_err(|e| RuntimeError::Backend {
                backend: d.id.clone(),
                message: format!("method '{name}', delegate {index}: {e}"),
            })?;
            delegates.push(LoadedDelegate {
                backend_id: d.id.clone(),
                handle,
            });
        }

        // ExecuTorch runs the first chain; exporters write exactly one.
        let steps = plan
            .chains
            .first()
            .map(|chain| chain.instructions.iter().map(step_of).collect())
            .unwrap_or_default();

        Ok(Method {
            name: name.to_string(),
            store: ValueStore { values, arenas },
            inputs: plan.inputs.clone(),
            outputs: plan.outputs.clone(),
            steps,
            kernels: kernel_fns,
            delegates,
        })
    }

    fn materialize(&self, value: &Value, arenas: &mut [Vec<u8>]) -> Result<EValue> {
        Ok(match value {
            Value::Null => EValue::None,
            Value::Int(v) => EValue::Int(*v),
            Value::Bool(v) => EValue::Bool(*v),
            Value::Double(v) => EValue::Double(*v),
            Value::String(s) => EValue::String(s.clone()),
            Value::IntList(items) => EValue::IntList(items.clone()),
            Value::DoubleList(items) => EValue::DoubleList(items.clone()),
            Value::BoolList(items) => EValue::BoolList(items.clone()),
            Value::TensorList(items) => EValue::TensorList(items.clone()),
            Value::OptionalTensorList(items) => EValue::OptionalTensorList(items.clone()),
            Value::Tensor(info) => {
                let sizes = info.sizes.iter().map(|&d| d as i64).collect();
                let mut t = Tensor::new(
                    info.scalar_type,
                    sizes,
                    info.dim_order.clone(),
                    info.dynamism,
                )?;
                t.storage = match info.kind() {
                    TensorKind::Constant => Storage::Owned(self.constant_bytes(info)?.to_vec()),
                    TensorKind::Unallocated => Storage::Empty,
                    TensorKind::Planned | TensorKind::PlannedWithInitial => {
                        let a = info.allocation.expect("planned tensors have an allocation");
                        let arena = (a.memory_id as usize).checked_sub(1).ok_or_else(|| {
                            RuntimeError::Memory("memory_id 0 is reserved".into())
                        })?;
                        let offset = usize::try_from(a.offset).map_err(|_| {
                            RuntimeError::Memory(format!("offset {} too large", a.offset))
                        })?;
                        let cap = t.capacity_bytes();
                        let slice = arenas
                            .get_mut(arena)
                            .and_then(|buf| buf.get_mut(offset..offset.checked_add(cap)?))
                            .ok_or_else(|| {
                                RuntimeError::Memory(format!(
                                    "tensor at offset {offset} (+{cap} bytes) does not fit planned buffer {}",
                                    a.memory_id
                                ))
                            })?;
                        if info.kind() == TensorKind::PlannedWithInitial {
                            let init = self.pte.mutable_initial_bytes(info)?;
                            let n = init.len().min(slice.len());
                            slice[..n].copy_from_slice(&init[..n]);
                        }
                        Storage::Planned { arena, offset }
                    }
                };
                EValue::Tensor(t)
            }
        })
    }

    fn constant_bytes(&self, info: &etmlx_pte::TensorInfo) -> Result<&[u8]> {
        match &info.data {
            TensorData::External { key } => self.named_data.0.bytes(key).ok_or_else(|| {
                RuntimeError::Memory(format!(
                    "external constant '{key}' is not in the named data (pass the matching .ptd)"
                ))
            }),
            _ => Ok(self.pte.constant_bytes(info)?),
        }
    }
}

fn step_of(instruction: &Instruction) -> Step {
    match instruction {
        Instruction::KernelCall { op_index, args } => Step::Kernel {
            op: *op_index,
            args: args.clone(),
        },
        Instruction::DelegateCall {
            delegate_index,
            args,
        } => Step::Delegate {
            delegate: *delegate_index,
            args: args.clone(),
        },
        Instruction::MoveCall { from, to } => Step::Move {
            from: *from,
            to: *to,
        },
        Instruction::JumpFalseCall {
            cond_value_index,
            destination_instruction,
        } => Step::JumpFalse {
            cond: *cond_value_index,
            destination: *destination_instruction,
        },
        Instruction::FreeCall { value_index } => Step::Free {
            value: *value_index,
        },
    }
}
