//! MLX allocator counters (bytes).

use crate::error::{check, Result};

fn counter(op: &'static str, f: unsafe extern "C" fn(*mut usize) -> i32) -> Result<usize> {
    let mut value = 0usize;
    // SAFETY: out-pointer to a live local.
    check(op, unsafe { f(&mut value) })?;
    Ok(value)
}

/// Bytes held by live arrays (excludes the allocator's cache).
pub fn active_memory() -> Result<usize> {
    counter("active_memory", mlx_sys::etm_active_memory)
}

/// Highest `active_memory` since start or the last [`reset_peak_memory`].
pub fn peak_memory() -> Result<usize> {
    counter("peak_memory", mlx_sys::etm_peak_memory)
}

pub fn reset_peak_memory() -> Result<()> {
    // SAFETY: no arguments.
    check("reset_peak_memory", unsafe {
        mlx_sys::etm_reset_peak_memory()
    })
}

/// Bytes freed by arrays but kept by the allocator for reuse.
pub fn cache_memory() -> Result<usize> {
    counter("cache_memory", mlx_sys::etm_cache_memory)
}

/// Returns cached buffers to the system.
pub fn clear_cache() -> Result<()> {
    // SAFETY: no arguments.
    check("clear_cache", unsafe { mlx_sys::etm_clear_cache() })
}
