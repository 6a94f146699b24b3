//! The off-graph KV cache behind `UpdateAndAttend` (`--use-offgraph-cache` exports).
//!
//! The cache is not part of the program: the host builds a [`SequenceCache`] from the model's
//! geometry (its `get_n_caches` / `get_kv_heads` / `get_head_dims` / `get_windows` getters, or
//! `op_test_runner --kv-cache`), registers it process-wide under a key, and passes that key as
//! the `cache_key` load option; every delegate handle loaded with the key shares the cache.
//!
//! Per layer there is one K pool and one V pool of shape `[1, H, slots, D]` in the cache dtype:
//! - **flat** layers map position `p` to slot `p`; the pool starts at
//!   `min(initial_capacity, capacity)` slots and doubles (capped at `capacity`) when a write
//!   runs past it;
//! - **ring** layers (sliding window `W`) hold `W + max_write - 1` slots, allocated at once, and
//!   map `p` to slot `p % slots`: enough for the `W - 1` older keys the first query of a step
//!   needs plus the step's own `max_write` keys, so a step never overwrites what it reads.
//!
//! A step writing `T` tokens at `start` is planned on the host ([`SequenceCache::plan`]): at most
//! two write runs and two read runs (a ring wraps once at most), the window of positions read
//! (`[lo, start + T)`, where `lo` is `start + 1 - W` for windowed layers, else 0) and the mask:
//! none for one token (it sees its whole window), MLX's lower-right "causal" mode when the window
//! does not cut into the span, else an explicit bool band `[1, 1, T, S]`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use etmlx_runtime::{BackendOptions, HostValue, OptionValue, Program, ScalarType};
use mlx::ops::{self, BinaryOp};
use mlx::{Array, Dtype, Stream};

use crate::backend::{option_keys, BACKEND_ID};
use crate::error::ExecError;
use crate::exec::Ctx;
use crate::ir::Tid;

/// Slots a flat layer's pool starts with (or the capacity, when smaller), as the reference.
pub const DEFAULT_INITIAL_CAPACITY: usize = 512;
/// Largest capacity (positions) a cache may have; positions must also fit MLX's int32 indices.
pub const MAX_CAPACITY: usize = 1 << 24;
/// Largest number of layers (caches) one cache may hold.
pub const MAX_LAYERS: usize = 4096;
/// Largest number of KV heads or head dimension of one layer.
pub const MAX_HEADS_OR_DIM: usize = 1 << 16;

/// What is wrong with a cache spec, a cache step or a cache control call.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("bad KV cache spec '{spec}': {why} (expected capacity,n_layers,n_kv_heads,head_dim[,dtype])")]
    BadSpecString { spec: String, why: String },
    #[error("bad KV cache geometry: {0}")]
    BadGeometry(String),
    #[error("layer {layer} is out of range: the cache has {n_layers} layers")]
    LayerOutOfRange { layer: i64, n_layers: usize },
    #[error("layer {layer}: an update must carry at least one token")]
    EmptyStep { layer: usize },
    #[error("layer {layer}: {what} (expected {expected})")]
    BadShape {
        layer: usize,
        what: String,
        expected: String,
    },
    #[error("layer {layer}: positions {start}..{end} go beyond the cache capacity {capacity}")]
    BeyondCapacity {
        layer: usize,
        start: usize,
        end: usize,
        capacity: usize,
    },
    #[error("bad position tensor: {0}")]
    BadPosition(String),
    #[error(
        "layer {layer}: a step starting at position {start} would leave a gap: the layer holds only \
         {len} positions (rewind or clear the cache, or feed positions in order)"
    )]
    Gap {
        layer: usize,
        start: usize,
        len: usize,
    },
    #[error(
        "layer {layer}: writes {tokens} tokens in one step, more than the ring's max_write {max_write} \
         (the prefill chunk size the cache was built for)"
    )]
    WriteTooLong {
        layer: usize,
        tokens: usize,
        max_write: usize,
    },
    #[error(
        "layer {layer}: position {position} is no longer held by the ring (overwritten); a sliding-window \
         layer cannot be rewound past what it still holds"
    )]
    Overwritten { layer: usize, position: usize },
    #[error("cannot rewind {n} positions: the cache holds {len}")]
    RewindTooFar { n: usize, len: usize },
    #[error("getter method '{method}': {why}")]
    Getter { method: String, why: String },
    #[error("MLX: {0}")]
    Mlx(#[from] mlx::MlxError),
}

/// Shape and sliding window of one layer's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerGeometry {
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Sliding window in positions; 0 = the layer keeps (and attends to) all history.
    pub window: usize,
}

/// Geometry and storage choices of an off-graph cache.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCacheSpec {
    /// Hard bound on positions: a step ending past it is an error.
    pub capacity: usize,
    /// Storage dtype of the K/V pools (bf16, f16 or f32); keys and values are cast to the query's
    /// dtype for attention.
    pub dtype: Dtype,
    /// One entry per layer (per cache, for models whose layers share caches).
    pub layers: Vec<LayerGeometry>,
    /// Slots a flat layer's pool starts with (capped at `capacity`).
    pub initial_capacity: usize,
    /// Most tokens one step writes (the prefill chunk size); sizes the ring layers.
    pub max_write: usize,
}

/// Storage dtype from a name or an ExecuTorch ScalarType code (`op_test_runner` receives codes).
fn parse_kv_dtype(s: &str) -> Option<Dtype> {
    Some(match s.to_ascii_lowercase().as_str() {
        "bf16" | "bfloat16" | "15" => Dtype::Bfloat16,
        "fp16" | "f16" | "float16" | "half" | "5" => Dtype::Float16,
        "fp32" | "f32" | "float32" | "float" | "6" => Dtype::Float32,
        _ => return None,
    })
}

impl FromStr for KvCacheSpec {
    type Err = CacheError;

    /// `capacity,n_layers,n_kv_heads,head_dim[,dtype]`, every layer flat, as `op_test_runner
    /// --kv-cache`; the dtype is bf16, fp16 or fp32 (or their ScalarType codes 15, 5, 6), default bf16.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| CacheError::BadSpecString {
            spec: s.to_string(),
            why: why.to_string(),
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if !(4..=5).contains(&parts.len()) {
            return Err(bad("wrong number of fields"));
        }
        let mut nums = [0usize; 4];
        for (n, part) in nums.iter_mut().zip(&parts) {
            *n = part
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(&format!("'{part}' is not a positive integer")))?;
        }
        let dtype = match parts.get(4) {
            Some(d) => parse_kv_dtype(d).ok_or_else(|| {
                bad(&format!(
                    "unknown dtype '{d}' (bf16, fp16, fp32, or ScalarType codes 15, 5, 6)"
                ))
            })?,
            None => Dtype::Bfloat16,
        };
        let [capacity, n_layers, n_kv_heads, head_dim] = nums;
        let spec = KvCacheSpec::uniform(capacity, n_layers, n_kv_heads, head_dim, dtype);
        spec.validate()?;
        Ok(spec)
    }
}

