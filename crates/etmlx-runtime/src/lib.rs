//! The ExecuTorch program runtime of etmlx: loads a `.pte` method, plans its memory, resolves its
//! kernels and delegates, and runs its instruction loop. It knows nothing of MLX: delegates are
//! reached through the [`Backend`] trait.

pub mod backend;
pub mod elements;
pub mod error;
pub mod evalue;
pub mod io;
pub mod kernels;
pub mod method;
pub mod program;
pub mod tensor;

pub use backend::{
    Backend, BackendError, BackendInitContext, BackendOptions, BackendRegistry, DelegateArgs,
    DelegateHandle, NamedDataMap, OptionValue, TensorView,
};
pub use error::{Result, RuntimeError};
pub use etmlx_pte::{ScalarType, ShapeDynamism};
pub use evalue::EValue;
pub use method::{DelegateArgRole, HostTensor, HostValue, Method, SoleDelegate};
pub use program::Program;
pub use tensor::{Storage, Tensor};
