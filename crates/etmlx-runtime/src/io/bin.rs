//! The `.bin` tensor list of ExecuTorch's MLX op tests (`input.bin`, `expected_output.bin`):
//! `u32 count`, then per tensor `u32 dtype code, u32 ndim, ndim x i32 sizes, raw row-major data`,
//! little-endian.

use etmlx_pte::ScalarType;

use super::TensorFileError;
use crate::method::HostTensor;

const FORMAT: &str = ".bin";
/// More tensors than any op test has; guards allocation on corrupt counts.
pub const MAX_TENSORS: u32 = 4096;
pub const MAX_RANK: u32 = 16;

/// The format's dtype codes.
pub fn dtype_code(dtype: ScalarType) -> Option<u32> {
    Some(match dtype {
        ScalarType::Float => 0,
        ScalarType::Half => 1,
        ScalarType::Int => 2,
        ScalarType::Long => 3,
        ScalarType::BFloat16 => 4,
        ScalarType::Bool => 5,
        ScalarType::Byte => 6,
        _ => return None,
    })
}

pub fn dtype_from_code(code: u32) -> Option<ScalarType> {
    Some(match code {
        0 => ScalarType::Float,
        1 => ScalarType::Half,
        2 => ScalarType::Int,
        3 => ScalarType::Long,
        4 => ScalarType::BFloat16,
        5 => ScalarType::Bool,
        6 => ScalarType::Byte,
        _ => return None,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TensorFileError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| TensorFileError::Malformed {
                format: FORMAT,
                offset: self.pos,
                message: format!(
                    "truncated: {what} needs {n} bytes, {} left",
                    self.bytes.len() - self.pos
                ),
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, TensorFileError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn malformed(&self, message: String) -> TensorFileError {
        TensorFileError::Malformed {
            format: FORMAT,
            offset: self.pos,
            message,
        }
    }
}

/// Parses a `.bin` tensor list.
pub fn parse(bytes: &[u8]) -> Result<Vec<HostTensor>, TensorFileError> {
    let mut r = Reader { bytes, pos: 0 };
    let count = r.u32("tensor count")?;
    if count > MAX_TENSORS {
        return Err(r.malformed(format!(
            "{count} tensors exceeds the limit of {MAX_TENSORS}"
        )));
    }
    let mut tensors = Vec::with_capacity(count as usize);
    for i in 0..count {
        let code = r.u32("dtype code")?;
        let dtype = dtype_from_code(code)
            .ok_or_else(|| r.malformed(format!("tensor {i}: unknown dtype code {code}")))?;
        let ndim = r.u32("rank")?;
        if ndim > MAX_RANK {
            return Err(r.malformed(format!("tensor {i}: rank {ndim} exceeds {MAX_RANK}")));
        }
        let mut sizes = Vec::with_capacity(ndim as usize);
        let mut numel: usize = 1;
        for _ in 0..ndim {
            let d = i32::from_le_bytes(r.take(4, "size")?.try_into().expect("4 bytes"));
            if d < 0 {
                return Err(r.malformed(format!("tensor {i}: negative size {d}")));
            }
            numel = numel
                .checked_mul(d as usize)
                .ok_or_else(|| r.malformed(format!("tensor {i}: sizes overflow")))?;
            sizes.push(d as i64);
        }
        let nbytes = numel
            .checked_mul(dtype.element_size())
            .ok_or_else(|| r.malformed(format!("tensor {i}: byte size overflows")))?;
        let data = r.take(nbytes, "tensor data")?.to_vec();
        tensors.push(HostTensor {
            dtype,
            sizes,
            bytes: data,
        });
    }
    if r.pos != bytes.len() {
        return Err(r.malformed(format!(
            "{} trailing bytes after {count} tensors",
            bytes.len() - r.pos
        )));
    }
    Ok(tensors)
}

/// Serialises tensors in the `.bin` format.
pub fn serialize(tensors: &[HostTensor]) -> Result<Vec<u8>, TensorFileError> {
    let mut out = Vec::new();
    out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    for t in tensors {
        let code = dtype_code(t.dtype).ok_or(TensorFileError::UnsupportedDtype {
            format: FORMAT,
            dtype: t.dtype,
        })?;
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&(t.sizes.len() as u32).to_le_bytes());
        for &d in &t.sizes {
            let d = i32::try_from(d).map_err(|_| TensorFileError::Malformed {
                format: FORMAT,
                offset: out.len(),
                message: format!("size {d} does not fit in i32"),
            })?;
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.bytes);
    }
    Ok(out)
}

pub fn read_file(path: &std::path::Path) -> Result<Vec<HostTensor>, TensorFileError> {
    parse(&std::fs::read(path)?)
}

pub fn write_file(path: &std::path::Path, tensors: &[HostTensor]) -> Result<(), TensorFileError> {
    std::fs::write(path, serialize(tensors)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hand_written_file() {
        // One f32 tensor of shape [2] = [1.0, -2.0], written byte by byte from the format spec.
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0];
        b.extend_from_slice(&1.0f32.to_le_bytes());
        b.extend_from_slice(&(-2.0f32).to_le_bytes());
        let t = parse(&b).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].dtype, ScalarType::Float);
        assert_eq!(t[0].sizes, vec![2]);
        assert_eq!(serialize(&t).unwrap(), b);
        for cut in 0..b.len() {
            assert!(parse(&b[..cut]).is_err(), "truncation at {cut} must fail");
        }
    }

    #[test]
    fn rejects_corrupt_headers() {
        assert!(parse(&[0xff, 0xff, 0xff, 0xff]).is_err());
        let bad_dtype = [1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse(&bad_dtype).is_err());
        let huge = [
            1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(parse(&huge).is_err());
    }
}
