//! MLX's counter-based PRNG.

use crate::array::Array;
use crate::device::Stream;
use crate::error::{MlxError, Result};

/// A PRNG key for `seed` (`mlx::core::random::key`).
pub fn key(seed: u64) -> Result<Array> {
    // SAFETY: out-pointer supplied by `produce`.
    Array::produce("random_key", |out| unsafe {
        mlx_sys::etm_random_key(seed, out)
    })
}

/// Random bits of `width` bytes per element (1 → uint8, 2 → uint16, 4 → uint32).
/// Without a key, MLX's process-wide key sequence is used (and advanced).
pub fn bits(shape: &[i32], width: i32, key: Option<&Array>, s: Stream) -> Result<Array> {
    if !matches!(width, 1 | 2 | 4) {
        return Err(MlxError::invalid(
            "random_bits",
            format!("width must be 1, 2 or 4 bytes, got {width}"),
        ));
    }
    let key_ptr = key.map_or(std::ptr::null(), Array::as_ptr);
    // SAFETY: live slices and handles borrowed for the call.
    Array::produce("random_bits", |out| unsafe {
        mlx_sys::etm_random_bits(shape.as_ptr(), shape.len(), width, key_ptr, s.raw(), out)
    })
}
