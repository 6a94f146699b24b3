//! Slot storage of one delegate handle, and the context every op function works through.

use mlx::{Array, Dtype, Stream};

use crate::error::ExecError;
use crate::ir::{FloatOrVid, Graph, IntOrVid, Tid, Vid};

/// Where a tensor slot lives, from the five consecutive Tid ranges (computed once per handle, so
/// the per-op lookup is two comparisons).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    num_constants: u32,
    /// First mutable-buffer id (= constants + inputs + outputs).
    buffers_start: u32,
    /// First temp id.
    temps_start: u32,
    total: u32,
}

/// The array in slot `tid`, wherever it lives (what [`Ctx::get`] and the backend's output
/// preparation both read).
pub fn slot<'a>(
    layout: &Layout,
    persistent: &'a Persistent,
    transient: &'a Transient,
    tid: Tid,
) -> Result<&'a Array, ExecError> {
    let slot = match layout.locate(tid)? {
        Location::Constant(i) => persistent.constants.get(i).and_then(Option::as_ref),
        Location::MutableBuffer(i) => persistent.mutable_buffers.get(i).and_then(Option::as_ref),
        Location::Transient(i) => transient.tensors.get(i).and_then(Option::as_ref),
    };
    slot.ok_or(ExecError::UninitializedTensor(tid.0))
}

pub enum Location {
    Constant(usize),
    MutableBuffer(usize),
    /// Inputs, outputs and temps share one per-execute vector.
    Transient(usize),
}

impl Layout {
    pub fn new(g: &Graph) -> Layout {
        let buffers_start = g.num_constants + g.num_inputs + g.num_outputs;
        let temps_start = buffers_start + g.num_mutable_buffers;
        Layout {
            num_constants: g.num_constants,
            buffers_start,
            temps_start,
            total: g.total_tensors(),
        }
    }
    pub fn locate(&self, tid: Tid) -> Result<Location, ExecError> {
        let t = tid.0;
        Ok(if t < self.num_constants {
            Location::Constant(t as usize)
        } else if t < self.buffers_start {
            Location::Transient((t - self.num_constants) as usize)
        } else if t < self.temps_start {
            Location::MutableBuffer((t - self.buffers_start) as usize)
        } else if t < self.total {
            Location::Transient(
                (t - self.num_constants - (self.temps_start - self.buffers_start)) as usize,
            )
        } else {
            return Err(ExecError::UninitializedTensor(t));
        })
    }
}

/// A scalar value slot. The exporter only produces int32 values today; floats and bools are
/// accepted where `FloatOrVid` reads them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i32),
    Float(f32),
    Bool(bool),
}

/// Arrays that live as long as the handle: constants and mutable buffers.
pub struct Persistent {
    /// Indexed by Tid (`0..num_constants`). `None` once released: a constant only load-time folding read
    /// (a weight concatenated into a fused projection) is dropped after the fold (see [`super::fold`]).
    pub constants: Vec<Option<Array>>,
    /// Indexed by `tid - first_mutable_buffer`.
    pub mutable_buffers: Vec<Option<Array>>,
    /// Per main-chain op index: the output slot and value of an op folded at load ([`super::fold`]).
    pub folded: Vec<Option<(Tid, Array)>>,
}

/// Arrays and values of one execute: inputs, outputs, temps and value slots. Cleared after every
/// execute so no stray handle keeps an old buffer alive (which would defeat in-place updates).
#[derive(Default)]
pub struct Transient {
    /// Inputs, outputs and temps, indexed by `Layout::locate`.
    pub tensors: Vec<Option<Array>>,
    pub values: Vec<Option<Value>>,
    /// What is known about each array in `tensors` beyond the array, parallel to it.
    pub facts: Vec<SlotFacts>,
    /// The attention block this execute is running fused, between its first op and its attention.
    pub decode_attention: Option<super::decode_attention::Pending>,
    /// The cache row of this execute's fused attention blocks as an int32 scalar array (one per execute).
    start_row: Option<(i32, Array)>,
    /// Large products since this execute's last stage (see `stage`).
    pub stage_progress: super::stage::StageProgress,
}

