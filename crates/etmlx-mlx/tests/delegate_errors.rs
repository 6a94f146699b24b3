//! Bad inputs and unsupported payloads give clear errors, never panics: wrong input dtype and
//! index, a payload with a custom Metal kernel (official suite config `metal_kernel_1024`), an
//! off-graph-cache program without a cache, and cache steps that break the cache's rules.

mod delegate_common;

use delegate_common::*;
use etmlx_mlx::backend::option_keys;
use etmlx_mlx::{install_sequence_cache, KvCacheSpec, BACKEND_ID};
use etmlx_runtime::{BackendOptions, HostTensor, HostValue, OptionValue, ScalarType};

/// The error text of a failed execute, after setting `inputs`.
fn execute_error(method: &mut etmlx_runtime::Method, inputs: &[HostTensor]) -> String {
    for (i, t) in inputs.iter().enumerate() {
        method.set_input(i, &HostValue::Tensor(t.clone())).unwrap();
    }
    method
        .execute()
        .expect_err("execute should fail")
        .to_string()
}

#[test]
fn wrong_input_dtype_and_index_are_refused_and_the_method_still_works() {
    let dir = fixture("add");
    let program = open(&dir, BackendOptions::default());
    let mut method = program.load_method("forward").unwrap();
    let inputs = read_bin(&dir.join("input.bin"));
    let mut as_int = inputs[0].clone();
    as_int.dtype = ScalarType::Int;
    let err = method
        .set_input(0, &HostValue::Tensor(as_int))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dtype"), "{err}");
    let err = method
        .set_input(2, &HostValue::Tensor(inputs[0].clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 inputs"), "{err}");
    let err = method
        .set_input(0, &HostValue::Int(3))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected"), "{err}");
    let (rtol, atol) = tolerance(&dir);
    let got = run(&mut method, &inputs);
    assert_close(
        "add after refused inputs",
        &got[0],
        &read_bin(&dir.join("expected_output.bin"))[0],
        rtol,
        atol,
    );
}

#[test]
fn custom_metal_kernel_is_refused_without_permission() {
    let dir = suite_config("0783_metal_kernel_1024");
    let inputs = read_bin(&dir.join("input.bin"));
    let program = open(&dir, BackendOptions::default());
    let err = match program.load_method("forward") {
        Ok(mut method) => execute_error(&mut method, &inputs),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("custom Metal kernel"), "{err}");
    assert!(
        err.contains("allow-custom-kernels"),
        "says how to allow it: {err}"
    );
}

#[test]
fn custom_metal_kernel_off_metal_names_the_kernel_and_device() {
    if cfg!(target_os = "macos") {
        return; // On Apple Silicon the kernel can run; this test is about other devices.
    }
    let dir = suite_config("0783_metal_kernel_1024");
    let inputs = read_bin(&dir.join("input.bin"));
    let mut options = BackendOptions::default();
    options.set(
        BACKEND_ID,
        option_keys::ALLOW_CUSTOM_KERNELS,
        OptionValue::Bool(true),
    );
    let program = open(&dir, options);
    let err = match program.load_method("forward") {
        Ok(mut method) => execute_error(&mut method, &inputs),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("Metal"), "{err}");
    assert!(
        err.contains("re-export") || err.contains("Apple"),
        "says what to do: {err}"
    );
}

fn offgraph_config() -> (std::path::PathBuf, Vec<HostTensor>) {
    let dir = suite_config("0886_update_and_attend_decode");
    let inputs = read_bin(&dir.join("input.bin"));
    (dir, inputs)
}

#[test]
fn offgraph_program_without_a_cache_says_to_install_one() {
    let (dir, inputs) = offgraph_config();
    let program = open(&dir, BackendOptions::default());
    let mut method = program.load_method("forward").unwrap();
    let err = execute_error(&mut method, &inputs);
    assert!(
        err.contains("UpdateAndAttend") && err.contains("--kv-cache"),
        "{err}"
    );
}

#[test]
fn unknown_cache_key_fails_at_load() {
    let (dir, _) = offgraph_config();
    let mut options = BackendOptions::default();
    options.set(
        BACKEND_ID,
        option_keys::CACHE_KEY,
        OptionValue::Str("no-such-cache".into()),
    );
    let err = open(&dir, options)
        .load_method("forward")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-cache"), "{err}");
}

/// Runs the decode-shaped config (T = 1, two layers) with `spec` and position `position`.
fn offgraph_error(spec: &str, position: i32) -> String {
    let (dir, mut inputs) = offgraph_config();
    inputs[3] =
        HostTensor::new(ScalarType::Int, vec![1, 1], position.to_le_bytes().to_vec()).unwrap();
    let mut options = BackendOptions::default();
    install_sequence_cache(&mut options, &spec.parse::<KvCacheSpec>().unwrap()).unwrap();
    let mut method = open(&dir, options).load_method("forward").unwrap();
    execute_error(&mut method, &inputs)
}

#[test]
fn cache_geometry_and_position_errors_name_the_problem() {
    let err = offgraph_error("16,2,4,8,6", 0);
    assert!(
        err.contains("[1, 4, T, 8]") && err.contains("layer 0"),
        "wrong KV heads: {err}"
    );
    let err = offgraph_error("16,2,2,4,6", 0);
    assert!(err.contains("[1, 2, T, 4]"), "wrong head dim: {err}");
    let err = offgraph_error("16,1,2,8,6", 0);
    assert!(err.contains("layer 1 is out of range"), "{err}");
    let err = offgraph_error("16,2,2,8,6", 16);
    assert!(err.contains("capacity 16"), "{err}");
    let err = offgraph_error("16,2,2,8,6", 5);
    assert!(err.contains("gap"), "{err}");
    let err = offgraph_error("16,2,2,8,6", -1);
    assert!(err.contains("-1"), "{err}");
}
