//! A process-wide store of loaded constants, so that every handle made from one program's named data holds
//! one copy of the weights: N `forward` methods loaded from one `Program` (N sessions of a server, each with its
//! own mutable buffers = its own KV cache) cost one set of weights + N caches.
//!
//! An entry is keyed by where its bytes live (the named-data slice's address and length — the same for every
//! method loaded from one `Program` or its clones), the constant's name, shape and dtype, and a 128-bit digest
//! of the bytes. The digest guards the one case the address cannot: a program dropped while a handle of it
//! lives, and another file mapped at the same address. The store holds `Weak`s; handles hold the `Arc`s (a
//! [`WeightLease`]), so a constant is freed with the last handle that uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use mlx::{Array, Dtype};

use crate::error::ExecError;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WeightKey {
    address: usize,
    len: usize,
    name: String,
    shape: Vec<i32>,
    dtype: Dtype,
    digest: u128,
}

/// One loaded constant. `Array` is `Send` but not `Sync`; the mutex makes the entry shareable (it is only
/// locked to clone the handle, which shares the buffer).
struct SharedConstant(Mutex<Array>);

impl SharedConstant {
    fn handle(&self) -> Array {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

static STORE: Mutex<Option<HashMap<WeightKey, Weak<SharedConstant>>>> = Mutex::new(None);

/// The shared constants one handle uses; dropping it releases them.
#[derive(Default)]
pub struct WeightLease(Vec<Arc<SharedConstant>>);

impl WeightLease {
    /// How many constants this lease holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Returns constant `name` of `shape` and `dtype` stored in `bytes`: the array an earlier handle loaded from
/// the same bytes, else a new one (copied from `bytes`, not yet evaluated). The lease keeps it alive.
pub(crate) fn shared_constant(
    name: &str,
    bytes: &[u8],
    shape: &[i32],
    dtype: Dtype,
    lease: &mut WeightLease,
) -> Result<Array, ExecError> {
    let key = WeightKey {
        address: bytes.as_ptr() as usize,
        len: bytes.len(),
        name: name.to_string(),
        shape: shape.to_vec(),
        dtype,
        digest: xxhash_rust::xxh3::xxh3_128(bytes),
    };
    let mut store = STORE.lock().unwrap_or_else(|p| p.into_inner());
    let store = store.get_or_insert_with(HashMap::new);
    if let Some(entry) = store.get(&key).and_then(Weak::upgrade) {
        let array = entry.handle();
        lease.0.push(entry);
        return Ok(array);
    }
    let array = Array::from_bytes(bytes, shape, dtype)?;
    let entry = Arc::new(SharedConstant(Mutex::new(array.clone())));
    // Forget entries whose last handle is gone, so the map does not grow with every program ever loaded.
    store.retain(|_, weak| weak.strong_count() > 0);
    store.insert(key, Arc::downgrade(&entry));
    lease.0.push(entry);
    Ok(array)
}

/// Number of constants currently shared through the store (alive in at least one handle).
pub fn live_shared_constants() -> usize {
    let store = STORE.lock().unwrap_or_else(|p| p.into_inner());
    store
        .as_ref()
        .map_or(0, |s| s.values().filter(|w| w.strong_count() > 0).count())
}