/// What is known about a transient slot's array beyond the array itself. Forgotten whenever the slot is written
/// ([`Ctx::set`]) and after every execute.
#[derive(Default, Clone)]
pub struct SlotFacts {
    /// A host copy of its values (see [`HostInts`]).
    pub host_ints: Option<HostInts>,
    /// For a compiled SiLU's output, that SiLU's input: a multiply of the slot then builds one fused
    /// `silu(gate) * up` instead (see `elementwise::multiply`).
    pub silu_input: Option<Array>,
}

/// The values of a small integer tensor known on the host without evaluating anything: a delegate input copied
/// from the host, and `Take` / `ExpandDims` / `IdCopy` results of such a tensor. `ItemInt` reads them instead of
/// calling MLX's `item()`, which on a GPU waits for every kernel queued before it on the stream: in a pipelined
/// decode that would stall building step t+1 until step t has finished (the position read at the top of every
/// official LLM export is such an `ItemInt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInts {
    pub shape: Vec<i32>,
    /// Row-major.
    pub values: Vec<i64>,
}

impl HostInts {
    /// Tensors above this many elements get no host copy (positions and token ids of a prefill chunk fit).
    pub const MAX_ELEMENTS: usize = 4096;

    /// `values` in `shape`, when small enough and consistent.
    pub fn new(shape: Vec<i32>, values: Vec<i64>) -> Option<HostInts> {
        let numel: i64 = shape.iter().map(|&d| i64::from(d)).product();
        (values.len() <= Self::MAX_ELEMENTS
            && numel == values.len() as i64
            && shape.iter().all(|&d| d >= 0))
        .then_some(HostInts { shape, values })
    }

    /// Element `index` along `axis` (both already in range), as MLX's `take` with a scalar index.
    pub fn take(&self, index: usize, axis: usize) -> Option<HostInts> {
        let n = *self.shape.get(axis)? as usize;
        let inner: usize = self.shape[axis + 1..].iter().map(|&d| d as usize).product();
        let outer: usize = self.shape[..axis].iter().map(|&d| d as usize).product();
        let values = (0..outer)
            .flat_map(|o| {
                let base = (o * n + index) * inner;
                self.values[base..base + inner].iter().copied()
            })
            .collect();
        let mut shape = self.shape.clone();
        shape.remove(axis);
        HostInts::new(shape, values)
    }

    /// The same values with a size-1 axis inserted at `axis` (already normalised to 0..=rank).
    pub fn expand_dims(&self, axis: usize) -> Option<HostInts> {
        let mut shape = self.shape.clone();
        (axis <= shape.len()).then(|| shape.insert(axis, 1))?;
        HostInts::new(shape, self.values.clone())
    }
}

impl Transient {
    pub fn new(graph: &Graph) -> Self {
        let n = graph.num_inputs + graph.num_outputs + graph.num_temps;
        Transient {
            tensors: vec![None; n as usize],
            values: vec![None; graph.num_values as usize],
            facts: vec![SlotFacts::default(); n as usize],
            decode_attention: None,
            start_row: None,
            stage_progress: Default::default(),
        }
    }

    /// `row` as an int32 scalar array, made once per execute for all its fused attention blocks.
    pub fn start_array(&mut self, row: i32) -> Result<Array, ExecError> {
        match &self.start_row {
            Some((cached, array)) if *cached == row => Ok(array.clone()),
            _ => {
                let array = Array::scalar_i32(row)?;
                self.start_row = Some((row, array.clone()));
                Ok(array)
            }
        }
    }
    pub fn clear(&mut self) {
        self.tensors.iter_mut().for_each(|t| *t = None);
        self.values.iter_mut().for_each(|v| *v = None);
        self.facts
            .iter_mut()
            .for_each(|f| *f = SlotFacts::default());
        self.decode_attention = None;
        self.start_row = None;
        self.stage_progress = Default::default();
    }
}

