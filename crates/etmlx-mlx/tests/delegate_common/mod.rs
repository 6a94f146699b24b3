//! Shared helpers of the `delegate_*` tests: fixture paths, loading programs with the MLX
//! backend, running a method on `.bin` inputs, and the suite's allclose rule.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use etmlx_mlx::MlxBackend;
use etmlx_runtime::io::bin;
use etmlx_runtime::{BackendOptions, HostTensor, HostValue, Method, Program, ScalarType};

/// `tests/fixtures/<name>` at the workspace root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// `tests/conformance/subset/<dir>` at the workspace root (official op-suite configs).
pub fn suite_config(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/conformance/subset")
        .join(dir)
}

/// Opens `dir/model.pte` with the MLX backend registered and `options` as load options.
pub fn open(dir: &Path, options: BackendOptions) -> Program {
    let mut program = Program::open(dir.join("model.pte"), None).expect("open model.pte");
    program.register_backend(Arc::new(MlxBackend));
    program.set_backend_options(options);
    program
}

pub fn read_bin(path: &Path) -> Vec<HostTensor> {
    bin::read_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sets every input, executes once and returns the tensor outputs.
pub fn run(method: &mut Method, inputs: &[HostTensor]) -> Vec<HostTensor> {
    for (i, t) in inputs.iter().enumerate() {
        method
            .set_input(i, &HostValue::Tensor(t.clone()))
            .expect("set_input");
    }
    method.execute().expect("execute");
    method
        .outputs()
        .expect("outputs")
        .into_iter()
        .map(|v| match v {
            HostValue::Tensor(t) => t,
            other => panic!("output is not a tensor: {other:?}"),
        })
        .collect()
}

/// Elements of a float32 tensor.
pub fn f32s(t: &HostTensor) -> Vec<f32> {
    assert_eq!(t.dtype, ScalarType::Float, "expected a float32 tensor");
    t.bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `|got - want| <= atol + rtol * |want|` elementwise (torch.allclose), with equal shapes.
pub fn assert_close(what: &str, got: &HostTensor, want: &HostTensor, rtol: f32, atol: f32) {
    assert_eq!(got.sizes, want.sizes, "{what}: shape");
    let (g, w) = (f32s(got), f32s(want));
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let err = (a - b).abs();
        assert!(
            err <= atol + rtol * b.abs(),
            "{what}: element {i}: got {a}, want {b} (rtol {rtol}, atol {atol})"
        );
        if err > worst.0 {
            worst = (err, i);
        }
    }
    eprintln!("{what}: max abs error {} at {}", worst.0, worst.1);
}

/// `tolerance.rtol` / `tolerance.atol` of a fixture's meta.json.
pub fn tolerance(dir: &Path) -> (f32, f32) {
    let text = std::fs::read_to_string(dir.join("meta.json")).expect("meta.json");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("meta.json parses");
    let get = |k: &str| {
        meta["tolerance"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("meta.json tolerance.{k}")) as f32
    };
    (get("rtol"), get("atol"))
}
