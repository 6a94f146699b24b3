//! Safe Rust API over the parts of Apple's MLX C++ library that the ExecuTorch MLX delegate uses.
//!
//! - [`Array`] is an owned handle to a lazy MLX array: `Drop` releases it, `Clone` copies the
//!   handle (the buffer is shared, never copied).
//! - Every op takes an explicit [`Stream`] and returns [`Result`]; C++ exceptions come back as
//!   [`MlxError`] carrying MLX's message and the op name, never as an abort.
//! - Nothing is computed until [`eval`] / [`Array::eval`] or a read-back ([`Array::to_bytes`]...).
//!
//! **Threads.** `Array` is `Send` but not `Sync`. Building MLX graphs is not thread-safe: callers
//! must serialise all MLX work (the delegate holds one global mutex around it).
//!
//! **Buffer donation.** MLX reuses an input's buffer for an op's output when the input handle is
//! the last reference at evaluation time (e.g. `slice_update` on a KV cache). Every extra
//! `Array` clone that is still alive at that point defeats this and forces a copy; drop old
//! handles before evaluating.

mod array;
mod device;
mod dtype;
mod error;
pub mod fast;
mod info;
pub mod memory;
pub mod ops;
pub mod random;

pub use array::{async_eval, eval, graph_primitive_counts, Array, Element};
pub use device::{default_device, is_available, synchronize, Device, DeviceType, Stream};
pub use dtype::Dtype;
pub use error::{MlxError, Result};
pub use info::{runtime_info, version, RuntimeInfo};