/// The last position [B, 1, X] of a rank-3 `x` [B, T, X] with T > 1; `None` for anything else.
pub fn last_position(x: &Array, stream: Stream) -> Result<Option<Array>, ExecError> {
    Ok(match x.shape()[..] {
        [b, t, k] if t > 1 => Some(mlx::ops::slice(
            x,
            &[0, t - 1, 0],
            &[b, t, k],
            &[1, 1, 1],
            stream,
        )?),
        _ => None,
    })
}

/// What op functions see: the graph, the slots, the stream, and whether this is the init chain
/// (the only time constants may be written).
pub struct Ctx<'a> {
    pub graph: &'a Graph,
    pub layout: Layout,
    pub persistent: &'a mut Persistent,
    pub transient: &'a mut Transient,
    pub stream: Stream,
    pub is_init_chain: bool,
    pub cache: Option<&'a mut crate::cache::SequenceCache>,
    pub options: &'a crate::backend::ExecOptions,
    /// Outputs whose products only need their last position (see [`Ctx::last_position_product`]).
    pub last_position_products: &'a [Tid],
    /// The main chain's attention blocks (see [`super::decode_attention`]).
    pub decode_attention: &'a super::decode_attention::Plan,
    /// The main chain's residual add + norm pairs (see [`super::residual_norm`]).
    pub residual_norm: &'a super::residual_norm::Plan,
}

