//! Executor tests for the nodes no official suite config exercises (If, Scan, Median, Noop), on
//! hand-computed values: chains built directly as IR, run through `exec::run_chain`.

use etmlx_mlx::exec::{run_chain, Ctx, Layout, Persistent, Transient, Value};
use etmlx_mlx::ir::{ChainIdx, Graph, IntOrVid, Op, Tid, Vid};
use etmlx_mlx::ExecOptions;
use mlx::{Array, DeviceType, Stream};

fn graph(chains: Vec<Vec<Op>>) -> Graph {
    Graph {
        version: 1,
        num_constants: 0,
        num_inputs: 0,
        num_outputs: 0,
        num_mutable_buffers: 0,
        num_temps: 8,
        num_values: 2,
        chains,
        main_chain: 0,
        init_chain: None,
        input_map: vec![],
        output_map: vec![],
        mutable_buffer_map: vec![],
        named_slots: vec![],
        tensor_meta: vec![],
    }
}

/// Runs chain 0 of `g` with the given temps and values set first, and returns temp `read`.
fn run(g: &Graph, temps: &[(u32, Array)], values: &[(u32, i32)], read: u32) -> Vec<f32> {
    let mut persistent = Persistent {
        constants: vec![],
        mutable_buffers: vec![],
    };
    let mut transient = Transient::new(g);
    let options = ExecOptions::default();
    let mut cx = Ctx {
        layout: Layout::new(g),
        graph: g,
        persistent: &mut persistent,
        transient: &mut transient,
        stream: Stream::new(DeviceType::Cpu).expect("CPU stream"),
        is_init_chain: false,
        cache: None,
        options: &options,
    };
    for (slot, a) in temps {
        cx.set(Tid(*slot), a.clone()).expect("set temp");
    }
    for &(vid, v) in values {
        cx.set_value(Vid(vid), Value::Int(v)).expect("set value");
    }
    run_chain(&mut cx, 0).expect("chain runs");
    cx.get(Tid(read))
        .expect("result")
        .to_vec::<f32>()
        .expect("f32 result")
}

fn f32s(values: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("array")
}

#[test]
fn scan_stacks_a_running_sum_through_its_carry() {
    // Body: carry += slice; out = carry. Over rows [1,2], [3,4], [5,6] the stacked outputs are
    // the running sums [1,2], [4,6], [9,12].
    let body = vec![
        Op::Add {
            a: Tid(2),
            b: Tid(1),
            out: Tid(2),
        },
        Op::IdCopy {
            x: Tid(2),
            out: Tid(3),
        },
    ];
    let main = vec![Op::Scan {
        originals: vec![Tid(0)],
        sliced: vec![Tid(1)],
        outputs: vec![Tid(3)],
        carry: vec![Tid(2)],
        body_chain_idx: ChainIdx(1),
        scan_axis: 0,
    }];
    let g = graph(vec![main, body]);
    let x = f32s(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
    let carry = f32s(&[0., 0.], &[2]);
    let out = run(&g, &[(0, x), (2, carry)], &[], 3);
    assert_eq!(out, vec![1., 2., 4., 6., 9., 12.]);
}

#[test]
fn if_runs_the_branch_its_condition_selects() {
    // then: out = x + x; else: out = x * x. With x = [3]: 6 when cond != 0, 9 when cond == 0.
    let main = vec![Op::If {
        cond: IntOrVid::Vid(Vid(0)),
        then_chain_idx: ChainIdx(1),
        else_chain_idx: ChainIdx(2),
    }];
    let then_chain = vec![Op::Add {
        a: Tid(0),
        b: Tid(0),
        out: Tid(1),
    }];
    let else_chain = vec![Op::Multiply {
        a: Tid(0),
        b: Tid(0),
        out: Tid(1),
    }];
    let g = graph(vec![main, then_chain, else_chain]);
    let x = || f32s(&[3.], &[1]);
    assert_eq!(run(&g, &[(0, x())], &[(0, 5)], 1), vec![6.]);
    assert_eq!(run(&g, &[(0, x())], &[(0, 0)], 1), vec![9.]);
    // A literal condition works the same way.
    let literal = graph(vec![
        vec![Op::If {
            cond: IntOrVid::Lit(1),
            then_chain_idx: ChainIdx(1),
            else_chain_idx: ChainIdx(2),
        }],
        vec![Op::Add {
            a: Tid(0),
            b: Tid(0),
            out: Tid(1),
        }],
        vec![Op::Multiply {
            a: Tid(0),
            b: Tid(0),
            out: Tid(1),
        }],
    ]);
    assert_eq!(run(&literal, &[(0, x())], &[], 1), vec![6.]);
}

#[test]
fn median_and_noop() {
    // Median over axis 1 of [[3, 1, 2], [9, 7, 8]] is [2, 8]; Noop changes nothing.
    let g = graph(vec![vec![
        Op::Noop {},
        Op::Median {
            x: Tid(0),
            out: Tid(1),
            axes: vec![1],
            keepdims: false,
        },
    ]]);
    let x = f32s(&[3., 1., 2., 9., 7., 8.], &[2, 3]);
    assert_eq!(run(&g, &[(0, x)], &[], 1), vec![2., 8.]);
}
