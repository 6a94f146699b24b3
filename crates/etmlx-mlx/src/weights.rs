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
use crate::ir::{Graph, Tid};

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

    /// Drops the constants `in_use` says the handle no longer holds (the parts load-time folding concatenated
    /// into a fused weight and released), so they are freed unless another handle still uses them.
    pub(crate) fn retain_used(&mut self, in_use: &[Option<Array>]) {
        let ids: std::collections::HashSet<usize> =
            in_use.iter().flatten().map(Array::id).collect();
        self.0.retain(|entry| ids.contains(&entry.handle().id()));
    }
}

/// What a handle derives at load from its payload and constants: the graph after the passes, the constants after
/// the init chain and load-time folding (`None` where folding released a part), and the folded values. The same
/// for every handle loaded from the same payload, named data and options, so later handles take the first one's
/// instead of folding again — otherwise each session would keep its own concatenated copy of every fused
/// projection weight.
#[derive(Clone)]
pub(crate) struct LoadedState {
    pub graph: Graph,
    pub consecutive_inputs: Vec<Tid>,
    pub decode_attention: Vec<crate::passes::decode_attention::DecodeAttention>,
    pub constants: Vec<Option<Array>>,
    pub folded: Vec<Option<(Tid, Array)>>,
}

struct SharedState {
    /// `Array` is not `Sync`: locked only to clone the handles.
    state: Mutex<LoadedState>,
    _constants: WeightLease,
}

/// Keeps a [`LoadedState`] shared with other handles alive; dropping the last one frees it.
pub struct StateLease(#[allow(dead_code)] Arc<SharedState>);

/// Identifies a [`LoadedState`]: the payload and every constant's bytes (address, length and an xxh3-128 digest of
/// the content, for the reason given for [`WeightKey`]) and the load options that change the derived state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StateKey {
    payload_address: usize,
    payload_len: usize,
    digest: u128,
    options: String,
}

static STATES: Mutex<Option<HashMap<StateKey, Weak<SharedState>>>> = Mutex::new(None);

/// The content digest both stores key on (xxh3-128 of the bytes).
pub(crate) fn digest_of(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// The digest of each constant's named-data bytes, in constant order (`None` where the name is missing): computed
/// once per load and used by both the state key and the constant store, so the weights are hashed once.
pub(crate) fn constant_digests(
    graph: &Graph,
    named_data: &dyn etmlx_runtime::NamedDataMap,
) -> Vec<Option<u128>> {
    let names = graph.tensor_names();
    (0..graph.num_constants)
        .map(|t| {
            let name = names.get(&Tid(t)).copied()?;
            named_data.get(name).map(digest_of)
        })
        .collect()
}

/// The key of the state derived from `payload` and the named data of `graph`'s constants (with their
/// `digests`, see [`constant_digests`]) under `options`.
pub(crate) fn state_key(
    payload: &[u8],
    graph: &Graph,
    named_data: &dyn etmlx_runtime::NamedDataMap,
    digests: &[Option<u128>],
    options: String,
) -> StateKey {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(payload);
    let names = graph.tensor_names();
    for t in 0..graph.num_constants {
        let name = names.get(&Tid(t)).copied().unwrap_or("");
        hasher.update(name.as_bytes());
        match (
            named_data.get(name),
            digests.get(t as usize).copied().flatten(),
        ) {
            (Some(bytes), Some(digest)) => {
                hasher.update(&(bytes.as_ptr() as usize).to_le_bytes());
                hasher.update(&bytes.len().to_le_bytes());
                hasher.update(&digest.to_le_bytes());
            }
            _ => hasher.update(b"<missing>"),
        }
    }
    StateKey {
        payload_address: payload.as_ptr() as usize,
        payload_len: payload.len(),
        digest: hasher.digest128(),
        options,
    }
}

/// The state an earlier, still living handle derived under `key`.
pub(crate) fn shared_state(key: &StateKey) -> Option<(LoadedState, StateLease)> {
    let states = STATES.lock().unwrap_or_else(|p| p.into_inner());
    let entry = states.as_ref()?.get(key)?.upgrade()?;
    let state = entry
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Some((state, StateLease(entry)))
}

/// Publishes the state a handle derived under `key` (with the lease on the constants it still holds).
pub(crate) fn share_state(key: StateKey, state: LoadedState, constants: WeightLease) -> StateLease {
    let entry = Arc::new(SharedState {
        state: Mutex::new(state),
        _constants: constants,
    });
    let mut states = STATES.lock().unwrap_or_else(|p| p.into_inner());
    let states = states.get_or_insert_with(HashMap::new);
    states.retain(|_, weak| weak.strong_count() > 0);
    states.insert(key, Arc::downgrade(&entry));
    StateLease(entry)
}

/// Returns constant `name` of `shape` and `dtype` stored in `bytes` (whose [`digest_of`] is `digest`): the array
/// an earlier handle loaded from the same bytes, else a new one (copied from `bytes`, not yet evaluated). The
/// lease keeps it alive.
pub(crate) fn shared_constant(
    name: &str,
    bytes: &[u8],
    digest: u128,
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
        digest,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(a: &Array) -> Vec<f32> {
        a.to_vec::<f32>().expect("read back")
    }

    #[test]
    fn the_same_bytes_are_loaded_once_and_freed_with_the_last_lease() {
        let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (mut a, mut b) = (WeightLease::default(), WeightLease::default());
        let load = |name: &str, shape: &[i32], lease: &mut WeightLease| {
            shared_constant(
                name,
                &bytes,
                digest_of(&bytes),
                shape,
                Dtype::Float32,
                lease,
            )
            .expect("load")
        };
        let first = load("w", &[2, 2], &mut a);
        let second = load("w", &[2, 2], &mut b);
        assert_eq!(first.id(), second.id(), "one array for both handles");
        assert!(Arc::ptr_eq(&a.0[0], &b.0[0]));
        // Another name, shape or dtype over the same bytes is another constant.
        let renamed = load("v", &[2, 2], &mut b);
        let reshaped = load("w", &[4], &mut b);
        assert_ne!(renamed.id(), first.id());
        assert_ne!(reshaped.id(), first.id());
        let weak = Arc::downgrade(&a.0[0]);
        drop((a, b, first, second, renamed, reshaped));
        assert!(weak.upgrade().is_none(), "freed with the last lease");
    }

    #[test]
    fn new_bytes_at_a_reused_address_are_not_mistaken_for_the_old_ones() {
        let mut bytes: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut old = WeightLease::default();
        let before = shared_constant(
            "w",
            &bytes,
            digest_of(&bytes),
            &[2],
            Dtype::Float32,
            &mut old,
        )
        .expect("load");
        // Same address, same length, same name: only the content differs (a freed mapping reused by another file).
        bytes.copy_from_slice(
            &[5.0f32, 6.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        let mut new = WeightLease::default();
        let after = shared_constant(
            "w",
            &bytes,
            digest_of(&bytes),
            &[2],
            Dtype::Float32,
            &mut new,
        )
        .expect("load");
        assert_eq!(values(&before), vec![1.0, 2.0]);
        assert_eq!(values(&after), vec![5.0, 6.0]);
    }
}
