//! Shared plumbing of the etmlx binaries (no engine logic lives here).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use etmlx_runtime::{BackendOptions, Program};

/// Opens a `.pte` (and optional `.ptd`) with the MLX backend registered and `options` applied.
pub fn open_program(pte: &Path, ptd: Option<&Path>, options: BackendOptions) -> Result<Program> {
    let mut program =
        Program::open(pte, ptd).with_context(|| format!("cannot load {}", pte.display()))?;
    program.register_backend(Arc::new(etmlx_mlx::MlxBackend));
    program.set_backend_options(options);
    Ok(program)
}
