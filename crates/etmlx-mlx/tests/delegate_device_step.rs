//! The device-step API (`Method::sole_delegate` → `MlxHandle::build_outputs`) on the official tiny-Llama export:
//! the lazy outputs it returns equal HF transformers' logits for the fixture's prefill and decode, with the
//! positions given as host integers, and malformed device inputs are refused with a message.

mod delegate_common;

use delegate_common::*;
use etmlx_mlx::{lock_graph, DeviceInput, MlxHandle};
use etmlx_runtime::{BackendOptions, DelegateArgRole, HostTensor, ScalarType};
use mlx::Array;

fn ids_of(t: &HostTensor) -> Vec<i64> {
    t.bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

/// The logits of one device step, copied to the host as a float32 tensor of `sizes`.
fn step(handle: &mut MlxHandle, tokens: &[i64], positions: Vec<i64>) -> HostTensor {
    let lock = lock_graph();
    let tokens = Array::from_slice(tokens, &[1, tokens.len() as i32]).expect("tokens");
    let n = positions.len() as i32;
    let outputs = handle
        .build_outputs(
            &lock,
            vec![
                DeviceInput::Tensor(tokens),
                DeviceInput::HostInts {
                    shape: vec![n],
                    values: positions,
                },
            ],
        )
        .expect("device step");
    drop(lock);
    assert_eq!(outputs.len(), 1);
    let logits = &outputs[0];
    let sizes = logits.shape().iter().map(|&d| i64::from(d)).collect();
    HostTensor::new(ScalarType::Float, sizes, logits.to_bytes().expect("read")).expect("tensor")
}

#[test]
fn device_steps_reproduce_hf_logits() {
    let dir = fixture("tiny_llama_custom");
    let program = open(&dir, BackendOptions::default());
    let mut forward = program.load_method("forward").expect("load");
    let sole = forward
        .sole_delegate()
        .expect("forward is one delegate call");
    assert_eq!(sole.backend_id, etmlx_mlx::BACKEND_ID);
    assert_eq!(
        sole.args,
        vec![
            DelegateArgRole::Input(0),
            DelegateArgRole::Input(1),
            DelegateArgRole::Output(0)
        ]
    );
    let handle = sole
        .handle
        .and_then(|h| h.downcast_mut::<MlxHandle>())
        .expect("an MLX handle");
    assert_eq!((handle.num_inputs(), handle.num_outputs()), (2, 1));
    let tol = tolerance(&dir);

    let prefill = read_bin(&dir.join("input_prefill.bin"));
    let logits = step(handle, &ids_of(&prefill[0]), ids_of(&prefill[1]));
    let expected = read_bin(&dir.join("expected_prefill_logits.bin"));
    assert_close("device prefill", &logits, &expected[0], tol.0, tol.1);

    // The decode step reads the cache the prefill step wrote.
    let decode = read_bin(&dir.join("input_decode.bin"));
    let logits = step(handle, &ids_of(&decode[0]), ids_of(&decode[1]));
    let expected = read_bin(&dir.join("expected_decode_logits.bin"));
    assert_close("device decode", &logits, &expected[0], tol.0, tol.1);
}

#[test]
fn malformed_device_inputs_are_refused() {
    let dir = fixture("tiny_llama_custom");
    let program = open(&dir, BackendOptions::default());
    let mut forward = program.load_method("forward").expect("load");
    let handle = forward
        .sole_delegate()
        .and_then(|d| d.handle)
        .and_then(|h| h.downcast_mut::<MlxHandle>())
        .expect("an MLX handle");
    let lock = lock_graph();
    let tokens = Array::from_slice(&[1i64, 2], &[1, 2]).expect("tokens");
    let Err(err) = handle.build_outputs(&lock, vec![DeviceInput::Tensor(tokens.clone())]) else {
        panic!("one input of two must be refused");
    };
    assert!(err.to_string().contains("2"), "{err}");
    let err = handle
        .build_outputs(
            &lock,
            vec![DeviceInput::Tensor(tokens.clone()), DeviceInput::Int(0)],
        )
        .expect_err("an int for a tensor input");
    assert!(err.to_string().contains("input 1"), "{err}");
    let floats = Array::from_slice(&[0.5f32, 1.5], &[2]).expect("floats");
    let err = handle
        .build_outputs(
            &lock,
            vec![DeviceInput::Tensor(tokens), DeviceInput::Tensor(floats)],
        )
        .expect_err("float positions");
    assert!(err.to_string().contains("input 1"), "{err}");
}
