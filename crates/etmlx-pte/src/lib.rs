//! Reader for ExecuTorch `.pte` programs and `.ptd` tensor data files.
//!
//! [`Pte::open`] maps a file, checks its header (`ET12` identifier, optional `eh00` extended
//! header, FlatBuffer and segment bounds), then converts the whole FlatBuffer once into owned,
//! validated views ([`Program`], [`ExecutionPlan`], [`Value`], [`TensorInfo`], ...). Later layers
//! can index with those views without re-checking:
//!
//! - method `inputs`/`outputs`, chain inputs/outputs, instruction arguments and list items that
//!   are value indices are `< values.len()` (`-1` in an `OptionalTensorList` becomes `None`);
//! - `op_index < operators.len()`, `delegate_index < delegates.len()`, and a jump destination is
//!   `<= instructions.len()` of its chain;
//! - every segment, named-data entry, delegate payload and stored tensor lies inside the file;
//!   constant and initial-value ranges are exactly `nbytes()` long;
//! - tensor metadata is sane (rank, sizes, dim order, byte size, planned range inside its
//!   buffer: see [`TensorInfo`]).
//!
//! What is *not* checked: the types of values that indices point at (an `IntList` item is a
//! valid index but might not be an `Int`), and the contents of delegate payloads.
//!
//! Malformed input never panics; every failure is a [`PteError`] naming the field path, index
//! or offset at fault. Work is bounded by the named constants in [`limits`].
//!
//! Byte access is zero-copy: [`Pte::constant_bytes`], [`Pte::named_data`],
//! [`Pte::delegate_blob`] borrow from the `Pte`, and [`SharedBytes`] (from
//! [`Pte::shared_bytes`] or a [`NamedDataMap`]) holds the mapping alive on its own.

#![warn(missing_docs)]

mod bytes;
mod error;
mod header;
pub mod limits;
mod load;
mod named_data;
mod program;
mod ptd;
mod pte;
mod summary;
mod types;

/// Raw planus-generated FlatBuffer types for `schema/program.fbs` and `schema/flat_tensor.fbs`.
///
/// Prefer the validated views of this crate; these are exposed for tools and for tests that
/// build files with the planus builders. `program` and `flat_tensor` are the two generated
/// roots (each has its own copy of `executorch_flatbuffer::ScalarType`); the namespace
/// re-exports below are the usual entry points.
pub mod schema {
    #[allow(clippy::all, clippy::pedantic, missing_docs, unused, unreachable_pub, dead_code)]
    #[rustfmt::skip]
    pub mod program {
        include!("generated/program.rs");
    }
    #[allow(clippy::all, clippy::pedantic, missing_docs, unused, unreachable_pub, dead_code)]
    #[rustfmt::skip]
    pub mod flat_tensor {
        include!("generated/flat_tensor.rs");
    }

    pub use flat_tensor::flat_tensor_flatbuffer;
    pub use program::executorch_flatbuffer;
}

pub use bytes::{ByteRange, SharedBytes, BUFFER_ALIGNMENT};
pub use error::{PteError, Result};
pub use header::{
    ExtendedHeader, PtdHeader, PTD_HEADER_MAGIC, PTD_IDENTIFIER, PTE_HEADER_MAGIC,
    PTE_HEADER_MIN_LEN, PTE_IDENTIFIER,
};
pub use named_data::{NamedBlob, NamedDataMap, NamedDataSource};
pub use program::{
    Allocation, Chain, CompileSpec, ContainerMetadata, DataRef, Delegate, ExecutionPlan,
    ExtraTensorInfo, Instruction, NamedDataEntry, Operator, Program, SubsegmentOffsets, TensorData,
    TensorInfo, TensorKind, Value,
};
pub use ptd::{Ptd, PtdEntry, TensorLayout};
pub use pte::Pte;
pub use summary::{
    DelegateSummary, IoSummary, MethodSummary, NamedDataSummary, ProgramSummary, TensorSummary,
};
pub use types::{DataLocation, ScalarType, ShapeDynamism, TensorDataLocation};
