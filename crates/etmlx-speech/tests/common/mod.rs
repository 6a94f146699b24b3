#![allow(dead_code)] // each test binary uses a subset

use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/whisper")
}

pub fn clip(name: &str) -> PathBuf {
    fixtures().join("audio").join(name)
}

pub fn read_json(path: impl Into<PathBuf>) -> serde_json::Value {
    let path = path.into();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An f32 .npy written by NumPy: (shape, values).
pub fn read_npy_f32(path: impl Into<PathBuf>) -> (Vec<usize>, Vec<f32>) {
    let path = path.into();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t =
        etmlx_runtime::io::npy::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        t.dtype,
        etmlx_runtime::ScalarType::Float,
        "{}",
        path.display()
    );
    let values = t
        .bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (t.sizes.iter().map(|&d| d as usize).collect(), values)
}

/// Largest |a - b| and where it is.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |acc, v| if v.0 > acc.0 { v } else { acc })
}