impl Ctx<'_> {
    /// The array in slot `tid`.
    pub fn get(&self, tid: Tid) -> Result<&Array, ExecError> {
        slot(&self.layout, self.persistent, self.transient, tid)
    }

    /// An optional tensor operand.
    pub fn get_opt(&self, tid: Option<Tid>) -> Result<Option<&Array>, ExecError> {
        tid.map(|t| self.get(t)).transpose()
    }

    /// Stores `array` in slot `tid`, dropping the handle it held (so MLX can reuse that buffer).
    /// Constants are writable only by the init chain.
    pub fn set(&mut self, tid: Tid, array: Array) -> Result<(), ExecError> {
        let slot = match self.layout.locate(tid)? {
            Location::Constant(_) if !self.is_init_chain => {
                return Err(ExecError::WriteToConstant(tid.0))
            }
            Location::Constant(i) => {
                let c = self
                    .persistent
                    .constants
                    .get_mut(i)
                    .ok_or(ExecError::UninitializedTensor(tid.0))?;
                *c = Some(array);
                return Ok(());
            }
            Location::MutableBuffer(i) => self.persistent.mutable_buffers.get_mut(i),
            Location::Transient(i) => {
                // What was known described what the slot held before.
                if let Some(f) = self.transient.facts.get_mut(i) {
                    *f = SlotFacts::default();
                }
                self.transient.tensors.get_mut(i)
            }
        };
        *slot.ok_or(ExecError::UninitializedTensor(tid.0))? = Some(array);
        Ok(())
    }

    /// What is known about the array in slot `tid` (transient slots only).
    fn facts(&self, tid: Tid) -> Option<&SlotFacts> {
        match self.layout.locate(tid).ok()? {
            Location::Transient(i) => self.transient.facts.get(i),
            _ => None,
        }
    }

    fn facts_mut(&mut self, tid: Tid) -> Option<&mut SlotFacts> {
        match self.layout.locate(tid).ok()? {
            Location::Transient(i) => self.transient.facts.get_mut(i),
            _ => None,
        }
    }

    /// The host copy of slot `tid`'s values, when there is one (see [`HostInts`]).
    pub fn host_ints(&self, tid: Tid) -> Option<&HostInts> {
        self.facts(tid)?.host_ints.as_ref()
    }

    /// Records the host copy of what slot `tid` now holds (call right after `set`).
    pub fn set_host_ints(&mut self, tid: Tid, values: Option<HostInts>) {
        if let Some(f) = self.facts_mut(tid) {
            f.host_ints = values;
        }
    }

    /// The input of the compiled SiLU whose output slot `tid` holds, if it holds one.
    pub fn silu_input(&self, tid: Tid) -> Option<&Array> {
        self.facts(tid)?.silu_input.as_ref()
    }

    /// Records that slot `tid` now holds `silu(input)` (call right after `set`).
    pub fn set_silu_input(&mut self, tid: Tid, input: Array) {
        if let Some(f) = self.facts_mut(tid) {
            f.silu_input = Some(input);
        }
    }

    /// The rows of `x` a product writing `out` needs: with `last_position_outputs` only the last position of a
    /// rank-3 `x` [B, T, K] reaches the caller when `out` is an output nothing reads back (an LLM's logits), so
    /// the product is computed for that row alone. For a prefill of T tokens that skips T - 1 rows of the
    /// largest product of the model (the vocabulary projection); the output is the [B, 1, N] that
    /// `last_position_outputs` returns anyway.
    pub fn last_position_product(&self, x: &Array, out: Tid) -> Result<Option<Array>, ExecError> {
        if !self.last_position_products.contains(&out) {
            return Ok(None);
        }
        last_position(x, self.stream)
    }

    /// Whether SiLU and gated multiplies run as compiled kernels ([`crate::backend::option_keys::COMPILE_SWIGLU`]).
    pub fn compiles_swiglu(&self) -> bool {
        self.options
            .compile_swiglu
            .unwrap_or(self.stream.device().device_type == mlx::DeviceType::Gpu)
    }

    /// Whether attention blocks of one-token steps run as one kernel
    /// ([`crate::backend::option_keys::FUSE_DECODE_ATTENTION`]; by default on CUDA, where the kernel exists).
    pub fn fuses_decode_attention(&self) -> bool {
        self.options.fuse_decode_attention.unwrap_or(self.on_cuda())
    }

    /// Device work per staged submission in MFLOP, 0 = none ([`crate::backend::option_keys::STAGE_MFLOP`]; by
    /// default [`super::stage::DEFAULT_STAGE_MFLOP`] on CUDA, where it was measured, 0 elsewhere).
    pub fn stage_mflop(&self) -> usize {
        self.options.stage_mflop.unwrap_or(if self.on_cuda() {
            super::stage::DEFAULT_STAGE_MFLOP
        } else {
            0
        })
    }

    /// Whether a residual add and the RMS norm of its sum run as one kernel
    /// ([`crate::backend::option_keys::FUSE_RESIDUAL_NORM`]; off unless asked for).
    pub fn fuses_residual_norm(&self) -> bool {
        self.options.fuse_residual_norm.unwrap_or(false)
    }

    /// Takes the array out of a writable slot, for in-place updates: the caller builds the updated
    /// array and `set`s it back, so no second handle to the old buffer survives and MLX can donate
    /// it. Constants are refused outside the init chain, as in the reference runtime.
    pub fn take(&mut self, tid: Tid) -> Result<Array, ExecError> {
        let slot = match self.layout.locate(tid)? {
            Location::Constant(_) if !self.is_init_chain => {
                return Err(ExecError::WriteToConstant(tid.0))
            }
            Location::Constant(_) => return self.get(tid).cloned(),
            Location::MutableBuffer(i) => self.persistent.mutable_buffers.get_mut(i),
            Location::Transient(i) => self.transient.tensors.get_mut(i),
        };
        slot.and_then(Option::take)
            .ok_or(ExecError::UninitializedTensor(tid.0))
    }

    pub fn value(&self, vid: Vid) -> Result<Value, ExecError> {
        self.transient
            .values
            .get(vid.0 as usize)
            .copied()
            .flatten()
            .ok_or(ExecError::UninitializedValue(vid.0))
    }

    pub fn set_value(&mut self, vid: Vid, v: Value) -> Result<(), ExecError> {
        let slot = self
            .transient
            .values
            .get_mut(vid.0 as usize)
            .ok_or(ExecError::UninitializedValue(vid.0))?;
        *slot = Some(v);
        Ok(())
    }

    /// Resolves an int operand. Literals are clamped to int32 (`i64::MAX` → `i32::MAX`, which
    /// slice bounds use as "to the end"); value slots must hold ints.
    pub fn int(&self, v: IntOrVid) -> Result<i32, ExecError> {
        match v {
            IntOrVid::Lit(x) => Ok(x.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
            IntOrVid::Vid(vid) => match self.value(vid)? {
                Value::Int(i) => Ok(i),
                other => Err(ExecError::ValueKind {
                    vid: vid.0,
                    expected: "int",
                    found: format!("{other:?}"),
                }),
            },
        }
    }

    pub fn ints(&self, vs: &[IntOrVid]) -> Result<Vec<i32>, ExecError> {
        vs.iter().map(|&v| self.int(v)).collect()
    }

    /// Resolves a float operand (a literal narrowed to f32, or an int/float value slot).
    pub fn float(&self, v: FloatOrVid) -> Result<f32, ExecError> {
        match v {
            FloatOrVid::Lit(x) => Ok(x as f32),
            FloatOrVid::Vid(vid) => match self.value(vid)? {
                Value::Int(i) => Ok(i as f32),
                Value::Float(f) => Ok(f),
                Value::Bool(b) => Ok(b as u8 as f32),
            },
        }
    }

    /// The MLX dtype of an ExecuTorch ScalarType code.
    pub fn dtype(&self, scalar_type: i8) -> Result<Dtype, ExecError> {
        crate::dtype::mlx_dtype(scalar_type)
    }

    pub fn s(&self) -> Stream {
        self.stream
    }

    /// True when ops run on MLX's CUDA backend (the GPU off macOS), for CUDA-specific workarounds.
    pub fn on_cuda(&self) -> bool {
        self.stream.device().device_type == mlx::DeviceType::Gpu && !cfg!(target_os = "macos")
    }
}

