//! Reading and writing single elements of any supported dtype, for the portable kernels.
//!
//! Kernels outside the delegate are bookkeeping (dtype casts, buffer write-backs, views), so they
//! convert element by element through a small `Scalar` instead of being generic over every dtype.

use etmlx_pte::ScalarType;
use half::{bf16, f16};

use crate::error::{Result, RuntimeError};

/// One element, widened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Int(v) => v as f64,
            Scalar::Float(v) => v,
            Scalar::Bool(v) => v as u8 as f64,
        }
    }
    /// Integer value; floats truncate toward zero like a C++ cast.
    pub fn as_i64(self) -> i64 {
        match self {
            Scalar::Int(v) => v,
            Scalar::Float(v) => v as i64,
            Scalar::Bool(v) => v as i64,
        }
    }
    pub fn as_bool(self) -> bool {
        match self {
            Scalar::Int(v) => v != 0,
            Scalar::Float(v) => v != 0.0,
            Scalar::Bool(v) => v,
        }
    }
}

fn unsupported(dtype: ScalarType) -> RuntimeError {
    RuntimeError::kernel(
        "element access",
        format!("dtype {dtype:?} is not supported by portable kernels"),
    )
}

/// Reads element `i` (in storage order) of a buffer of `dtype`.
pub fn read(dtype: ScalarType, bytes: &[u8], i: usize) -> Result<Scalar> {
    use ScalarType::*;
    let size = dtype.element_size();
    let b = bytes.get(i * size..(i + 1) * size).ok_or_else(|| {
        RuntimeError::kernel("element access", format!("element {i} is out of bounds"))
    })?;
    Ok(match dtype {
        Byte => Scalar::Int(b[0] as i64),
        Char => Scalar::Int(b[0] as i8 as i64),
        Short => Scalar::Int(i16::from_le_bytes([b[0], b[1]]) as i64),
        UInt16 => Scalar::Int(u16::from_le_bytes([b[0], b[1]]) as i64),
        Int => Scalar::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
        UInt32 => Scalar::Int(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
        Long => Scalar::Int(i64::from_le_bytes(b.try_into().expect("8 bytes"))),
        UInt64 => Scalar::Int(u64::from_le_bytes(b.try_into().expect("8 bytes")) as i64),
        Half => Scalar::Float(f16::from_le_bytes([b[0], b[1]]).to_f64()),
        BFloat16 => Scalar::Float(bf16::from_le_bytes([b[0], b[1]]).to_f64()),
        Float => Scalar::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        Double => Scalar::Float(f64::from_le_bytes(b.try_into().expect("8 bytes"))),
        Bool => Scalar::Bool(b[0] != 0),
        other => return Err(unsupported(other)),
    })
}

/// Writes `value` converted to `dtype` as element `i` of `bytes`.
pub fn write(dtype: ScalarType, bytes: &mut [u8], i: usize, value: Scalar) -> Result<()> {
    use ScalarType::*;
    let size = dtype.element_size();
    let out = bytes.get_mut(i * size..(i + 1) * size).ok_or_else(|| {
        RuntimeError::kernel("element access", format!("element {i} is out of bounds"))
    })?;
    match dtype {
        Byte => out[0] = value.as_i64() as u8,
        Char => out[0] = value.as_i64() as i8 as u8,
        Short => out.copy_from_slice(&(value.as_i64() as i16).to_le_bytes()),
        UInt16 => out.copy_from_slice(&(value.as_i64() as u16).to_le_bytes()),
        Int => out.copy_from_slice(&(value.as_i64() as i32).to_le_bytes()),
        UInt32 => out.copy_from_slice(&(value.as_i64() as u32).to_le_bytes()),
        Long => out.copy_from_slice(&value.as_i64().to_le_bytes()),
        UInt64 => out.copy_from_slice(&(value.as_i64() as u64).to_le_bytes()),
        Half => out.copy_from_slice(&f16::from_f64(value.as_f64()).to_le_bytes()),
        BFloat16 => out.copy_from_slice(&bf16::from_f64(value.as_f64()).to_le_bytes()),
        Float => out.copy_from_slice(&(value.as_f64() as f32).to_le_bytes()),
        Double => out.copy_from_slice(&value.as_f64().to_le_bytes()),
        Bool => out[0] = value.as_bool() as u8,
        other => return Err(unsupported(other)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_casts_like_cpp() {
        let mut buf = vec![0u8; 8];
        write(ScalarType::Float, &mut buf, 1, Scalar::Float(-2.75)).unwrap();
        assert_eq!(
            read(ScalarType::Float, &buf, 1).unwrap(),
            Scalar::Float(-2.75)
        );
        // float -> int truncates toward zero
        write(ScalarType::Int, &mut buf, 0, Scalar::Float(-2.75)).unwrap();
        assert_eq!(read(ScalarType::Int, &buf, 0).unwrap(), Scalar::Int(-2));
        write(ScalarType::Bool, &mut buf, 3, Scalar::Float(0.5)).unwrap();
        assert_eq!(read(ScalarType::Bool, &buf, 3).unwrap(), Scalar::Bool(true));
        // bf16 of 1.0 is 0x3F80
        write(ScalarType::BFloat16, &mut buf, 0, Scalar::Int(1)).unwrap();
        assert_eq!(&buf[0..2], &[0x80, 0x3F]);
        assert!(
            read(ScalarType::Long, &buf, 1).is_err(),
            "out of bounds must be an error"
        );
    }
}
