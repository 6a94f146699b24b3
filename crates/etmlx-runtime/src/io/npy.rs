//! NumPy `.npy` files (format versions 1.0-3.0, little-endian or byte-sized dtypes, C order).
//!
//! Hand-written because the format is tiny (a magic, a Python-literal header, raw data) and the
//! `npyz`/`ndarray-npy` crates would pull in a generic array stack we do not use.

use etmlx_pte::ScalarType;

use super::TensorFileError;
use crate::method::HostTensor;

const FORMAT: &str = ".npy";
const MAGIC: &[u8] = b"\x93NUMPY";
const MAX_HEADER: usize = 1 << 20;

fn malformed(offset: usize, message: impl Into<String>) -> TensorFileError {
    TensorFileError::Malformed {
        format: FORMAT,
        offset,
        message: message.into(),
    }
}

/// The `.npy` descr of a dtype. bfloat16 has no NumPy type and is written as float32 by callers.
pub fn descr(dtype: ScalarType) -> Option<&'static str> {
    Some(match dtype {
        ScalarType::Float => "<f4",
        ScalarType::Double => "<f8",
        ScalarType::Half => "<f2",
        ScalarType::Int => "<i4",
        ScalarType::Long => "<i8",
        ScalarType::Short => "<i2",
        ScalarType::Char => "|i1",
        ScalarType::Byte => "|u1",
        ScalarType::Bool => "|b1",
        ScalarType::UInt16 => "<u2",
        ScalarType::UInt32 => "<u4",
        ScalarType::UInt64 => "<u8",
        _ => return None,
    })
}

fn dtype_from_descr(d: &str) -> Option<ScalarType> {
    let d = d.replace('=', "<");
    Some(match d.as_str() {
        "<f4" => ScalarType::Float,
        "<f8" => ScalarType::Double,
        "<f2" => ScalarType::Half,
        "<i4" => ScalarType::Int,
        "<i8" => ScalarType::Long,
        "<i2" => ScalarType::Short,
        "|i1" | "<i1" => ScalarType::Char,
        "|u1" | "<u1" => ScalarType::Byte,
        "|b1" | "<b1" => ScalarType::Bool,
        "<u2" => ScalarType::UInt16,
        "<u4" => ScalarType::UInt32,
        "<u8" => ScalarType::UInt64,
        _ => return None,
    })
}

/// Parses one `.npy` array.
pub fn parse(bytes: &[u8]) -> Result<HostTensor, TensorFileError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(malformed(0, "missing the \\x93NUMPY magic"));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let b = bytes
                .get(8..12)
                .ok_or_else(|| malformed(8, "truncated header length"))?;
            (
                u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize,
                12,
            )
        }
        v => return Err(malformed(6, format!("unsupported format version {v}"))),
    };
    if header_len > MAX_HEADER {
        return Err(malformed(
            8,
            format!("header of {header_len} bytes is too large"),
        ));
    }
    let header = bytes
        .get(header_start..header_start + header_len)
        .ok_or_else(|| malformed(header_start, "truncated header"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| malformed(header_start, "header is not UTF-8"))?;
    let descr = dict_value(header, "descr")
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .ok_or_else(|| malformed(header_start, "header has no 'descr'"))?;
    let dtype = dtype_from_descr(&descr)
        .ok_or_else(|| malformed(header_start, format!("unsupported dtype '{descr}'")))?;
    if dict_value(header, "fortran_order").map(|v| v.trim().starts_with("True")) == Some(true) {
        return Err(malformed(
            header_start,
            "Fortran-order arrays are not supported; save with C order",
        ));
    }
    let shape = dict_value(header, "shape")
        .ok_or_else(|| malformed(header_start, "header has no 'shape'"))?;
    let shape = shape.trim().trim_start_matches('(');
    let shape = &shape[..shape
        .find(')')
        .ok_or_else(|| malformed(header_start, "unterminated shape"))?];
    let sizes: Vec<i64> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().ok().filter(|&d| d >= 0))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed(header_start, format!("bad shape '({shape})'")))?;
    let numel = sizes
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
        .ok_or_else(|| malformed(header_start, "shape overflows"))?;
    let nbytes = numel
        .checked_mul(dtype.element_size())
        .ok_or_else(|| malformed(header_start, "shape overflows"))?;
    let data_start = header_start + header_len;
    let data = bytes.get(data_start..data_start + nbytes).ok_or_else(|| {
        malformed(
            data_start,
            format!("expected {nbytes} data bytes, file is shorter"),
        )
    })?;
    Ok(HostTensor {
        dtype,
        sizes,
        bytes: data.to_vec(),
    })
}

/// The text after `'key':` up to the next top-level comma (shape tuples keep their commas).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

/// Serialises a tensor as `.npy` version 1.0.
pub fn serialize(t: &HostTensor) -> Result<Vec<u8>, TensorFileError> {
    let descr = descr(t.dtype).ok_or(TensorFileError::UnsupportedDtype {
        format: FORMAT,
        dtype: t.dtype,
    })?;
    let shape = match t.sizes.len() {
        1 => format!("({},)", t.sizes[0]),
        _ => format!(
            "({})",
            t.sizes
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_written_header() {
        // Header exactly as numpy 2.x writes np.array([[1, 2, 3]], dtype=np.int32).
        let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }";
        let mut h = header.to_string();
        // numpy pads with spaces so that magic + length + header + '\n' is a multiple of 64.
        h.push_str(&" ".repeat(128 - 10 - header.len() - 1));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in [1i32, 2, 3] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let t = parse(&b).unwrap();
        assert_eq!((t.dtype, t.sizes.clone()), (ScalarType::Int, vec![1, 3]));
        assert_eq!(
            serialize(&t).unwrap(),
            b,
            "our writer matches numpy's layout byte for byte"
        );
        for cut in 0..b.len() {
            assert!(parse(&b[..cut]).is_err());
        }
    }

    #[test]
    fn scalar_and_vector_shapes() {
        for sizes in [vec![], vec![4]] {
            let n: i64 = sizes.iter().product();
            let t = HostTensor {
                dtype: ScalarType::Float,
                sizes,
                bytes: vec![0; 4 * n as usize],
            };
            assert_eq!(parse(&serialize(&t).unwrap()).unwrap(), t);
        }
    }
}
