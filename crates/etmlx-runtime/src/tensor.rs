//! Runtime tensors: ExecuTorch metadata (dtype, sizes, dim order, dynamism) plus where the bytes live.

use etmlx_pte::{ScalarType, ShapeDynamism};

use crate::error::{Result, RuntimeError};

/// Where a tensor's bytes live. Tensors never own planned memory: they name an arena slice of the
/// method, so values that the memory planner placed at the same offset alias exactly as in ExecuTorch.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// No storage yet: an unplanned input before `set_input`, or an output before its producer ran.
    Empty,
    /// `[offset, offset + capacity_bytes)` of the method's planned arena `arena` (0-based).
    Planned { arena: usize, offset: usize },
    /// Bytes owned by this value: constants, unplanned inputs, kernel or delegate outputs.
    Owned(Vec<u8>),
}

/// A tensor value of a method.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    dtype: ScalarType,
    sizes: Vec<i64>,
    /// The sizes the program declared: exact for static tensors, upper bounds for dynamic-bound ones.
    bound: Vec<i64>,
    dim_order: Vec<u8>,
    dynamism: ShapeDynamism,
    pub(crate) storage: Storage,
}

impl Tensor {
    /// A tensor with the declared metadata and no storage.
    pub fn new(
        dtype: ScalarType,
        sizes: Vec<i64>,
        dim_order: Vec<u8>,
        dynamism: ShapeDynamism,
    ) -> Result<Tensor> {
        let dim_order = if dim_order.is_empty() && !sizes.is_empty() {
            (0..sizes.len() as u8).collect()
        } else {
            dim_order
        };
        check_dim_order(&dim_order, sizes.len())?;
        if let Some(d) = sizes.iter().find(|&&d| d < 0) {
            return Err(RuntimeError::Memory(format!(
                "negative dimension {d} in sizes {sizes:?}"
            )));
        }
        numel_checked(&sizes, dtype)?;
        Ok(Tensor {
            dtype,
            bound: sizes.clone(),
            sizes,
            dim_order,
            dynamism,
            storage: Storage::Empty,
        })
    }

    /// A contiguous tensor that owns `bytes` (whose length must match the shape).
    pub fn from_bytes(dtype: ScalarType, sizes: Vec<i64>, bytes: Vec<u8>) -> Result<Tensor> {
        let mut t = Tensor::new(dtype, sizes, Vec::new(), ShapeDynamism::Static)?;
        if bytes.len() != t.nbytes() {
            return Err(RuntimeError::Memory(format!(
                "{} bytes given for a {:?} tensor of sizes {:?} ({} bytes)",
                bytes.len(),
                dtype,
                t.sizes,
                t.nbytes()
            )));
        }
        t.storage = Storage::Owned(bytes);
        Ok(t)
    }

    pub fn dtype(&self) -> ScalarType {
        self.dtype
    }
    pub fn sizes(&self) -> &[i64] {
        &self.sizes
    }
    pub fn bound(&self) -> &[i64] {
        &self.bound
    }
    pub fn dim_order(&self) -> &[u8] {
        &self.dim_order
    }
    pub fn dynamism(&self) -> ShapeDynamism {
        self.dynamism
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    pub fn dim(&self) -> usize {
        self.sizes.len()
    }
    pub fn numel(&self) -> usize {
        self.sizes.iter().map(|&d| d as usize).product()
    }
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.element_size()
    }
    /// Bytes reserved for this tensor: its bound's size.
    pub fn capacity_bytes(&self) -> usize {
        self.bound.iter().map(|&d| d as usize).product::<usize>() * self.dtype.element_size()
    }
    /// True when the dim order is the identity (row-major contiguous).
    pub fn is_contiguous(&self) -> bool {
        self.dim_order
            .iter()
            .enumerate()
            .all(|(i, &d)| d as usize == i)
    }

    /// Element strides (in elements) derived from sizes and dim order, as ExecuTorch does.
    pub fn strides(&self) -> Vec<i64> {
        strides_for(&self.sizes, &self.dim_order)
    }

    /// Resize within the declared bound (ExecuTorch `resize_tensor` semantics): static tensors accept
    /// only their own sizes; dynamic-bound ones any sizes of the same rank within the bound;
    /// dynamic-unbound ones any sizes (owned storage grows; planned storage must still fit).
    pub fn resize(&mut self, new_sizes: &[i64]) -> Result<()> {
        if new_sizes == self.sizes.as_slice() {
            return Ok(());
        }
        let out_of_bounds = || RuntimeError::ResizeOutOfBounds {
            dtype: self.dtype,
            sizes: new_sizes.to_vec(),
            bound: self.bound.clone(),
        };
        if new_sizes.len() != self.bound.len() || new_sizes.iter().any(|&d| d < 0) {
            return Err(out_of_bounds());
        }
        numel_checked(new_sizes, self.dtype)?;
        match self.dynamism {
            ShapeDynamism::Static => return Err(out_of_bounds()),
            ShapeDynamism::DynamicBound => {
                if new_sizes.iter().zip(&self.bound).any(|(n, b)| n > b) {
                    return Err(out_of_bounds());
                }
            }
            ShapeDynamism::DynamicUnbound => {
                let needed = numel_checked(new_sizes, self.dtype)? * self.dtype.element_size();
                if matches!(self.storage, Storage::Planned { .. }) && needed > self.capacity_bytes()
                {
                    return Err(out_of_bounds());
                }
            }
        }
        self.sizes = new_sizes.to_vec();
        let n = self.numel() * self.dtype.element_size();
        if let Storage::Owned(bytes) = &mut self.storage {
            if bytes.len() < n {
                bytes.resize(n, 0);
            }
        }
        Ok(())
    }
}

/// Strides of a tensor laid out by `dim_order` (outermost first).
pub fn strides_for(sizes: &[i64], dim_order: &[u8]) -> Vec<i64> {
    let mut strides = vec![1i64; sizes.len()];
    let mut running = 1i64;
    for &d in dim_order.iter().rev() {
        let d = d as usize;
        strides[d] = running;
        running = running.saturating_mul(sizes[d].max(1));
    }
    strides
}

fn check_dim_order(dim_order: &[u8], rank: usize) -> Result<()> {
    let mut seen = vec![false; rank];
    if dim_order.len() != rank {
        return Err(RuntimeError::Memory(format!(
            "dim order {dim_order:?} does not have rank {rank}"
        )));
    }
    for &d in dim_order {
        let d = d as usize;
        if d >= rank || std::mem::replace(&mut seen[d], true) {
            return Err(RuntimeError::Memory(format!(
                "dim order {dim_order:?} is not a permutation"
            )));
        }
    }
    Ok(())
}

/// Number of elements, refusing shapes whose byte size overflows or exceeds the runtime limit.
pub(crate) fn numel_checked(sizes: &[i64], dtype: ScalarType) -> Result<usize> {
    let mut n: usize = 1;
    for &d in sizes {
        n = usize::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .ok_or_else(|| RuntimeError::Memory(format!("sizes {sizes:?} overflow")))?;
    }
    match n.checked_mul(dtype.element_size()) {
        Some(bytes) if bytes <= MAX_TENSOR_BYTES => Ok(n),
        _ => Err(RuntimeError::Memory(format!(
            "a {dtype:?} tensor of sizes {sizes:?} exceeds the {MAX_TENSOR_BYTES}-byte tensor limit"
        ))),
    }
}

/// Largest single tensor the runtime will allocate on the host (64 GiB).
pub const MAX_TENSOR_BYTES: usize = 64 << 30;