impl KvCacheSpec {
    /// `n_layers` flat layers of the same shape.
    pub fn uniform(
        capacity: usize,
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        dtype: Dtype,
    ) -> Self {
        KvCacheSpec {
            capacity,
            dtype,
            layers: vec![
                LayerGeometry {
                    n_kv_heads,
                    head_dim,
                    window: 0
                };
                n_layers
            ],
            initial_capacity: DEFAULT_INITIAL_CAPACITY,
            max_write: capacity,
        }
    }

    /// Builds a spec from a program's cache getters (see [`CacheGeometry::from_program`]):
    /// `capacity` defaults to the export's `get_max_ctx_len`, `max_write` to its
    /// `get_prefill_chunk_size`; `windows` overrides the exported per-layer windows.
    pub fn from_geometry(
        geometry: &CacheGeometry,
        capacity: Option<usize>,
        dtype: Dtype,
        windows: Option<&[usize]>,
    ) -> Result<Self, CacheError> {
        let n = geometry.kv_heads.len();
        if geometry.head_dims.len() != n || geometry.windows.len() != n {
            return Err(CacheError::BadGeometry(format!(
                "{n} caches but {} head dims and {} windows",
                geometry.head_dims.len(),
                geometry.windows.len()
            )));
        }
        let windows = windows.unwrap_or(&geometry.windows);
        if windows.len() != n {
            return Err(CacheError::BadGeometry(format!(
                "{} windows given for {n} caches",
                windows.len()
            )));
        }
        let capacity = capacity.or(geometry.max_ctx_len).ok_or_else(|| {
            CacheError::BadGeometry(
                "no capacity given and the program has no get_max_ctx_len".into(),
            )
        })?;
        let layers = (0..n)
            .map(|i| LayerGeometry {
                n_kv_heads: geometry.kv_heads[i],
                head_dim: geometry.head_dims[i],
                window: windows[i],
            })
            .collect();
        let spec = KvCacheSpec {
            capacity,
            dtype,
            layers,
            initial_capacity: DEFAULT_INITIAL_CAPACITY,
            max_write: geometry
                .prefill_chunk_size
                .unwrap_or(capacity)
                .min(capacity),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every limit, including the largest pool against the delegate's allocation guard.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |why: String| Err(CacheError::BadGeometry(why));
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return bad(format!(
                "capacity {} is outside 1..={MAX_CAPACITY}",
                self.capacity
            ));
        }
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return bad(format!(
                "{} layers is outside 1..={MAX_LAYERS}",
                self.layers.len()
            ));
        }
        if !matches!(
            self.dtype,
            Dtype::Bfloat16 | Dtype::Float16 | Dtype::Float32
        ) {
            return bad(format!(
                "storage dtype {} is not bf16, f16 or f32",
                self.dtype
            ));
        }
        if self.initial_capacity == 0 {
            return bad("initial capacity must be positive".into());
        }
        if self.max_write == 0 || self.max_write > self.capacity {
            return bad(format!(
                "max_write {} is outside 1..=capacity {}",
                self.max_write, self.capacity
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.n_kv_heads == 0
                || l.n_kv_heads > MAX_HEADS_OR_DIM
                || l.head_dim == 0
                || l.head_dim > MAX_HEADS_OR_DIM
            {
                return bad(format!(
                    "layer {i}: {} heads of dim {} (each must be in 1..={MAX_HEADS_OR_DIM})",
                    l.n_kv_heads, l.head_dim
                ));
            }
            let slots = self.storage(l).slots(self.capacity) as u64;
            let bytes = l.n_kv_heads as u64 * l.head_dim as u64 * slots * self.dtype.size() as u64;
            if bytes > crate::MAX_ALLOCATION_BYTES {
                return bad(format!(
                    "layer {i}: a full pool needs {bytes} bytes, over the 4 GiB allocation limit"
                ));
            }
        }
        Ok(())
    }

    /// How a layer is stored: a ring when its window plus one step fits below the capacity.
    fn storage(&self, l: &LayerGeometry) -> Storage {
        let ring_slots = l.window.saturating_add(self.max_write - 1);
        if l.window > 0 && ring_slots < self.capacity {
            Storage::Ring { slots: ring_slots }
        } else {
            Storage::Flat
        }
    }
}

/// The cache geometry an off-graph export declares through its constant getter methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheGeometry {
    /// `get_kv_heads`, one entry per cache (`get_n_caches` entries).
    pub kv_heads: Vec<usize>,
    /// `get_head_dims`.
    pub head_dims: Vec<usize>,
    /// `get_windows` (0 = flat); all zeros when the program has no such getter.
    pub windows: Vec<usize>,
    /// `get_prefill_chunk_size`: the longest step the export traces.
    pub prefill_chunk_size: Option<usize>,
    /// `get_max_ctx_len`: the context limit.
    pub max_ctx_len: Option<usize>,
}

impl CacheGeometry {
    /// From the getters' values: `n_caches` and one entry per cache in each list.
    pub fn from_values(
        n_caches: i64,
        kv_heads: &[i64],
        head_dims: &[i64],
        windows: Option<&[i64]>,
        prefill_chunk_size: Option<i64>,
        max_ctx_len: Option<i64>,
    ) -> Result<Self, CacheError> {
        let count = usize::try_from(n_caches)
            .ok()
            .filter(|&n| (1..=MAX_LAYERS).contains(&n))
            .ok_or_else(|| {
                CacheError::BadGeometry(format!(
                    "get_n_caches = {n_caches} is outside 1..={MAX_LAYERS}"
                ))
            })?;
        let list =
            |name: &str, values: &[i64], allow_zero: bool| -> Result<Vec<usize>, CacheError> {
                if values.len() != count {
                    return Err(CacheError::BadGeometry(format!(
                        "{name} has {} entries for {count} caches",
                        values.len()
                    )));
                }
                values
                    .iter()
                    .map(|&v| {
                        usize::try_from(v)
                            .ok()
                            .filter(|&u| allow_zero || u > 0)
                            .ok_or_else(|| CacheError::BadGeometry(format!("{name} holds {v}")))
                    })
                    .collect()
            };
        let positive = |name: &str, v: Option<i64>| -> Result<Option<usize>, CacheError> {
            v.map(|v| {
                usize::try_from(v)
                    .ok()
                    .filter(|&u| u > 0)
                    .ok_or_else(|| CacheError::BadGeometry(format!("{name} = {v}")))
            })
            .transpose()
        };
        Ok(CacheGeometry {
            kv_heads: list("get_kv_heads", kv_heads, false)?,
            head_dims: list("get_head_dims", head_dims, false)?,
            windows: match windows {
                Some(w) => list("get_windows", w, true)?,
                None => vec![0; count],
            },
            prefill_chunk_size: positive("get_prefill_chunk_size", prefill_chunk_size)?,
            max_ctx_len: positive("get_max_ctx_len", max_ctx_len)?,
        })
    }

