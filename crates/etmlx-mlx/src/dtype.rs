//! ExecuTorch ScalarType codes ↔ MLX dtypes, as the reference runtime's `resolve_dtype` maps them.

use mlx::Dtype;

use crate::error::ExecError;

/// MLX dtype for an ExecuTorch ScalarType code (Half, Float, BFloat16, Int, Short, Long, UInt32,
/// Byte, Bool, Char); any other code is an error.
pub fn mlx_dtype(scalar_type: i8) -> Result<Dtype, ExecError> {
    Ok(match scalar_type {
        0 => Dtype::Uint8,
        1 => Dtype::Int8,
        2 => Dtype::Int16,
        3 => Dtype::Int32,
        4 => Dtype::Int64,
        5 => Dtype::Float16,
        6 => Dtype::Float32,
        11 => Dtype::Bool,
        15 => Dtype::Bfloat16,
        28 => Dtype::Uint32,
        other => return Err(ExecError::UnsupportedDtype(other)),
    })
}

/// The ExecuTorch ScalarType code of an MLX dtype, where one exists.
pub fn scalar_type_of(dtype: Dtype) -> Option<i8> {
    Some(match dtype {
        Dtype::Uint8 => 0,
        Dtype::Int8 => 1,
        Dtype::Int16 => 2,
        Dtype::Int32 => 3,
        Dtype::Int64 => 4,
        Dtype::Float16 => 5,
        Dtype::Float32 => 6,
        Dtype::Float64 => 7,
        Dtype::Bool => 11,
        Dtype::Bfloat16 => 15,
        Dtype::Uint16 => 27,
        Dtype::Uint32 => 28,
        Dtype::Uint64 => 29,
        _ => return None,
    })
}
