//! Load-time folding of views of constants (`exec::fold`): which ops fold, and that a chain run with
//! folded ops gives the values it gives without folding, on every execute.

use etmlx_mlx::exec::fold::foldable_ops;
use etmlx_mlx::exec::Layout;
use etmlx_mlx::ir::{IntOrVid, Op, Tid, Vid};
use mlx::Array;

mod exec_common;
use exec_common::Harness;

fn f32s(values: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("array")
}

/// Constant 0 is [[1, 2, 3], [4, 5, 6]]; slots 1.. are temps; temp 2 is set per execute.
fn chain() -> Vec<Op> {
    vec![
        // 0: a transposed weight, as HF exports feed addmm: folds.
        Op::Transpose {
            x: Tid(0),
            out: Tid(1),
            perm: vec![1, 0],
        },
        // 1: uses it with a per-execute value; may write any slot it names, so temp 1 is no longer known.
        Op::Add {
            a: Tid(1),
            b: Tid(2),
            out: Tid(3),
        },
        // 2: a view of temp 1 after op 1: does not fold.
        Op::Transpose {
            x: Tid(1),
            out: Tid(5),
            perm: vec![1, 0],
        },
        // 3 and 4: a view of a constant, then a view of that folded view with a literal shape: both fold.
        Op::ExpandDims {
            x: Tid(0),
            out: Tid(4),
            axis: 0,
        },
        Op::Reshape {
            x: Tid(4),
            out: Tid(6),
            shape: vec![IntOrVid::Lit(3), IntOrVid::Lit(2)],
        },
        // 5: a shape read from a value slot may change between executes: does not fold.
        Op::Reshape {
            x: Tid(0),
            out: Tid(7),
            shape: vec![IntOrVid::Vid(Vid(0)), IntOrVid::Lit(2)],
        },
    ]
}

fn harness() -> Harness {
    Harness::with_constants(
        vec![chain()],
        vec![f32s(&[1., 2., 3., 4., 5., 6.], &[2, 3])],
    )
}

#[test]
fn only_views_of_values_fixed_at_load_fold() {
    let h = harness();
    let plan = foldable_ops(&h.graph, &Layout::new(&h.graph));
    assert_eq!(plan, vec![true, false, false, true, true, false]);
}

#[test]
fn folded_chain_computes_what_the_unfolded_chain_computes_on_every_execute() {
    let mut folded = harness();
    folded.fold().expect("fold");
    let mut plain = harness();
    for step in [10.0f32, 20.0] {
        for h in [&mut folded, &mut plain] {
            h.put_array(2, f32s(&[step; 6], &[3, 2]));
            h.put_int(0, 3);
            h.run_chain(0).expect("chain runs");
        }
        // The folded chain's view is the value stored at load: no graph node to run.
        let pending = |h: &mut Harness| mlx::graph_primitive_counts(&[&h.array(6)]).expect("count");
        assert!(pending(&mut folded).is_empty());
        assert!(!pending(&mut plain).is_empty());
        let transposed_plus = vec![1., 4., 2., 5., 3., 6.]
            .into_iter()
            .map(|v: f32| v + step)
            .collect::<Vec<_>>();
        for h in [&mut folded, &mut plain] {
            assert_eq!(h.read(3), (vec![3, 2], transposed_plus.clone()));
            assert_eq!(h.read(5), (vec![2, 3], vec![1., 2., 3., 4., 5., 6.]));
            assert_eq!(h.read(6), (vec![3, 2], vec![1., 2., 3., 4., 5., 6.]));
            assert_eq!(h.read(7), (vec![3, 2], vec![1., 2., 3., 4., 5., 6.]));
        }
    }
}

/// The default-mode exports' mask starts from `arange(max_ctx) + constant`: fixed at load, so it folds; an
/// arange with a run-time bound or arithmetic with a per-execute value does not.
#[test]
fn arithmetic_on_values_fixed_at_load_folds() {
    let chain = vec![
        Op::ARange {
            out: Tid(1),
            start: IntOrVid::Lit(0),
            stop: IntOrVid::Lit(4),
            step: IntOrVid::Lit(1),
            scalar_type: Some(6),
        },
        Op::Add {
            a: Tid(1),
            b: Tid(0),
            out: Tid(2),
        },
        Op::ARange {
            out: Tid(3),
            start: IntOrVid::Lit(0),
            stop: IntOrVid::Vid(Vid(0)),
            step: IntOrVid::Lit(1),
            scalar_type: Some(6),
        },
        Op::Multiply {
            a: Tid(2),
            b: Tid(4),
            out: Tid(5),
        },
    ];
    let make = || Harness::with_constants(vec![chain.clone()], vec![f32s(&[10.0], &[])]);
    let h = make();
    let plan = foldable_ops(&h.graph, &Layout::new(&h.graph));
    assert_eq!(plan, vec![true, true, false, false]);
    let mut folded = make();
    folded.fold().expect("fold");
    let mut plain = make();
    for h in [&mut folded, &mut plain] {
        h.put_int(0, 2);
        h.put_array(4, f32s(&[2.0; 4], &[4]));
        h.run_chain(0).expect("chain runs");
        assert_eq!(h.read(2), (vec![4], vec![10., 11., 12., 13.]));
        assert_eq!(h.read(5), (vec![4], vec![20., 22., 24., 26.]));
    }
}