    /// Runs the program's cache getters (`get_n_caches`, `get_kv_heads`, `get_head_dims` required;
    /// `get_windows`, `get_prefill_chunk_size`, `get_max_ctx_len` optional).
    pub fn from_program(program: &Program) -> Result<Self, CacheError> {
        let names = program.method_names();
        let has = |m: &str| names.contains(&m);
        let run = |m: &str| -> Result<HostValue, CacheError> {
            let getter = |why: String| CacheError::Getter {
                method: m.to_string(),
                why,
            };
            if !has(m) {
                return Err(getter(
                    "the program has no such method (was it exported with --use-offgraph-cache?)"
                        .into(),
                ));
            }
            let mut values = program
                .constant_method(m)
                .map_err(|e| getter(e.to_string()))?;
            if values.len() != 1 {
                return Err(getter(format!(
                    "returns {} values, expected 1",
                    values.len()
                )));
            }
            Ok(values.remove(0))
        };
        let int = |m: &str| -> Result<i64, CacheError> {
            match run(m)? {
                HostValue::Int(v) => Ok(v),
                HostValue::Tensor(t) if t.numel() == 1 => Ok(int_elements(m, &t)?[0]),
                other => Err(CacheError::Getter {
                    method: m.into(),
                    why: format!("returns {other:?}, expected an int"),
                }),
            }
        };
        let ints = |m: &str| -> Result<Vec<i64>, CacheError> {
            match run(m)? {
                HostValue::Tensor(t) => int_elements(m, &t),
                HostValue::Int(v) => Ok(vec![v]),
                other => Err(CacheError::Getter {
                    method: m.into(),
                    why: format!("returns {other:?}, expected an int tensor"),
                }),
            }
        };
        let optional_int = |m: &str| if has(m) { int(m).map(Some) } else { Ok(None) };
        let windows = if has("get_windows") {
            Some(ints("get_windows")?)
        } else {
            None
        };
        CacheGeometry::from_values(
            int("get_n_caches")?,
            &ints("get_kv_heads")?,
            &ints("get_head_dims")?,
            windows.as_deref(),
            optional_int("get_prefill_chunk_size")?,
            optional_int("get_max_ctx_len")?,
        )
    }
}

fn int_elements(method: &str, t: &etmlx_runtime::HostTensor) -> Result<Vec<i64>, CacheError> {
    let width = match t.dtype {
        ScalarType::Int => 4,
        ScalarType::Long => 8,
        other => {
            return Err(CacheError::Getter {
                method: method.into(),
                why: format!("returns a {other:?} tensor, expected int32/int64"),
            })
        }
    };
    Ok(t.bytes
        .chunks_exact(width)
        .map(|c| {
            if width == 4 {
                i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64
            } else {
                i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }
        })
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// Position `p` lives in slot `p`; the pool grows by doubling.
    Flat,
    /// Position `p` lives in slot `p % slots`; the pool is allocated whole.
    Ring { slots: usize },
}

impl Storage {
    fn slots(self, capacity: usize) -> usize {
        match self {
            Storage::Flat => capacity,
            Storage::Ring { slots } => slots,
        }
    }
}

/// A contiguous range of pool slots, and where it sits in the step's tokens (writes) or in the
/// fetched window (reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub slot: usize,
    pub len: usize,
    pub offset: usize,
}

/// Which mask attention over a fetched window needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskPlan {
    /// One query: it sees the whole window.
    None,
    /// MLX's lower-right aligned causal mode (query `i` sees keys `..= i + S - T`).
    Causal,
    /// Query `i` (position `query_start + i`) sees key `j` (position `key_start + j`) iff
    /// `q - window < k <= q`.
    Band {
        query_start: usize,
        key_start: usize,
        window: usize,
    },
}

/// The host-side plan of one layer's step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One or two runs (a ring write wraps at most once).
    pub writes: Vec<Run>,
    /// One or two runs, in position order.
    pub reads: Vec<Run>,
    /// First position of the fetched window.
    pub read_start: usize,
    /// Positions in the fetched window (`S`).
    pub read_len: usize,
    /// Slots the pool must have.
    pub pool_slots: usize,
    pub mask: MaskPlan,
}

/// A slot range `[first, first + len)` of a ring of `slots`, split where it wraps.
fn ring_runs(first: usize, len: usize, slots: usize) -> Vec<Run> {
    let head = len.min(slots - first);
    let mut runs = vec![Run {
        slot: first,
        len: head,
        offset: 0,
    }];
    if head < len {
        runs.push(Run {
            slot: 0,
            len: len - head,
            offset: head,
        });
    }
    runs
}

/// Pool size after a flat layer grows to hold `needed` slots: doubling from
/// `min(initial, capacity)`, capped at `capacity`.
pub fn grown_slots(allocated: usize, needed: usize, initial: usize, capacity: usize) -> usize {
    if allocated >= needed {
        return allocated;
    }
    let mut n = if allocated == 0 {
        initial.min(capacity).max(1)
    } else {
        allocated
    };
    while n < needed {
        n = n.saturating_mul(2);
    }
    n.min(capacity)
}

/// What a layer's attention reads after an update: K and V of the window (in the cache dtype)
/// and the mask.
pub struct AttendSpec {
    pub k: Array,
    pub v: Array,
    pub mask: Mask,
}

pub enum Mask {
    None,
    Causal,
    /// Bool `[1, 1, T, S]`, true = attend.
    Explicit(Array),
}

/// Marks a ring slot that holds no position.
const EMPTY_SLOT: usize = usize::MAX;

struct Layer {
    geometry: LayerGeometry,
    storage: Storage,
    /// Pools `[1, H, allocated, D]`; `None` until the first write. Only this handle refers to a
    /// pool between steps, so MLX can update it in place (donation).
    k: Option<Array>,
    v: Option<Array>,
    allocated: usize,
    /// Positions committed (`0..len` are readable).
    len: usize,
    /// Ring layers: the position each slot holds (`EMPTY_SLOT` if none).
    slot_positions: Vec<usize>,
}

/// An off-graph KV cache: per-layer K/V pools plus their committed lengths.
pub struct SequenceCache {
    spec: KvCacheSpec,
    layers: Vec<Layer>,
}

impl SequenceCache {
    pub fn new(spec: KvCacheSpec) -> Result<Self, CacheError> {
        spec.validate()?;
        let layers = spec
            .layers
            .iter()
            .map(|g| {
                let storage = spec.storage(g);
                let ring_slots = match storage {
                    Storage::Ring { slots } => slots,
                    Storage::Flat => 0,
                };
                Layer {
                    geometry: *g,
                    storage,
                    k: None,
                    v: None,
                    allocated: 0,
                    len: 0,
                    slot_positions: vec![EMPTY_SLOT; ring_slots],
                }
            })
            .collect();
        Ok(SequenceCache { spec, layers })
    }

    pub fn spec(&self) -> &KvCacheSpec {
        &self.spec
    }

