//! Many loaded methods executing on many threads at once (the official
//! `multi_thread_test_runner` scenario): MLX work is serialised by the delegate's global lock, but
//! every method keeps its own state, so each thread's results follow the fixture's rule exactly.
//! Expected values: PyTorch eager (`expected_output*.bin`) and the counter's rule N * [0, 2, 4, 6].

mod delegate_common;

use std::sync::Barrier;

use delegate_common::*;
use etmlx_runtime::BackendOptions;

const THREADS: usize = 4;
const CALLS: usize = 5;

#[test]
fn counters_add_and_mlp_on_several_threads() {
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let barrier = &barrier;
            scope.spawn(move || {
                // Each thread loads its own copies, then all start executing together.
                let counter_dir = fixture("mutable_counter");
                let counter_program = open(&counter_dir, BackendOptions::default());
                let mut counter = counter_program.load_method("forward").unwrap();
                let counter_in = read_bin(&counter_dir.join("input.bin"));
                let others: Vec<_> = ["add", "mlp"]
                    .iter()
                    .map(|name| {
                        let dir = fixture(name);
                        let program = open(&dir, BackendOptions::default());
                        let method = program.load_method("forward").unwrap();
                        let tol = tolerance(&dir);
                        (
                            name,
                            method,
                            read_bin(&dir.join("input.bin")),
                            read_bin(&dir.join("expected_output.bin")),
                            tol,
                        )
                    })
                    .collect();
                let mut others = others;
                barrier.wait();
                for call in 1..=CALLS {
                    let got = run(&mut counter, &counter_in);
                    let n = call as f32;
                    assert_eq!(
                        f32s(&got[0]),
                        vec![0.0, 2.0 * n, 4.0 * n, 6.0 * n],
                        "thread {t} counter call {call}"
                    );
                    for (name, method, input, want, (rtol, atol)) in &mut others {
                        let got = run(method, input);
                        assert_close(
                            &format!("thread {t} {name} call {call}"),
                            &got[0],
                            &want[0],
                            *rtol,
                            *atol,
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn one_program_shared_by_threads_each_loading_its_method() {
    let dir = fixture("mutable_counter");
    let program = open(&dir, BackendOptions::default());
    let input = read_bin(&dir.join("input.bin"));
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (program, input) = (&program, &input);
            scope.spawn(move || {
                let mut method = program.load_method("forward").unwrap();
                for call in 1..=CALLS {
                    let n = call as f32;
                    assert_eq!(
                        f32s(&run(&mut method, input)[0]),
                        vec![0.0, 2.0 * n, 4.0 * n, 6.0 * n],
                        "thread {t} call {call}"
                    );
                }
            });
        }
    });
}

#[test]
fn a_method_loaded_on_one_thread_runs_on_another() {
    let dir = fixture("mutable_counter");
    let program = open(&dir, BackendOptions::default());
    let input = read_bin(&dir.join("input.bin"));
    let mut method = program.load_method("forward").unwrap();
    assert_eq!(f32s(&run(&mut method, &input)[0]), vec![0.0, 2.0, 4.0, 6.0]);
    // Hand the loaded method (and its accumulated state) to a worker thread.
    let method = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut method = method;
                assert_eq!(
                    f32s(&run(&mut method, &input)[0]),
                    vec![0.0, 4.0, 8.0, 12.0]
                );
                method
            })
            .join()
            .unwrap()
    });
    let mut method = method;
    assert_eq!(
        f32s(&run(&mut method, &input)[0]),
        vec![0.0, 6.0, 12.0, 18.0]
    );
}
