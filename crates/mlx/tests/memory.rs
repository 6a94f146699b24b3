//! Handle ownership seen through MLX's allocator counters. Own test binary so that no other
//! test allocates concurrently in this process.
mod common;

use common::*;
use mlx::{memory, Array, Dtype};

const ONE_MIB: usize = 1 << 20;

fn mib_array() -> Array {
    Array::from_bytes(&vec![1u8; ONE_MIB], &[ONE_MIB as i32], Dtype::Uint8).unwrap()
}

#[test]
fn drop_releases_and_clones_keep_buffers_alive() {
    let _g = lock();
    memory::clear_cache().unwrap();
    let baseline = memory::active_memory().unwrap();

    let a = mib_array();
    assert!(memory::active_memory().unwrap() >= baseline + ONE_MIB);
    drop(a);
    assert_eq!(
        memory::active_memory().unwrap(),
        baseline,
        "dropping the only handle frees"
    );

    let a = mib_array();
    let b = a.clone();
    drop(a);
    assert!(
        memory::active_memory().unwrap() >= baseline + ONE_MIB,
        "a live clone keeps the shared buffer"
    );
    assert_eq!(b.to_bytes().unwrap()[ONE_MIB - 1], 1);
    drop(b);
    assert_eq!(memory::active_memory().unwrap(), baseline);
}

#[test]
fn peak_and_cache_counters() {
    let _g = lock();
    memory::reset_peak_memory().unwrap();
    let before = memory::active_memory().unwrap();
    {
        let _a = mib_array();
        let _b = mib_array();
    }
    let peak = memory::peak_memory().unwrap();
    assert!(peak >= before + 2 * ONE_MIB, "peak {peak} saw both arrays");
    memory::clear_cache().unwrap();
    assert_eq!(memory::cache_memory().unwrap(), 0);
}
