use std::ptr::NonNull;

use half::{bf16, f16};
use mlx_sys::etm_array;

use crate::dtype::Dtype;
use crate::error::{check, MlxError, Result};

/// Owned handle to an MLX array (a node of MLX's lazy graph).
///
/// `Clone` copies the handle, not the data: both handles share one buffer. Stray clones that
/// are alive when a graph is evaluated stop MLX from donating (reusing in place) that buffer.
/// `Send` but not `Sync`: MLX graph building is not thread-safe, so callers serialise MLX work.
pub struct Array {
    handle: NonNull<etm_array>,
}

// SAFETY: the handle is a heap-allocated mlx::core::array owned exclusively by this value; it can
// move between threads as long as MLX calls are serialised, which the crate docs require.
unsafe impl Send for Array {}

impl Drop for Array {
    fn drop(&mut self) {
        // SAFETY: the handle came from the shim, is owned by this value and is freed once.
        unsafe { mlx_sys::etm_array_free(self.handle.as_ptr()) }
    }
}

impl Clone for Array {
    fn clone(&self) -> Self {
        let mut out = std::ptr::null_mut();
        // SAFETY: valid handle, out-pointer to a live local.
        let status = unsafe { mlx_sys::etm_array_clone(self.handle.as_ptr(), &mut out) };
        match NonNull::new(out) {
            Some(handle) if status == 0 => Array { handle },
            // Copying a shared_ptr only fails when the process is out of memory.
            _ => std::alloc::handle_alloc_error(std::alloc::Layout::new::<usize>()),
        }
    }
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("shape", &self.shape())
            .field("dtype", &self.dtype())
            .finish()
    }
}

/// Rust element types that map 1:1 onto an MLX dtype (for `from_slice` / `to_vec`).
pub trait Element: Copy + sealed::Sealed {
    const DTYPE: Dtype;
    #[doc(hidden)]
    fn append_bytes(self, out: &mut Vec<u8>);
    #[doc(hidden)]
    fn from_element_bytes(bytes: &[u8]) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! numeric_element {
    ($($t:ty => $dtype:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$dtype;
            fn append_bytes(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_ne_bytes());
            }
            fn from_element_bytes(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_ne_bytes(raw)
            }
        }
    )*};
}

numeric_element!(
    u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64,
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
    f16 => Float16, bf16 => Bfloat16, f32 => Float32, f64 => Float64,
);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: Dtype = Dtype::Bool;
    fn append_bytes(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn from_element_bytes(bytes: &[u8]) -> Self {
        bytes.first().is_some_and(|&b| b != 0)
    }
}

/// Number of elements of `shape`, rejecting negative dims and overflow.
pub(crate) fn element_count(op: &'static str, shape: &[i32]) -> Result<usize> {
    shape.iter().try_fold(1usize, |count, &dim| {
        let dim = usize::try_from(dim)
            .map_err(|_| MlxError::invalid(op, format!("negative dimension {dim} in {shape:?}")))?;
        count
            .checked_mul(dim)
            .ok_or_else(|| MlxError::invalid(op, format!("shape {shape:?} overflows")))
    })
}

impl Array {
    /// Wraps a handle the shim just produced (status already checked).
    pub(crate) fn from_raw(op: &'static str, raw: *mut etm_array) -> Result<Array> {
        NonNull::new(raw)
            .map(|handle| Array { handle })
            .ok_or_else(|| MlxError::invalid(op, "shim returned a null array"))
    }

    /// Runs a shim call that produces one array through `out`.
    pub(crate) fn produce(
        op: &'static str,
        call: impl FnOnce(*mut *mut etm_array) -> std::ffi::c_int,
    ) -> Result<Array> {
        let mut out = std::ptr::null_mut();
        check(op, call(&mut out))?;
        Array::from_raw(op, out)
    }

    pub(crate) fn as_ptr(&self) -> *const etm_array {
        self.handle.as_ptr()
    }

    pub(crate) fn as_mut_ptr(&self) -> *mut etm_array {
        self.handle.as_ptr()
    }

    /// Copies `bytes` (native-endian, row-major) into a new array; `bytes.len()` must equal
    /// `numel(shape) * dtype.size()`.
    pub fn from_bytes(bytes: &[u8], shape: &[i32], dtype: Dtype) -> Result<Array> {
        const OP: &str = "from_bytes";
        let expected = element_count(OP, shape)?
            .checked_mul(dtype.size())
            .ok_or_else(|| MlxError::invalid(OP, format!("shape {shape:?} overflows")))?;
        if bytes.len() != expected {
            return Err(MlxError::invalid(
                OP,
                format!(
                    "{} bytes given, shape {shape:?} of {dtype} needs {expected}",
                    bytes.len()
                ),
            ));
        }
        // SAFETY: pointers and lengths describe live slices; the shim copies the bytes.
        Array::produce(OP, |out| unsafe {
            mlx_sys::etm_array_from_bytes(
                bytes.as_ptr(),
                bytes.len(),
                shape.as_ptr(),
                shape.len(),
                dtype.code(),
                out,
            )
        })
    }