    pub fn capacity(&self) -> usize {
        self.spec.capacity
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Positions the cache holds (the longest layer; all layers agree between steps).
    pub fn len(&self) -> usize {
        self.layers.iter().map(|l| l.len).max().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions layer `layer` holds.
    pub fn layer_len(&self, layer: usize) -> Option<usize> {
        self.layers.get(layer).map(|l| l.len)
    }

    /// Slots currently allocated in layer `layer`'s pools (0 before its first write).
    pub fn allocated_slots(&self, layer: usize) -> Option<usize> {
        self.layers.get(layer).map(|l| l.allocated)
    }

    /// Whether `n` more positions fit below the capacity.
    pub fn can_extend(&self, n: usize) -> bool {
        self.len()
            .checked_add(n)
            .is_some_and(|end| end <= self.spec.capacity)
    }

    /// Forgets every position (pools stay allocated for reuse).
    pub fn clear(&mut self) {
        for l in &mut self.layers {
            l.len = 0;
            l.slot_positions.iter_mut().for_each(|p| *p = EMPTY_SLOT);
        }
    }

    /// Drops the newest `n` positions of every layer, so the next step may start at `len - n`.
    pub fn rewind(&mut self, n: usize) -> Result<(), CacheError> {
        let len = self.len();
        if n > len {
            return Err(CacheError::RewindTooFar { n, len });
        }
        let new_len = len - n;
        for l in &mut self.layers {
            l.len = l.len.min(new_len);
            for p in &mut l.slot_positions {
                if *p != EMPTY_SLOT && *p >= new_len {
                    *p = EMPTY_SLOT;
                }
            }
        }
        Ok(())
    }

    fn layer_index(&self, layer: i64) -> Result<usize, CacheError> {
        usize::try_from(layer)
            .ok()
            .filter(|&l| l < self.layers.len())
            .ok_or(CacheError::LayerOutOfRange {
                layer,
                n_layers: self.layers.len(),
            })
    }

    /// Plans a step of `tokens` positions starting at `start` on layer `layer` (no MLX work).
    pub fn plan(&self, layer: usize, start: usize, tokens: usize) -> Result<Plan, CacheError> {
        let l = self.layers.get(layer).ok_or(CacheError::LayerOutOfRange {
            layer: layer as i64,
            n_layers: self.layers.len(),
        })?;
        if tokens == 0 {
            return Err(CacheError::EmptyStep { layer });
        }
        let capacity = self.spec.capacity;
        let end = start.checked_add(tokens).filter(|&e| e <= capacity).ok_or(
            CacheError::BeyondCapacity {
                layer,
                start,
                end: start.saturating_add(tokens),
                capacity,
            },
        )?;
        if start > l.len {
            return Err(CacheError::Gap {
                layer,
                start,
                len: l.len,
            });
        }
        let window = l.geometry.window;
        let read_start = if window > 0 {
            (start + 1).saturating_sub(window)
        } else {
            0
        };
        let read_len = end - read_start;
        let mask = if tokens == 1 {
            MaskPlan::None
        } else if window > 0 && read_len > window {
            MaskPlan::Band {
                query_start: start,
                key_start: read_start,
                window,
            }
        } else {
            MaskPlan::Causal
        };
        let (writes, reads, pool_slots) = match l.storage {
            Storage::Flat => (
                vec![Run {
                    slot: start,
                    len: tokens,
                    offset: 0,
                }],
                vec![Run {
                    slot: read_start,
                    len: read_len,
                    offset: 0,
                }],
                end,
            ),
            Storage::Ring { slots } => {
                if tokens > self.spec.max_write {
                    return Err(CacheError::WriteTooLong {
                        layer,
                        tokens,
                        max_write: self.spec.max_write,
                    });
                }
                // The older keys this step reads must still be in the ring.
                if let Some(position) =
                    (read_start..start).find(|&p| l.slot_positions.get(p % slots) != Some(&p))
                {
                    return Err(CacheError::Overwritten { layer, position });
                }
                (
                    ring_runs(start % slots, tokens, slots),
                    ring_runs(read_start % slots, read_len, slots),
                    slots,
                )
            }
        };
        Ok(Plan {
            writes,
            reads,
            read_start,
            read_len,
            pool_slots,
            mask,
        })
    }

    /// Writes this step's `k`, `v` (`[1, H, T, D]`) at positions `start..start + T` of `layer`,
    /// commits them, and returns the window attention reads plus its mask.
    pub fn update_and_fetch(
        &mut self,
        layer: i64,
        start: usize,
        k: &Array,
        v: &Array,
        s: Stream,
    ) -> Result<AttendSpec, CacheError> {
        let layer = self.layer_index(layer)?;
        let g = self.layers[layer].geometry;
        let tokens = check_kv_shape(layer, "k", k, &g, None)?;
        check_kv_shape(layer, "v", v, &g, Some(tokens))?;
        let plan = self.plan(layer, start, tokens)?;
        let dtype = self.spec.dtype;
        let (initial, capacity) = (self.spec.initial_capacity, self.spec.capacity);
        let l = &mut self.layers[layer];

        // Grow (or first allocate) the pools; growth keeps the old slots in place.
        let wanted = match l.storage {
            Storage::Flat => grown_slots(l.allocated, plan.pool_slots, initial, capacity),
            Storage::Ring { slots } => slots,
        };
        if wanted > l.allocated {
            let extra = [
                1,
                g.n_kv_heads as i32,
                (wanted - l.allocated) as i32,
                g.head_dim as i32,
            ];
            for pool in [&mut l.k, &mut l.v] {
                let zeros = ops::zeros(&extra, dtype, s)?;
                *pool = Some(match pool.take() {
                    Some(old) => ops::concatenate(&[&old, &zeros], 2, s)?,
                    None => zeros,
                });
            }
            l.allocated = wanted;
        }

        for (pool, new) in [(&mut l.k, k), (&mut l.v, v)] {
            let new = if new.dtype() == dtype {
                new.clone()
            } else {
                ops::astype(new, dtype, s)?
            };
            for run in &plan.writes {
                let part = if run.len == tokens {
                    new.clone()
                } else {
                    seq_slice(&new, run.offset, run.len, s)?
                };
                // Take the pool out so the old handle is gone once the update exists (donation).
                let old = pool
                    .take()
                    .ok_or(CacheError::BadGeometry("pool vanished".into()))?;
                let dims = old.shape();
                let mut start_idx = vec![0; dims.len()];
                start_idx[2] = run.slot as i32;
                let mut stop = dims.clone();
                stop[2] = (run.slot + run.len) as i32;
                *pool = Some(ops::slice_update(
                    &old,
                    &part,
                    &start_idx,
                    &stop,
                    &[1, 1, 1, 1],
                    s,
                )?);
            }
        }
        if let Storage::Ring { slots } = l.storage {
            for p in start..start + tokens {
                l.slot_positions[p % slots] = p;
            }
        }
        l.len = l.len.max(start + tokens);

        let read = |pool: &Option<Array>| -> Result<Array, CacheError> {
            let pool = pool
                .as_ref()
                .ok_or(CacheError::BadGeometry("pool vanished".into()))?;
            let parts: Vec<Array> = plan
                .reads
                .iter()
                .map(|r| seq_slice(pool, r.slot, r.len, s))
                .collect::<Result<_, _>>()?;
            Ok(match parts.as_slice() {
                [one] => one.clone(),
                _ => ops::concatenate(&parts.iter().collect::<Vec<_>>(), 2, s)?,
            })
        };
        let k_window = read(&l.k)?;
        let v_window = read(&l.v)?;
        let mask = match plan.mask {
            MaskPlan::None => Mask::None,
            MaskPlan::Causal => Mask::Causal,
            MaskPlan::Band {
                query_start,
                key_start,
                window,
            } => Mask::Explicit(band_mask(
                query_start,
                tokens,
                key_start,
                plan.read_len,
                window,
                s,
            )?),
        };
        Ok(AttendSpec {
            k: k_window,
            v: v_window,
            mask,
        })
    }
}

/// Checks `[1, n_kv_heads, T, head_dim]` (with `T == tokens` when given) and returns `T`.
fn check_kv_shape(
    layer: usize,
    name: &str,
    a: &Array,
    g: &LayerGeometry,
    tokens: Option<usize>,
) -> Result<usize, CacheError> {
    let shape = a.shape();
    let t = match shape.as_slice() {
        [1, h, t, d] if *h as usize == g.n_kv_heads && *d as usize == g.head_dim && *t >= 0 => {
            *t as usize
        }
        _ => {
            return Err(CacheError::BadShape {
                layer,
                what: format!("{name} has shape {shape:?}"),
                expected: format!("[1, {}, T, {}]", g.n_kv_heads, g.head_dim),
            })
        }
    };
    match tokens {
        Some(want) if want != t => Err(CacheError::BadShape {
            layer,
            what: format!("{name} has {t} tokens"),
            expected: format!("{want}, as k"),
        }),
        _ => Ok(t),
    }
}

/// `a[:, :, first..first + len, :]`.
fn seq_slice(a: &Array, first: usize, len: usize, s: Stream) -> Result<Array, CacheError> {
    let dims = a.shape();
    let mut start = vec![0; dims.len()];
    start[2] = first as i32;
    let mut stop = dims.clone();
    stop[2] = (first + len) as i32;
    Ok(ops::slice(a, &start, &stop, &vec![1; dims.len()], s)?)
}

/// Bool `[1, 1, T, S]`: query position `q = query_start + i` attends key position
/// `k = key_start + j` iff `q - window < k <= q`. Built with MLX ops (on the device).
fn band_mask(
    query_start: usize,
    tokens: usize,
    key_start: usize,
    keys: usize,
    window: usize,
    s: Stream,
) -> Result<Array, CacheError> {
    let q = ops::reshape(
        &ops::arange_i32(query_start as i32, (query_start + tokens) as i32, 1, s)?,
        &[tokens as i32, 1],
        s,
    )?;
    let k = ops::reshape(
        &ops::arange_i32(key_start as i32, (key_start + keys) as i32, 1, s)?,
        &[1, keys as i32],
        s,
    )?;
    let not_future = ops::binary(BinaryOp::LessEqual, &k, &q, s)?;
    let oldest = ops::binary(
        BinaryOp::Subtract,
        &q,
        &Array::scalar_i32(window as i32)?,
        s,
    )?;
    let in_window = ops::binary(BinaryOp::Greater, &k, &oldest, s)?;
    let band = ops::binary(BinaryOp::LogicalAnd, &not_future, &in_window, s)?;
    Ok(ops::reshape(&band, &[1, 1, tokens as i32, keys as i32], s)?)
}

/// The `UpdateAndAttend` op: reads `position[0]` on the host (a sync), updates the layer's cache
/// with `k`/`v`, attends `q` over the fetched window (K/V cast to q's dtype) and casts the result
/// to `out_dtype` when given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_and_attend_op(
    cx: &mut Ctx<'_>,
    q: Tid,
    k: Tid,
    v: Tid,
    position: Tid,
    out: Tid,
    layer_id: Option<i32>,
    scale: Option<f32>,
    out_dtype: Option<i8>,
) -> Result<(), ExecError> {
    const OP: &str = "UpdateAndAttend";
    let layer = layer_id.ok_or_else(|| ExecError::invalid(OP, "the node has no layer_id"))?;
    let scale = scale.ok_or_else(|| ExecError::invalid(OP, "the node has no scale"))?;
    let s = cx.s();
    let start =
        first_position(cx.get(position)?, s).map_err(|e| ExecError::invalid(OP, e.to_string()))?;
    let query = cx.get(q)?.clone();
    let (k_new, v_new) = (cx.get(k)?.clone(), cx.get(v)?.clone());
    let cache = cx.cache.as_deref_mut().ok_or_else(|| {
        ExecError::invalid(
            OP,
            "this program uses an off-graph KV cache but none is installed: build one from the \
             program's getters (or pass `--kv-cache capacity,n_layers,n_kv_heads,head_dim[,dtype]` \
             to op_test_runner) and load with the `cache_key` option",
        )
    })?;
    let spec = cache
        .update_and_fetch(layer as i64, start, &k_new, &v_new, s)
        .map_err(|e| ExecError::invalid(OP, e.to_string()))?;
    drop((k_new, v_new));
    let to_q = |a: Array| -> Result<Array, ExecError> {
        Ok(if a.dtype() == query.dtype() {
            a
        } else {
            ops::astype(&a, query.dtype(), s)?
        })
    };
    let (keys, values) = (to_q(spec.k)?, to_q(spec.v)?);
    let (mode, mask) = match &spec.mask {
        Mask::None => ("", None),
        Mask::Causal => ("causal", None),
        Mask::Explicit(m) => ("", Some(m)),
    };
    let mut r = mlx::fast::scaled_dot_product_attention(
        &query, &keys, &values, scale, mode, mask, None, s,
    )?;
    if let Some(code) = out_dtype {
        let want = crate::dtype::mlx_dtype(code)?;
        if r.dtype() != want {
            r = ops::astype(&r, want, s)?;
        }
    }
    cx.set(out, r)
}

/// `position[0]` of an int32/int64 position tensor (evaluates that element: a host sync).
fn first_position(position: &Array, s: Stream) -> Result<usize, CacheError> {
    let bad = |why: String| CacheError::BadPosition(why);
    if !matches!(position.dtype(), Dtype::Int32 | Dtype::Int64) {
        return Err(bad(format!(
            "dtype {} (expected int32 or int64)",
            position.dtype()
        )));
    }
    if position.size() == 0 {
        return Err(bad("it is empty".into()));
    }
    let flat = ops::reshape(position, &[position.size() as i32], s)?;
    let value = ops::slice(&flat, &[0], &[1], &[1], s)?.item_i64()?;
    usize::try_from(value).map_err(|_| bad(format!("the first position is {value}")))
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Mutex<SequenceCache>>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Mutex<SequenceCache>>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The cache registered under `key`.
pub fn lookup(key: &str) -> Option<Arc<Mutex<SequenceCache>>> {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .cloned()
}

/// Creates a cache for `spec`, registers it under a fresh key and points `options` at it
/// (`cache_key`), so every method loaded with these options shares it. Returns the cache; the
/// registry keeps it alive until [`uninstall_sequence_cache`].
pub fn install_sequence_cache(
    options: &mut BackendOptions,
    spec: &KvCacheSpec,
) -> Result<Arc<Mutex<SequenceCache>>, CacheError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let cache = Arc::new(Mutex::new(SequenceCache::new(spec.clone())?));
    let key = format!("etmlx-seq-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), cache.clone());
    options.set(BACKEND_ID, option_keys::CACHE_KEY, OptionValue::Str(key));
    Ok(cache)
}

/// Removes the cache registered under `key` (handles already loaded keep their reference).
pub fn uninstall_sequence_cache(key: &str) -> bool {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key)
        .is_some()
}

#[cfg(test)]
mod tests {
    //! Plan, growth, ring wrap-around and masks, checked against positions worked out by hand.
    //! K rows carry their position (`k[0, h, t, d] = 100 * position + 10 * h + d`), so a fetched
    //! window shows which positions it holds, in which order.

