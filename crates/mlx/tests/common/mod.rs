//! Shared helpers for the MLX integration tests (CPU stream, tiny fp32 inputs).
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use mlx::{Array, DeviceType, Stream};

static MLX_LOCK: Mutex<()> = Mutex::new(());

/// MLX graph building is not thread-safe and the test harness runs tests on parallel threads:
/// every test holds this lock while it touches MLX.
pub fn lock() -> MutexGuard<'static, ()> {
    MLX_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn cpu() -> Stream {
    Stream::default_for(DeviceType::Cpu).expect("CPU stream")
}

pub fn f32s(values: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("f32 array")
}

pub fn i32s(values: &[i32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("i32 array")
}

pub fn bools(values: &[bool], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("bool array")
}

pub fn read_f32(a: &Array) -> Vec<f32> {
    a.to_vec::<f32>().expect("read f32")
}

pub fn read_i32(a: &Array) -> Vec<i32> {
    a.to_vec::<i32>().expect("read i32")
}

pub fn read_bool(a: &Array) -> Vec<bool> {
    a.to_vec::<bool>().expect("read bool")
}

pub fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "length mismatch: {actual:?} vs {expected:?}"
    );
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ok = (a - e).abs() <= tolerance * (1.0 + e.abs()) || (a.is_nan() && e.is_nan());
        assert!(ok, "element {i}: got {a}, expected {e} (all: {actual:?})");
    }
}

/// Tolerance for fp32 transcendental functions.
pub const TOL: f32 = 1e-5;
