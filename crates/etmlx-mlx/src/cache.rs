//! The off-graph KV cache behind `UpdateAndAttend` (`--use-offgraph-cache` exports): per-layer
//! growable K/V pools, registered process-wide under a key that a load option (`cache_key`) names.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use etmlx_runtime::{BackendOptions, OptionValue};

use crate::backend::{option_keys, BACKEND_ID};
use crate::error::ExecError;

/// Geometry of an off-graph cache, as `op_test_runner --kv-cache capacity,n_layers,n_kv_heads,head_dim[,dtype]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCacheSpec {
    pub capacity: usize,
    pub n_layers: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// "bf16", "fp16"/"f16" or "fp32"/"f32"; default bf16.
    pub dtype: mlx::Dtype,
    /// Per-layer sliding windows (0 = flat); empty means every layer is flat.
    pub windows: Vec<usize>,
}

impl FromStr for KvCacheSpec {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let bad = |why: &str| {
            ExecError::Other(format!(
                "bad KV cache spec '{s}': {why} (expected capacity,n_layers,n_kv_heads,head_dim[,dtype])"
            ))
        };
        if !(4..=5).contains(&parts.len()) {
            return Err(bad("wrong number of fields"));
        }
        let num = |i: usize| -> Result<usize, ExecError> {
            parts[i].parse::<usize>().ok().filter(|&v| v > 0).ok_or_else(|| bad("fields must be positive integers"))
        };
        let dtype = match parts.get(4).copied().unwrap_or("bf16") {
            "bf16" | "bfloat16" => mlx::Dtype::Bfloat16,
            "fp16" | "f16" | "float16" => mlx::Dtype::Float16,
            "fp32" | "f32" | "float32" => mlx::Dtype::Float32,
            _ => return Err(bad("dtype must be bf16, fp16 or fp32")),
        };
        Ok(KvCacheSpec {
            capacity: num(0)?,
            n_layers: num(1)?,
            n_kv_heads: num(2)?,
            head_dim: num(3)?,
            dtype,
            windows: Vec::new(),
        })
    }
}

/// Per-layer K/V storage of an off-graph cache (filled in by the sequence-cache implementation).
pub struct SequenceCache {
    pub spec: KvCacheSpec,
}

impl SequenceCache {
    pub fn new(spec: KvCacheSpec) -> Self {
        SequenceCache { spec }
    }
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Mutex<SequenceCache>>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Mutex<SequenceCache>>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The cache registered under `key`.
pub fn lookup(key: &str) -> Option<Arc<Mutex<SequenceCache>>> {
    registry().lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
}

/// Creates a cache for `spec`, registers it under a fresh key and points `options` at it, so the
/// next load of an off-graph-cache export uses it. Returns the key (and keeps the cache alive).
pub fn install_sequence_cache(options: &mut BackendOptions, spec: &KvCacheSpec) -> Result<Arc<Mutex<SequenceCache>>, ExecError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = format!("etmlx-seq-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let cache = Arc::new(Mutex::new(SequenceCache::new(spec.clone())));
    registry().lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), cache.clone());
    options.set(BACKEND_ID, option_keys::CACHE_KEY, OptionValue::Str(key));
    Ok(cache)
}
