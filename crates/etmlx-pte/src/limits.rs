//! Named limits applied while loading. They bound the work and memory a hostile file can cause;
//! real programs (including multi-billion-parameter LLM exports) stay far below them.

/// Most execution plans (methods) in one program.
pub const MAX_PLANS: usize = 4096;
/// Most values in one plan's value table.
pub const MAX_VALUES: usize = 1 << 22;
/// Most instructions in one plan, over all chains.
pub const MAX_INSTRUCTIONS: usize = 1 << 22;
/// Most chains in one plan.
pub const MAX_CHAINS: usize = 1024;
/// Most operators in one plan.
pub const MAX_OPERATORS: usize = 1 << 16;
/// Most delegates in one plan.
pub const MAX_DELEGATES: usize = 1 << 16;
/// Most compile specs on one delegate.
pub const MAX_COMPILE_SPECS: usize = 1024;
/// Most method inputs or outputs, and most arguments of one instruction.
pub const MAX_ARGS: usize = 1 << 20;
/// Most items in one list value (IntList, TensorList, ...).
pub const MAX_LIST_LEN: usize = 1 << 20;
/// Highest tensor rank.
pub const MAX_RANK: usize = 16;
/// Most planned memory buffers (`non_const_buffer_sizes` entries) in one plan.
pub const MAX_MEMORY_BUFFERS: usize = 1024;
/// Most segments, inline delegate blobs or legacy constant buffers in one file.
pub const MAX_SEGMENTS: usize = 1 << 20;
/// Most entries in one sub-segment offset table (constants or mutable initial values).
pub const MAX_SUBSEGMENT_OFFSETS: usize = 1 << 22;
/// Most named-data entries in one file.
pub const MAX_NAMED_DATA: usize = 1 << 20;
/// Most bytes of owned views (values, instructions, list items, strings, ...) materialized from
/// one file, counted as the in-memory size of each element. FlatBuffers let many tables point
/// at one shared vector, so per-vector limits alone would not bound memory or work; real
/// programs need tens of MiB at most (a value is about 150 bytes).
pub const MAX_MATERIALIZED_BYTES: u64 = 1 << 28;