    use super::*;
    use mlx::DeviceType;

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        crate::backend::mlx_lock()
    }

    fn cpu() -> Stream {
        Stream::new(DeviceType::Cpu).unwrap()
    }

    /// `[1, heads, positions.len(), dim]` f32 with each row encoding its position.
    fn rows(positions: std::ops::Range<usize>, heads: usize, dim: usize) -> Array {
        let t = positions.len();
        let mut data = Vec::with_capacity(heads * t * dim);
        for h in 0..heads {
            for p in positions.clone() {
                for d in 0..dim {
                    data.push((100 * p + 10 * h + d) as f32);
                }
            }
        }
        Array::from_slice(&data, &[1, heads as i32, t as i32, dim as i32]).unwrap()
    }

    /// Positions held by a fetched `[1, H, S, D]` window, read from head 0, dim 0.
    fn positions_of(window: &Array) -> Vec<usize> {
        let f = ops::astype(window, Dtype::Float32, cpu()).unwrap();
        let shape = window.shape();
        let (s, d) = (shape[2] as usize, shape[3] as usize);
        let values = f.to_vec::<f32>().unwrap();
        (0..s).map(|i| (values[i * d] / 100.0) as usize).collect()
    }

    fn mask_rows(mask: &Array) -> Vec<Vec<u8>> {
        let shape = mask.shape();
        assert_eq!(&shape[..2], &[1, 1]);
        let (t, s) = (shape[2] as usize, shape[3] as usize);
        let bits = mask.to_vec::<bool>().unwrap();
        (0..t)
            .map(|i| (0..s).map(|j| bits[i * s + j] as u8).collect())
            .collect()
    }