#[cfg(test)]
mod host_ints_tests {
    use super::HostInts;
    use mlx::{Array, DeviceType, Stream};

    fn cpu() -> Stream {
        Stream::new_any_thread(DeviceType::Cpu).expect("stream")
    }

    /// The host copy must hold what MLX computes for the same op: checked against `take_index` and
    /// `expand_dims` on every axis of a [2, 3, 4] tensor.
    #[test]
    fn host_copies_follow_mlx_take_and_expand_dims() {
        let values: Vec<i64> = (0..24).map(|v| v * 7 - 40).collect();
        let shape = vec![2, 3, 4];
        let host = HostInts::new(shape.clone(), values.clone()).expect("small");
        let array = Array::from_slice(&values, &shape).expect("array");
        for (axis, &size) in shape.iter().enumerate() {
            for index in 0..size as usize {
                let mlx =
                    mlx::ops::take_index(&array, index as i32, axis as i32, cpu()).expect("take");
                let ours = host.take(index, axis).expect("host take");
                assert_eq!(ours.shape, mlx.shape(), "axis {axis} index {index}");
                assert_eq!(
                    ours.values,
                    mlx.to_vec::<i64>().expect("read"),
                    "axis {axis} index {index}"
                );
            }
        }
        for axis in 0..=3usize {
            let mlx = mlx::ops::expand_dims(&array, axis as i32, cpu()).expect("expand");
            let ours = host.expand_dims(axis).expect("host expand");
            assert_eq!(ours.shape, mlx.shape(), "axis {axis}");
            assert_eq!(ours.values, values);
        }
        assert!(host.expand_dims(4).is_none(), "past the rank");
        assert!(
            HostInts::new(vec![2, 2], vec![1, 2, 3]).is_none(),
            "shape and values disagree"
        );
        assert!(
            HostInts::new(vec![5000], vec![0; 5000]).is_none(),
            "too large to copy"
        );
    }
}
