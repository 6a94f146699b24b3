//! A slot harness for executor tests: a graph of temp slots and value slots, ops run through
//! `exec::dispatch` (or whole chains through `exec::run_chain`) on MLX's CPU stream.
#![allow(dead_code)] // each test file uses part of it

use etmlx_mlx::exec::fold::fold_main_chain;
use etmlx_mlx::exec::{dispatch, run_chain, Ctx, Layout, Persistent, Transient, Value};
use etmlx_mlx::ir::{Graph, Op, Tid, Vid};
use etmlx_mlx::{ExecError, ExecOptions};
use mlx::{Array, DeviceType, Dtype, Stream};

pub const TEMPS: u32 = 8;
pub const VALUES: u32 = 4;

/// Everything a `Ctx` borrows, owned by the test.
pub struct Harness {
    pub graph: Graph,
    persistent: Persistent,
    transient: Transient,
    pub options: ExecOptions,
    pub stream: Stream,
}

impl Harness {
    /// One empty main chain: ops are run one by one with [`Harness::run`].
    pub fn new() -> Harness {
        Harness::with_chains(vec![vec![]])
    }

    /// A graph with these chains (chain 0 is the main chain), run with [`Harness::run_chain`].
    pub fn with_chains(chains: Vec<Vec<Op>>) -> Harness {
        Harness::with_constants(chains, vec![])
    }

    /// Like [`Harness::with_chains`], with constant slots `0..constants.len()` (temps follow them).
    pub fn with_constants(chains: Vec<Vec<Op>>, constants: Vec<Array>) -> Harness {
        let graph = Graph {
            version: 1,
            num_constants: constants.len() as u32,
            num_inputs: 0,
            num_outputs: 0,
            num_mutable_buffers: 0,
            num_temps: TEMPS,
            num_values: VALUES,
            chains,
            main_chain: 0,
            init_chain: None,
            input_map: vec![],
            output_map: vec![],
            mutable_buffer_map: vec![],
            named_slots: vec![],
            tensor_meta: vec![],
        };
        let transient = Transient::new(&graph);
        Harness {
            graph,
            persistent: Persistent {
                folded: Vec::new(),
                constants: constants.into_iter().map(Some).collect(),
                mutable_buffers: vec![],
            },
            transient,
            options: ExecOptions::default(),
            stream: Stream::new(DeviceType::Cpu).expect("CPU stream"),
        }
    }

    /// A harness around any graph (inputs and outputs are per-execute slots set with `put_*`).
    pub fn from_graph(graph: Graph, constants: Vec<Array>) -> Harness {
        let transient = Transient::new(&graph);
        Harness {
            graph,
            persistent: Persistent {
                folded: Vec::new(),
                constants: constants.into_iter().map(Some).collect(),
                mutable_buffers: vec![],
            },
            transient,
            options: ExecOptions::default(),
            stream: Stream::new(DeviceType::Cpu).expect("CPU stream"),
        }
    }

    /// Whether constant slot `tid` still holds its array (load-time folding releases some).
    pub fn holds_constant(&self, tid: u32) -> bool {
        matches!(self.persistent.constants.get(tid as usize), Some(Some(_)))
    }

    pub fn ctx(&mut self) -> Ctx<'_> {
        static NO_ATTENTION_BLOCKS: etmlx_mlx::exec::decode_attention::Plan =
            etmlx_mlx::exec::decode_attention::Plan::EMPTY;
        static NO_RESIDUAL_NORMS: etmlx_mlx::exec::residual_norm::Plan =
            etmlx_mlx::exec::residual_norm::Plan::EMPTY;
        Ctx {
            layout: Layout::new(&self.graph),
            graph: &self.graph,
            persistent: &mut self.persistent,
            transient: &mut self.transient,
            stream: self.stream,
            is_init_chain: false,
            cache: None,
            options: &self.options,
            last_position_products: &[],
            decode_attention: &NO_ATTENTION_BLOCKS,
            residual_norm: &NO_RESIDUAL_NORMS,
        }
    }

    pub fn put_array(&mut self, slot: u32, array: Array) {
        self.ctx().set(Tid(slot), array).expect("set temp");
    }

    pub fn put<T: mlx::Element>(&mut self, slot: u32, values: &[T], shape: &[i32]) {
        self.put_array(slot, Array::from_slice(values, shape).expect("array"));
    }

    pub fn put_f32(&mut self, slot: u32, values: &[f32], shape: &[i32]) {
        self.put(slot, values, shape);
    }

    pub fn put_value(&mut self, vid: u32, v: Value) {
        self.ctx().set_value(Vid(vid), v).expect("set value");
    }

    pub fn put_int(&mut self, vid: u32, v: i32) {
        self.put_value(vid, Value::Int(v));
    }

    pub fn run(&mut self, op: Op) -> Result<(), ExecError> {
        dispatch(&mut self.ctx(), &op)
    }

    /// Folds the main chain's views of constants, as a handle does at load (`exec::fold`).
    pub fn fold(&mut self) -> Result<(), ExecError> {
        let folded = fold_main_chain(&mut self.ctx())?;
        self.transient.clear();
        self.persistent.folded = folded;
        Ok(())
    }

    pub fn run_chain(&mut self, chain: usize) -> Result<(), ExecError> {
        run_chain(&mut self.ctx(), chain)
    }

    pub fn array(&mut self, slot: u32) -> Array {
        self.ctx().get(Tid(slot)).expect("written slot").clone()
    }

    /// Shape, dtype and the values as f32 (cast by MLX; exact for the small values tests use).
    pub fn read_typed(&mut self, slot: u32) -> (Vec<i32>, Dtype, Vec<f32>) {
        let a = self.array(slot);
        let as_f32 = mlx::ops::astype(&a, Dtype::Float32, self.stream).expect("astype");
        (
            a.shape(),
            a.dtype(),
            as_f32.to_vec::<f32>().expect("read back"),
        )
    }

    /// Shape and values as f32.
    pub fn read(&mut self, slot: u32) -> (Vec<i32>, Vec<f32>) {
        let (shape, _, values) = self.read_typed(slot);
        (shape, values)
    }
}
