//! Delegate-owned mutable buffers persist across `execute` calls (official fixture
//! `mutable_counter`: a zero-initialised accumulator; call N returns `N * [0, 2, 4, 6]`, expected
//! values from PyTorch eager in `expected_output_callN.bin`).

mod delegate_common;

use delegate_common::*;
use etmlx_runtime::BackendOptions;

#[test]
fn mutable_counter_accumulates_across_calls() {
    let dir = fixture("mutable_counter");
    let (rtol, atol) = tolerance(&dir);
    let program = open(&dir, BackendOptions::default());
    let mut method = program.load_method("forward").unwrap();
    let inputs = read_bin(&dir.join("input.bin"));
    for call in 1..=3 {
        let got = run(&mut method, &inputs);
        let want = read_bin(&dir.join(format!("expected_output_call{call}.bin")));
        assert_eq!(got.len(), want.len());
        assert_close(&format!("call {call}"), &got[0], &want[0], rtol, atol);
        // The meta's rule, independently of the file: N * [0, 2, 4, 6].
        let n = call as f32;
        assert_eq!(
            f32s(&got[0]),
            vec![0.0, 2.0 * n, 4.0 * n, 6.0 * n],
            "call {call}"
        );
    }
}

#[test]
fn each_loaded_method_has_its_own_buffers() {
    let dir = fixture("mutable_counter");
    let program = open(&dir, BackendOptions::default());
    let inputs = read_bin(&dir.join("input.bin"));
    let mut first = program.load_method("forward").unwrap();
    run(&mut first, &inputs);
    run(&mut first, &inputs);
    // A second load starts from zero even though the first has run twice.
    let mut second = program.load_method("forward").unwrap();
    assert_eq!(
        f32s(&run(&mut second, &inputs)[0]),
        vec![0.0, 2.0, 4.0, 6.0]
    );
    assert_eq!(
        f32s(&run(&mut first, &inputs)[0]),
        vec![0.0, 6.0, 12.0, 18.0]
    );
}