    /// Copies `values` into a new array of shape `shape` (element count must match).
    pub fn from_slice<T: Element>(values: &[T], shape: &[i32]) -> Result<Array> {
        const OP: &str = "from_slice";
        let count = element_count(OP, shape)?;
        if values.len() != count {
            return Err(MlxError::invalid(
                OP,
                format!(
                    "{} values given, shape {shape:?} has {count} elements",
                    values.len()
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(count * T::DTYPE.size());
        for &value in values {
            value.append_bytes(&mut bytes);
        }
        Array::from_bytes(&bytes, shape, T::DTYPE)
    }

    /// A 0-d array holding `value` converted to `dtype`.
    pub fn scalar_f64_as(value: f64, dtype: Dtype) -> Result<Array> {
        // SAFETY: out-pointer supplied by `produce`.
        Array::produce("scalar", |out| unsafe {
            mlx_sys::etm_array_scalar_f64(value, dtype.code(), out)
        })
    }

    /// A 0-d array holding `value` converted to `dtype` (exact for 64-bit integers).
    pub fn scalar_i64_as(value: i64, dtype: Dtype) -> Result<Array> {
        // SAFETY: out-pointer supplied by `produce`.
        Array::produce("scalar", |out| unsafe {
            mlx_sys::etm_array_scalar_i64(value, dtype.code(), out)
        })
    }

    pub fn scalar_f32(value: f32) -> Result<Array> {
        Array::scalar_f64_as(f64::from(value), Dtype::Float32)
    }

    pub fn scalar_i32(value: i32) -> Result<Array> {
        Array::scalar_i64_as(i64::from(value), Dtype::Int32)
    }

    pub fn scalar_bool(value: bool) -> Result<Array> {
        Array::scalar_i64_as(i64::from(value), Dtype::Bool)
    }

    pub fn ndim(&self) -> usize {
        let mut ndim = 0usize;
        // SAFETY: valid handle, out-pointer to a live local; cannot fail for a valid handle.
        unsafe { mlx_sys::etm_array_ndim(self.as_ptr(), &mut ndim) };
        ndim
    }

    pub fn shape(&self) -> Vec<i32> {
        let mut dims = vec![0i32; self.ndim()];
        // SAFETY: `dims` has room for exactly ndim entries.
        unsafe { mlx_sys::etm_array_shape(self.as_ptr(), dims.as_mut_ptr(), dims.len()) };
        dims
    }

    /// Size of dimension `axis` (negative counts from the end); `None` when out of range.
    pub fn dim(&self, axis: i32) -> Option<i32> {
        let shape = self.shape();
        let ndim = i32::try_from(shape.len()).ok()?;
        let axis = if axis < 0 { axis + ndim } else { axis };
        usize::try_from(axis)
            .ok()
            .and_then(|a| shape.get(a).copied())
    }

    pub fn dtype(&self) -> Dtype {
        let mut code = 0;
        // SAFETY: valid handle, out-pointer to a live local.
        unsafe { mlx_sys::etm_array_dtype(self.as_ptr(), &mut code) };
        // The shim and this crate are built from the same MLX headers, so every code is known.
        Dtype::from_code(code).expect("MLX returned a dtype code unknown to this build")
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        let mut size = 0usize;
        // SAFETY: valid handle, out-pointer to a live local.
        unsafe { mlx_sys::etm_array_size(self.as_ptr(), &mut size) };
        size
    }

    pub fn itemsize(&self) -> usize {
        self.dtype().size()
    }

    pub fn nbytes(&self) -> usize {
        self.size() * self.itemsize()
    }

    /// Identity of the underlying MLX array node: equal for clones of one handle.
    pub fn id(&self) -> usize {
        let mut id = 0usize;
        // SAFETY: valid handle, out-pointer to a live local.
        unsafe { mlx_sys::etm_array_id(self.as_ptr(), &mut id) };
        id
    }

    /// Whether this array holds data laid out row-major without gaps from a 16-byte aligned start; false while it
    /// is unevaluated.
    pub fn has_dense_aligned_data(&self) -> bool {
        let mut dense = false;
        // SAFETY: valid handle, out-pointer to a live local.
        let status = unsafe { mlx_sys::etm_array_dense_aligned_data(self.as_ptr(), &mut dense) };
        status == 0 && dense
    }

    /// Evaluates this array (blocking).
    pub fn eval(&self) -> Result<()> {
        eval(&[self])
    }

    /// Waits until an array scheduled with [`async_eval`] is available.
    pub fn wait(&self) -> Result<()> {
        // SAFETY: valid handle; waiting mutates only MLX's shared node state.
        check("wait", unsafe {
            mlx_sys::etm_array_wait(self.as_mut_ptr())
        })
    }

    /// Evaluates and copies the elements, row-major and contiguous, into `dst`
    /// (`dst.len()` must equal [`Array::nbytes`]).
    pub fn read_into(&self, dst: &mut [u8]) -> Result<()> {
        // SAFETY: valid handle; `dst` is a live, writable slice of the stated length.
        check("read", unsafe {
            mlx_sys::etm_array_read(self.as_mut_ptr(), dst.as_mut_ptr(), dst.len())
        })
    }

    /// Evaluates and returns the elements as row-major contiguous bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; self.nbytes()];
        self.read_into(&mut bytes)?;
        Ok(bytes)
    }

    /// Evaluates and returns the elements; `T` must match the dtype exactly.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE {
            return Err(MlxError::invalid(
                "to_vec",
                format!("array is {}, requested {}", self.dtype(), T::DTYPE.name()),
            ));
        }
        let bytes = self.to_bytes()?;
        Ok(bytes
            .chunks_exact(T::DTYPE.size())
            .map(T::from_element_bytes)
            .collect())
    }

    /// Evaluates a one-element integer or bool array and returns its value.
    pub fn item_i64(&self) -> Result<i64> {
        let mut value = 0i64;
        // SAFETY: valid handle, out-pointer to a live local.
        check("item_i64", unsafe {
            mlx_sys::etm_array_item_i64(self.as_mut_ptr(), &mut value)
        })?;
        Ok(value)
    }

    /// Evaluates a one-element real array (any non-complex dtype) and returns it as `f64`.
    pub fn item_f64(&self) -> Result<f64> {
        let mut value = 0f64;
        // SAFETY: valid handle, out-pointer to a live local.
        check("item_f64", unsafe {
            mlx_sys::etm_array_item_f64(self.as_mut_ptr(), &mut value)
        })?;
        Ok(value)
    }
}

fn raw_list(arrays: &[&Array]) -> Vec<*const etm_array> {
    arrays.iter().map(|a| a.as_ptr()).collect()
}

/// Evaluates the arrays (blocking until their data is available).
pub fn eval(arrays: &[&Array]) -> Result<()> {
    let raw = raw_list(arrays);
    // SAFETY: `raw` holds valid handles borrowed for the call.
    check("eval", unsafe {
        mlx_sys::etm_eval(raw.as_ptr(), raw.len())
    })
}

/// The primitives MLX would run to evaluate `arrays` (nodes not yet scheduled; a multi-output node counts once),
/// as (primitive name, node count) sorted by name. For profiling: host submit cost grows with the node count.
pub fn graph_primitive_counts(arrays: &[&Array]) -> Result<Vec<(String, usize)>> {
    extern "C" fn visit(ctx: *mut std::ffi::c_void, name: *const std::ffi::c_char, count: usize) {
        // SAFETY: `ctx` is the `Vec` below, borrowed for the call; `name` is NUL-terminated, valid for the call.
        let counts = unsafe { &mut *ctx.cast::<Vec<(String, usize)>>() };
        let name = unsafe { std::ffi::CStr::from_ptr(name) };
        counts.push((name.to_string_lossy().into_owned(), count));
    }
    let raw = raw_list(arrays);
    let mut counts: Vec<(String, usize)> = Vec::new();
    // SAFETY: `raw` holds valid handles borrowed for the call; `visit` only touches `counts`, which outlives it.
    check("graph_primitives", unsafe {
        mlx_sys::etm_graph_primitives(
            raw.as_ptr(),
            raw.len(),
            visit,
            (&mut counts as *mut Vec<(String, usize)>).cast(),
        )
    })?;
    Ok(counts)
}

/// Schedules evaluation and returns immediately; use [`Array::wait`] or a read to sync.
pub fn async_eval(arrays: &[&Array]) -> Result<()> {
    let raw = raw_list(arrays);
    // SAFETY: `raw` holds valid handles borrowed for the call.
    check("async_eval", unsafe {
        mlx_sys::etm_async_eval(raw.as_ptr(), raw.len())
    })
}