    fn step(c: &mut SequenceCache, layer: i64, start: usize, tokens: usize) -> AttendSpec {
        let g = c.spec().layers[layer as usize];
        let k = rows(start..start + tokens, g.n_kv_heads, g.head_dim);
        c.update_and_fetch(layer, start, &k, &k, cpu()).unwrap()
    }

    fn ring_spec() -> KvCacheSpec {
        // Window 4, steps of at most 3 tokens: 4 + 3 - 1 = 6 ring slots.
        KvCacheSpec {
            capacity: 64,
            dtype: Dtype::Float32,
            layers: vec![LayerGeometry {
                n_kv_heads: 1,
                head_dim: 2,
                window: 4,
            }],
            initial_capacity: DEFAULT_INITIAL_CAPACITY,
            max_write: 3,
        }
    }

    #[test]
    fn spec_strings_as_op_test_runner_receives_them() {
        let s: KvCacheSpec = "16,2,2,8,6".parse().unwrap();
        assert_eq!(
            (s.capacity, s.layers.len(), s.dtype),
            (16, 2, Dtype::Float32)
        );
        assert_eq!(
            s.layers[1],
            LayerGeometry {
                n_kv_heads: 2,
                head_dim: 8,
                window: 0
            }
        );
        assert_eq!(
            "16,2,2,8,5".parse::<KvCacheSpec>().unwrap().dtype,
            Dtype::Float16
        );
        assert_eq!(
            "16,2,2,8,bf16".parse::<KvCacheSpec>().unwrap().dtype,
            Dtype::Bfloat16
        );
        assert_eq!(
            "16,2,2,8".parse::<KvCacheSpec>().unwrap().dtype,
            Dtype::Bfloat16
        );
        for bad in [
            "16,2,2",
            "0,2,2,8",
            "16,2,2,8,7",
            "16,x,2,8",
            "16,2,2,8,6,1",
        ] {
            let err = bad.parse::<KvCacheSpec>().unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn flat_pools_grow_by_doubling_up_to_capacity() {
        assert_eq!(grown_slots(0, 1, 512, 2048), 512);
        assert_eq!(grown_slots(512, 512, 512, 2048), 512);
        assert_eq!(grown_slots(512, 513, 512, 2048), 1024);
        assert_eq!(grown_slots(1024, 1500, 512, 2048), 2048);
        assert_eq!(
            grown_slots(0, 600, 512, 1000),
            1000,
            "512 doubles to 1024, capped at 1000"
        );
        assert_eq!(
            grown_slots(0, 3, 512, 16),
            16,
            "starts at min(512, capacity)"
        );
        assert_eq!(grown_slots(4, 5, 4, 16), 8);
        assert_eq!(grown_slots(4, 13, 4, 16), 16);
    }

    #[test]
    fn flat_plan_and_masks() {
        let _g = lock();
        let mut c = SequenceCache::new("16,2,2,8,6".parse().unwrap()).unwrap();
        let p = c.plan(0, 0, 3).unwrap();
        assert_eq!(
            p.writes,
            vec![Run {
                slot: 0,
                len: 3,
                offset: 0
            }]
        );
        assert_eq!(
            p.reads,
            vec![Run {
                slot: 0,
                len: 3,
                offset: 0
            }]
        );
        assert_eq!((p.read_start, p.read_len, p.mask), (0, 3, MaskPlan::Causal));
        assert_eq!(
            c.plan(0, 0, 1).unwrap().mask,
            MaskPlan::None,
            "one token needs no mask"
        );
        step(&mut c, 0, 0, 3);
        assert_eq!(
            (c.layer_len(0), c.layer_len(1)),
            (Some(3), Some(0)),
            "layers commit separately"
        );
        let p = c.plan(0, 3, 2).unwrap();
        assert_eq!(
            p.writes,
            vec![Run {
                slot: 3,
                len: 2,
                offset: 0
            }]
        );
        assert_eq!(
            (p.read_start, p.read_len, p.mask),
            (0, 5, MaskPlan::Causal),
            "lower-right causal"
        );
        // Re-processing earlier positions reads only up to the step's end.
        assert_eq!(c.plan(0, 1, 1).unwrap().read_len, 2);
        assert!(matches!(
            c.plan(0, 4, 1),
            Err(CacheError::Gap {
                layer: 0,
                start: 4,
                len: 3
            })
        ));
        assert!(matches!(
            c.plan(1, 1, 1),
            Err(CacheError::Gap {
                layer: 1,
                start: 1,
                len: 0
            })
        ));
        assert!(matches!(
            c.plan(0, 3, 14),
            Err(CacheError::BeyondCapacity {
                end: 17,
                capacity: 16,
                ..
            })
        ));
        assert!(matches!(
            c.plan(2, 0, 1),
            Err(CacheError::LayerOutOfRange {
                layer: 2,
                n_layers: 2
            })
        ));
        assert!(matches!(
            c.plan(0, 0, 0),
            Err(CacheError::EmptyStep { layer: 0 })
        ));
    }

    #[test]
    fn flat_growth_keeps_earlier_positions() {
        let _g = lock();
        let spec = KvCacheSpec {
            initial_capacity: 4,
            ..KvCacheSpec::uniform(16, 1, 2, 3, Dtype::Float32)
        };
        let mut c = SequenceCache::new(spec).unwrap();
        assert_eq!(
            c.allocated_slots(0),
            Some(0),
            "pools are allocated on first use"
        );
        let a = step(&mut c, 0, 0, 3);
        assert_eq!(c.allocated_slots(0), Some(4));
        assert_eq!(positions_of(&a.k), vec![0, 1, 2]);
        let a = step(&mut c, 0, 3, 2);
        assert_eq!(c.allocated_slots(0), Some(8));
        assert_eq!(positions_of(&a.k), vec![0, 1, 2, 3, 4]);
        assert_eq!(positions_of(&a.v), vec![0, 1, 2, 3, 4]);
        // Head 1 is stored apart from head 0: element [0, 1, 4, 2] = 100*4 + 10 + 2.
        let last = ops::slice(&a.k, &[0, 1, 4, 2], &[1, 2, 5, 3], &[1, 1, 1, 1], cpu()).unwrap();
        assert_eq!(last.item_f64().unwrap(), 412.0);
        step(&mut c, 0, 5, 1);
        assert_eq!(c.allocated_slots(0), Some(8));
        let a = step(&mut c, 0, 6, 10);
        assert_eq!(c.allocated_slots(0), Some(16), "8 doubles to 16 = capacity");
        assert_eq!(positions_of(&a.k), (0..16).collect::<Vec<_>>());
        assert!(!c.can_extend(1));
        let err = c
            .update_and_fetch(0, 16, &rows(16..17, 2, 3), &rows(16..17, 2, 3), cpu())
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                CacheError::BeyondCapacity {
                    start: 16,
                    end: 17,
                    capacity: 16,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn ring_wraps_in_at_most_two_runs_with_band_masks() {
        let _g = lock();
        let mut c = SequenceCache::new(ring_spec()).unwrap();
        // Prefill 0..3: the window (4) covers the span (3), so plain causal.
        let p = c.plan(0, 0, 3).unwrap();
        assert_eq!(
            (p.writes.clone(), p.mask, p.pool_slots),
            (
                vec![Run {
                    slot: 0,
                    len: 3,
                    offset: 0
                }],
                MaskPlan::Causal,
                6
            )
        );
        let a = step(&mut c, 0, 0, 3);
        assert!(matches!(a.mask, Mask::Causal));
        assert_eq!(c.allocated_slots(0), Some(6), "ring allocated whole");

        // 3..6: reads positions 0..6 (span 6 > window 4): explicit band.
        let p = c.plan(0, 3, 3).unwrap();
        assert_eq!(
            p.writes,
            vec![Run {
                slot: 3,
                len: 3,
                offset: 0
            }]
        );
        assert_eq!(
            p.mask,
            MaskPlan::Band {
                query_start: 3,
                key_start: 0,
                window: 4
            }
        );
        let a = step(&mut c, 0, 3, 3);
        assert_eq!(positions_of(&a.k), vec![0, 1, 2, 3, 4, 5]);
        let Mask::Explicit(m) = &a.mask else {
            panic!("expected an explicit mask")
        };
        // query 3 sees 0..=3; query 4 sees 1..=4; query 5 sees 2..=5.
        assert_eq!(
            mask_rows(m),
            vec![
                vec![1, 1, 1, 1, 0, 0],
                vec![0, 1, 1, 1, 1, 0],
                vec![0, 0, 1, 1, 1, 1]
            ]
        );

        // Decode at 6: slot 0; reads 3..7 = slots 3,4,5 then 0; one token, no mask.
        let p = c.plan(0, 6, 1).unwrap();
        assert_eq!(
            p.writes,
            vec![Run {
                slot: 0,
                len: 1,
                offset: 0
            }]
        );
        assert_eq!(
            p.reads,
            vec![
                Run {
                    slot: 3,
                    len: 3,
                    offset: 0
                },
                Run {
                    slot: 0,
                    len: 1,
                    offset: 3
                }
            ]
        );
        let a = step(&mut c, 0, 6, 1);
        assert!(matches!(a.mask, Mask::None));
        assert_eq!(positions_of(&a.k), vec![3, 4, 5, 6]);

        // 7..10 in slots 1,2,3; reads 4..10 = slots 4,5 then 0..4.
        let p = c.plan(0, 7, 3).unwrap();
        assert_eq!(
            p.writes,
            vec![Run {
                slot: 1,
                len: 3,
                offset: 0
            }]
        );
        assert_eq!(
            p.reads,
            vec![
                Run {
                    slot: 4,
                    len: 2,
                    offset: 0
                },
                Run {
                    slot: 0,
                    len: 4,
                    offset: 2
                }
            ]
        );
        let a = step(&mut c, 0, 7, 3);
        assert_eq!(positions_of(&a.k), vec![4, 5, 6, 7, 8, 9]);
        let Mask::Explicit(m) = &a.mask else {
            panic!("expected an explicit mask")
        };
        assert_eq!(
            mask_rows(m),
            vec![
                vec![1, 1, 1, 1, 0, 0],
                vec![0, 1, 1, 1, 1, 0],
                vec![0, 0, 1, 1, 1, 1]
            ]
        );

        // 10..13 wraps the write: slots 4,5 then 0; reads 7..13 = slots 1..6 then 0.
        let p = c.plan(0, 10, 3).unwrap();
        assert_eq!(
            p.writes,
            vec![
                Run {
                    slot: 4,
                    len: 2,
                    offset: 0
                },
                Run {
                    slot: 0,
                    len: 1,
                    offset: 2
                }
            ]
        );
        assert_eq!(
            p.reads,
            vec![
                Run {
                    slot: 1,
                    len: 5,
                    offset: 0
                },
                Run {
                    slot: 0,
                    len: 1,
                    offset: 5
                }
            ]
        );
        let a = step(&mut c, 0, 10, 3);
        assert_eq!(positions_of(&a.k), vec![7, 8, 9, 10, 11, 12]);
        assert_eq!(positions_of(&a.v), vec![7, 8, 9, 10, 11, 12]);

        assert!(matches!(
            c.plan(0, 13, 4),
            Err(CacheError::WriteTooLong {
                tokens: 4,
                max_write: 3,
                ..
            })
        ));
        // Rewinding to 7 would need positions 4..7 again, but slots 4,5,0 now hold 10,11,12.
        c.rewind(6).unwrap();
        assert_eq!(c.len(), 7);
        assert!(matches!(
            c.plan(0, 7, 1),
            Err(CacheError::Overwritten {
                layer: 0,
                position: 4
            })
        ));
        // A short rewind within what the ring still holds works: 13 -> 12 after re-filling.
        c.clear();
        for start in [0, 3, 6, 9] {
            step(&mut c, 0, start, 3);
        }
        c.rewind(1).unwrap();
        let a = step(&mut c, 0, 11, 1);
        assert_eq!(positions_of(&a.k), vec![8, 9, 10, 11]);
    }

    #[test]
    fn windowed_layer_wider_than_its_ring_is_stored_flat_but_still_banded() {
        let _g = lock();
        // Window 4 with 16-token steps: 4 + 16 - 1 = 19 slots >= capacity 16, so flat storage.
        let spec = KvCacheSpec {
            max_write: 16,
            capacity: 16,
            ..ring_spec()
        };
        let mut c = SequenceCache::new(spec).unwrap();
        let p = c.plan(0, 0, 6).unwrap();
        assert_eq!(
            p.mask,
            MaskPlan::Band {
                query_start: 0,
                key_start: 0,
                window: 4
            }
        );
        let a = step(&mut c, 0, 0, 6);
        let Mask::Explicit(m) = &a.mask else {
            panic!("expected an explicit mask")
        };
        let r = mask_rows(m);
        assert_eq!(r[0], vec![1, 0, 0, 0, 0, 0]);
        assert_eq!(r[5], vec![0, 0, 1, 1, 1, 1]);
        // Decode at 6 reads only its window 3..7.
        let a = step(&mut c, 0, 6, 1);
        assert_eq!(positions_of(&a.k), vec![3, 4, 5, 6]);
    }

    #[test]
    fn storage_dtype_and_shape_errors() {
        let _g = lock();
        let mut c = SequenceCache::new("16,2,2,8,5".parse().unwrap()).unwrap();
        let a = step(&mut c, 1, 0, 2);
        assert_eq!(a.k.dtype(), Dtype::Float16, "pools store the spec dtype");
        assert_eq!(positions_of(&a.k), vec![0, 1]);
        let s = cpu();
        let bad_heads = rows(0..1, 3, 8);
        let err = c
            .update_and_fetch(0, 0, &bad_heads, &bad_heads, s)
            .err()
            .unwrap();
        assert!(err.to_string().contains("[1, 2, T, 8]"), "{err}");
        let bad_dim = rows(0..1, 2, 4);
        assert!(matches!(
            c.update_and_fetch(0, 0, &bad_dim, &bad_dim, s),
            Err(CacheError::BadShape { .. })
        ));
        let (k, v) = (rows(0..2, 2, 8), rows(0..3, 2, 8));
        let err = c.update_and_fetch(0, 0, &k, &v, s).err().unwrap();
        assert!(err.to_string().contains("v has 3 tokens"), "{err}");
        let err = c.update_and_fetch(-1, 0, &k, &k, s).err().unwrap();
        assert!(
            matches!(
                err,
                CacheError::LayerOutOfRange {
                    layer: -1,
                    n_layers: 2
                }
            ),
            "{err}"
        );
        let err = c.update_and_fetch(7, 0, &k, &k, s).err().unwrap();
        assert!(
            matches!(
                err,
                CacheError::LayerOutOfRange {
                    layer: 7,
                    n_layers: 2
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn control_interface() {
        let _g = lock();
        let mut c = SequenceCache::new("8,1,1,2,6".parse().unwrap()).unwrap();
        assert!(c.is_empty() && c.can_extend(8) && !c.can_extend(9));
        assert_eq!(c.capacity(), 8);
        step(&mut c, 0, 0, 5);
        assert_eq!(c.len(), 5);
        assert!(c.can_extend(3) && !c.can_extend(4));
        assert!(matches!(
            c.rewind(6),
            Err(CacheError::RewindTooFar { n: 6, len: 5 })
        ));
        c.rewind(2).unwrap();
        assert_eq!(c.len(), 3);
        // After a rewind the next step starts at the new end and sees only 0..=3.
        let a = step(&mut c, 0, 3, 1);
        assert_eq!(positions_of(&a.k), vec![0, 1, 2, 3]);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(
            c.allocated_slots(0),
            Some(8),
            "clear keeps the pools for reuse"
        );
        assert!(matches!(c.plan(0, 1, 1), Err(CacheError::Gap { .. })));
    }

    #[test]
    fn geometry_from_getter_values() {
        let g =
            CacheGeometry::from_values(2, &[2, 2], &[16, 16], Some(&[0, 0]), Some(16), Some(64))
                .unwrap();
        let spec = KvCacheSpec::from_geometry(&g, None, Dtype::Float32, None).unwrap();
        assert_eq!((spec.capacity, spec.max_write), (64, 16));
        assert_eq!(
            spec.layers,
            vec![
                LayerGeometry {
                    n_kv_heads: 2,
                    head_dim: 16,
                    window: 0
                };
                2
            ]
        );
        // A hybrid model: a sliding layer of window 8 becomes a ring of 8 + 16 - 1 slots.
        let g =
            CacheGeometry::from_values(2, &[2, 4], &[16, 32], Some(&[8, 0]), Some(16), Some(1024))
                .unwrap();
        let spec = KvCacheSpec::from_geometry(&g, Some(256), Dtype::Bfloat16, None).unwrap();
        assert_eq!(spec.capacity, 256);
        assert_eq!(spec.storage(&spec.layers[0]), Storage::Ring { slots: 23 });
        assert_eq!(spec.storage(&spec.layers[1]), Storage::Flat);
        let spec = KvCacheSpec::from_geometry(&g, None, Dtype::Bfloat16, Some(&[0, 0])).unwrap();
        assert_eq!(
            spec.storage(&spec.layers[0]),
            Storage::Flat,
            "windows can be overridden"
        );
        assert!(CacheGeometry::from_values(2, &[2], &[16, 16], None, None, None).is_err());
        assert!(CacheGeometry::from_values(0, &[], &[], None, None, None).is_err());
        assert!(CacheGeometry::from_values(1, &[-2], &[16], None, None, None).is_err());
        let no_ctx = CacheGeometry::from_values(1, &[2], &[16], None, None, None).unwrap();
        let err = KvCacheSpec::from_geometry(&no_ctx, None, Dtype::Float32, None).unwrap_err();
        assert!(err.to_string().contains("get_max_ctx_len"), "{err}");
    }
}
