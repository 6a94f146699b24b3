//! Executor tests for the nodes no official suite config exercises (If, Scan, Median, Noop), on
//! hand-computed values: chains built directly as IR, run through `exec::run_chain`.

use etmlx_mlx::exec::Value;
use etmlx_mlx::ir::{ChainIdx, IntOrVid, Op, Tid, Vid};
use mlx::Array;

mod exec_common;
use exec_common::Harness;

/// Runs chain 0 of a graph made of `chains`, with the given temps and int values set first, and
/// returns temp `read`.
fn run(chains: Vec<Vec<Op>>, temps: &[(u32, Array)], values: &[(u32, i32)], read: u32) -> Vec<f32> {
    let mut h = Harness::with_chains(chains);
    for (slot, a) in temps {
        h.put_array(*slot, a.clone());
    }
    for &(vid, v) in values {
        h.put_value(vid, Value::Int(v));
    }
    h.run_chain(0).expect("chain runs");
    h.read(read).1
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
    let x = f32s(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
    let carry = f32s(&[0., 0.], &[2]);
    let out = run(vec![main, body], &[(0, x), (2, carry)], &[], 3);
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
    let chains = vec![main, then_chain, else_chain];
    let x = || f32s(&[3.], &[1]);
    assert_eq!(run(chains.clone(), &[(0, x())], &[(0, 5)], 1), vec![6.]);
    assert_eq!(run(chains, &[(0, x())], &[(0, 0)], 1), vec![9.]);
    // A literal condition works the same way.
    let literal = vec![
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
    ];
    assert_eq!(run(literal, &[(0, x())], &[], 1), vec![6.]);
}

#[test]
fn median_and_noop() {
    // Median over axis 1 of [[3, 1, 2], [9, 7, 8]] is [2, 8]; Noop changes nothing.
    let g = vec![vec![
        Op::Noop {},
        Op::Median {
            x: Tid(0),
            out: Tid(1),
            axes: vec![1],
            keepdims: false,
        },
    ]];
    let x = f32s(&[3., 1., 2., 9., 7., 8.], &[2, 3]);
    assert_eq!(run(g, &[(0, x)], &[], 1), vec![2., 8.]);
}
