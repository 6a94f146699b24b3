//! Runs the official-exporter fixture whose method has only portable kernels (no delegate):
//! symbolic sizes through prim ops, et_view aliasing, dtype conversions and a buffer write-back.
//! Expected outputs come from PyTorch eager (tests/fixtures/portable_only/meta.json).

use std::path::PathBuf;

use etmlx_runtime::io::bin;
use etmlx_runtime::{HostValue, Program, RuntimeError};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

#[test]
fn portable_only_matches_pytorch_exactly() {
    let dir = fixture("portable_only");
    let program = Program::open(dir.join("model.pte"), None).unwrap();
    assert!(program.missing_kernels("forward").unwrap().is_empty());
    let mut method = program.load_method("forward").unwrap();
    let inputs = bin::read_file(&dir.join("input.bin")).unwrap();
    for (i, t) in inputs.into_iter().enumerate() {
        method.set_input(i, &HostValue::Tensor(t)).unwrap();
    }
    method.execute().unwrap();
    let expected = bin::read_file(&dir.join("expected_output.bin")).unwrap();
    let outputs = method.outputs().unwrap();
    assert_eq!(outputs.len(), expected.len());
    for (got, want) in outputs.iter().zip(&expected) {
        let HostValue::Tensor(got) = got else {
            panic!("output is not a tensor: {got:?}")
        };
        assert_eq!(got, want, "tolerance is exact (atol 0) for this fixture");
    }
    // Running again gives the same results (the planned buffers are reused).
    method.execute().unwrap();
    let again = method.outputs().unwrap();
    assert_eq!(again, outputs);
}

#[test]
fn wrong_inputs_are_clear_errors() {
    let dir = fixture("portable_only");
    let program = Program::open(dir.join("model.pte"), None).unwrap();
    let mut method = program.load_method("forward").unwrap();
    let inputs = bin::read_file(&dir.join("input.bin")).unwrap();
    // Wrong dtype.
    let mut wrong = inputs[0].clone();
    wrong.dtype = etmlx_runtime::ScalarType::Int;
    let err = method.set_input(0, &HostValue::Tensor(wrong)).unwrap_err();
    assert!(
        matches!(err, RuntimeError::InvalidInput { index: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("dtype"), "{err}");
    // Batch dimension above the export bound of 8.
    let big = etmlx_runtime::HostTensor::new(
        etmlx_runtime::ScalarType::Float,
        vec![9, 6],
        vec![0; 9 * 6 * 4],
    )
    .unwrap();
    let err = method.set_input(0, &HostValue::Tensor(big)).unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
    // Index past the inputs.
    assert!(method.set_input(7, &HostValue::None).is_err());
}

#[test]
fn delegated_methods_need_a_registered_backend() {
    let program = Program::open(fixture("add").join("model.pte"), None).unwrap();
    let err = program.load_method("forward").unwrap_err();
    assert!(
        matches!(err, RuntimeError::MissingBackend(ref id, _) if id == "MLXBackend"),
        "{err}"
    );
    let err = program.load_method("nope").unwrap_err();
    assert!(
        err.to_string().contains("forward"),
        "lists the available methods: {err}"
    );
}
