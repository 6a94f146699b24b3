use std::ffi::c_int;
use std::fmt;

use mlx_sys::dtype as code;

/// MLX element types (all of `mlx::core::Dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Float16,
    Float32,
    Float64,
    Bfloat16,
    Complex64,
}

impl Dtype {
    pub const ALL: [Dtype; 14] = [
        Dtype::Bool,
        Dtype::Uint8,
        Dtype::Uint16,
        Dtype::Uint32,
        Dtype::Uint64,
        Dtype::Int8,
        Dtype::Int16,
        Dtype::Int32,
        Dtype::Int64,
        Dtype::Float16,
        Dtype::Float32,
        Dtype::Float64,
        Dtype::Bfloat16,
        Dtype::Complex64,
    ];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::Uint8 | Dtype::Int8 => 1,
            Dtype::Uint16 | Dtype::Int16 | Dtype::Float16 | Dtype::Bfloat16 => 2,
            Dtype::Uint32 | Dtype::Int32 | Dtype::Float32 => 4,
            Dtype::Uint64 | Dtype::Int64 | Dtype::Float64 | Dtype::Complex64 => 8,
        }
    }

    pub const fn is_floating(self) -> bool {
        matches!(
            self,
            Dtype::Float16 | Dtype::Float32 | Dtype::Float64 | Dtype::Bfloat16
        )
    }

    pub const fn is_integer(self) -> bool {
        matches!(
            self,
            Dtype::Uint8
                | Dtype::Uint16
                | Dtype::Uint32
                | Dtype::Uint64
                | Dtype::Int8
                | Dtype::Int16
                | Dtype::Int32
                | Dtype::Int64
        )
    }

    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::Uint8 => "uint8",
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
            Dtype::Uint64 => "uint64",
            Dtype::Int8 => "int8",
            Dtype::Int16 => "int16",
            Dtype::Int32 => "int32",
            Dtype::Int64 => "int64",
            Dtype::Float16 => "float16",
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::Bfloat16 => "bfloat16",
            Dtype::Complex64 => "complex64",
        }
    }

    pub(crate) const fn code(self) -> c_int {
        match self {
            Dtype::Bool => code::BOOL,
            Dtype::Uint8 => code::UINT8,
            Dtype::Uint16 => code::UINT16,
            Dtype::Uint32 => code::UINT32,
            Dtype::Uint64 => code::UINT64,
            Dtype::Int8 => code::INT8,
            Dtype::Int16 => code::INT16,
            Dtype::Int32 => code::INT32,
            Dtype::Int64 => code::INT64,
            Dtype::Float16 => code::FLOAT16,
            Dtype::Float32 => code::FLOAT32,
            Dtype::Float64 => code::FLOAT64,
            Dtype::Bfloat16 => code::BFLOAT16,
            Dtype::Complex64 => code::COMPLEX64,
        }
    }

    pub(crate) fn from_code(value: c_int) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.code() == value)
    }
}

/// `Some(dtype)` → its code, `None` → "MLX default".
pub(crate) fn optional_code(dtype: Option<Dtype>) -> c_int {
    dtype.map_or(code::DEFAULT, Dtype::code)
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
