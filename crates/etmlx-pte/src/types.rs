//! Small enums of the format, independent of the generated code.

use serde::Serialize;

use crate::schema::executorch_flatbuffer as fb;

/// Element type of a tensor, with ExecuTorch's numbering (`ScalarType` in the schema).
///
/// The discriminants are the wire values. Values ExecuTorch reserves but never writes
/// (8..=10 complex, 18..=21 sub-byte bit types) are not representable: reading them is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[repr(i8)]
pub enum ScalarType {
    /// uint8
    Byte = 0,
    /// int8
    Char = 1,
    /// int16
    Short = 2,
    /// int32
    Int = 3,
    /// int64
    Long = 4,
    /// IEEE float16
    Half = 5,
    /// float32
    Float = 6,
    /// float64
    Double = 7,
    /// bool stored as one byte
    Bool = 11,
    /// quantized int8
    QInt8 = 12,
    /// quantized uint8
    QUInt8 = 13,
    /// quantized int32
    QInt32 = 14,
    /// bfloat16
    BFloat16 = 15,
    /// two 4-bit values per byte
    QUInt4x2 = 16,
    /// four 2-bit values per byte
    QUInt2x4 = 17,
    /// 16 opaque bits
    Bits16 = 22,
    /// float8 e5m2
    Float8E5M2 = 23,
    /// float8 e4m3fn
    Float8E4M3FN = 24,
    /// float8 e5m2fnuz
    Float8E5M2FNUZ = 25,
    /// float8 e4m3fnuz
    Float8E4M3FNUZ = 26,
    /// uint16
    UInt16 = 27,
    /// uint32
    UInt32 = 28,
    /// uint64
    UInt64 = 29,
}

impl ScalarType {
    /// Every variant, in wire-value order.
    pub const ALL: [ScalarType; 23] = [
        Self::Byte,
        Self::Char,
        Self::Short,
        Self::Int,
        Self::Long,
        Self::Half,
        Self::Float,
        Self::Double,
        Self::Bool,
        Self::QInt8,
        Self::QUInt8,
        Self::QInt32,
        Self::BFloat16,
        Self::QUInt4x2,
        Self::QUInt2x4,
        Self::Bits16,
        Self::Float8E5M2,
        Self::Float8E4M3FN,
        Self::Float8E5M2FNUZ,
        Self::Float8E4M3FNUZ,
        Self::UInt16,
        Self::UInt32,
        Self::UInt64,
    ];

    /// The wire value of this type.
    pub fn to_i8(self) -> i8 {
        self as i8
    }

    /// The type with this wire value, or `None` for values ExecuTorch does not define.
    pub fn from_i8(value: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.to_i8() == value)
    }

    /// Bytes per stored element. Packed sub-byte types (`QUInt4x2`, `QUInt2x4`) count one byte
    /// per stored element, as ExecuTorch does.
    pub fn element_size(self) -> usize {
        match self {
            Self::Byte
            | Self::Char
            | Self::Bool
            | Self::QInt8
            | Self::QUInt8
            | Self::QUInt4x2
            | Self::QUInt2x4
            | Self::Float8E5M2
            | Self::Float8E4M3FN
            | Self::Float8E5M2FNUZ
            | Self::Float8E4M3FNUZ => 1,
            Self::Short | Self::Half | Self::BFloat16 | Self::Bits16 | Self::UInt16 => 2,
            Self::Int | Self::Float | Self::QInt32 | Self::UInt32 => 4,
            Self::Long | Self::Double | Self::UInt64 => 8,
        }
    }

    /// The PyTorch (c10) name of the type, e.g. `"Float"`, `"BFloat16"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Byte => "Byte",
            Self::Char => "Char",
            Self::Short => "Short",
            Self::Int => "Int",
            Self::Long => "Long",
            Self::Half => "Half",
            Self::Float => "Float",
            Self::Double => "Double",
            Self::Bool => "Bool",
            Self::QInt8 => "QInt8",
            Self::QUInt8 => "QUInt8",
            Self::QInt32 => "QInt32",
            Self::BFloat16 => "BFloat16",
            Self::QUInt4x2 => "QUInt4x2",
            Self::QUInt2x4 => "QUInt2x4",
            Self::Bits16 => "Bits16",
            Self::Float8E5M2 => "Float8_e5m2",
            Self::Float8E4M3FN => "Float8_e4m3fn",
            Self::Float8E5M2FNUZ => "Float8_e5m2fnuz",
            Self::Float8E4M3FNUZ => "Float8_e4m3fnuz",
            Self::UInt16 => "UInt16",
            Self::UInt32 => "UInt32",
            Self::UInt64 => "UInt64",
        }
    }
}

impl std::fmt::Display for ScalarType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<i8> for ScalarType {
    type Error = i8;

    /// Fails with the raw value when ExecuTorch defines no type for it.
    fn try_from(value: i8) -> Result<Self, i8> {
        Self::from_i8(value).ok_or(value)
    }
}

impl From<fb::ScalarType> for ScalarType {
    fn from(value: fb::ScalarType) -> Self {
        match value {
            fb::ScalarType::Byte => Self::Byte,
            fb::ScalarType::Char => Self::Char,
            fb::ScalarType::Short => Self::Short,
            fb::ScalarType::Int => Self::Int,
            fb::ScalarType::Long => Self::Long,
            fb::ScalarType::Half => Self::Half,
            fb::ScalarType::Float => Self::Float,
            fb::ScalarType::Double => Self::Double,
            fb::ScalarType::Bool => Self::Bool,
            fb::ScalarType::Qint8 => Self::QInt8,
            fb::ScalarType::Quint8 => Self::QUInt8,
            fb::ScalarType::Qint32 => Self::QInt32,
            fb::ScalarType::Bfloat16 => Self::BFloat16,
            fb::ScalarType::Quint4x2 => Self::QUInt4x2,
            fb::ScalarType::Quint2x4 => Self::QUInt2x4,
            fb::ScalarType::Bits16 => Self::Bits16,
            fb::ScalarType::Float8e5m2 => Self::Float8E5M2,
            fb::ScalarType::Float8e4m3fn => Self::Float8E4M3FN,
            fb::ScalarType::Float8e5m2fnuz => Self::Float8E5M2FNUZ,
            fb::ScalarType::Float8e4m3fnuz => Self::Float8E4M3FNUZ,
            fb::ScalarType::Uint16 => Self::UInt16,
            fb::ScalarType::Uint32 => Self::UInt32,
            fb::ScalarType::Uint64 => Self::UInt64,
        }
    }
}

/// How a tensor's `sizes` are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ShapeDynamism {
    /// `sizes` is the exact shape.
    Static,
    /// `sizes` is an upper bound; storage is planned for the bound and the tensor may shrink.
    DynamicBound,
    /// `sizes` carries no meaning; storage is not planned by size.
    DynamicUnbound,
}

impl From<fb::TensorShapeDynamism> for ShapeDynamism {
    fn from(value: fb::TensorShapeDynamism) -> Self {
        match value {
            fb::TensorShapeDynamism::Static => Self::Static,
            fb::TensorShapeDynamism::DynamicBound => Self::DynamicBound,
            fb::TensorShapeDynamism::DynamicUnbound => Self::DynamicUnbound,
        }
    }
}

/// Where a tensor's stored bytes live (`ExtraTensorInfo.location`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TensorDataLocation {
    /// In a segment of the `.pte`.
    Segment,
    /// In an external data file (`.ptd`), looked up by fully qualified name.
    External,
}

impl From<fb::TensorDataLocation> for TensorDataLocation {
    fn from(value: fb::TensorDataLocation) -> Self {
        match value {
            fb::TensorDataLocation::Segment => Self::Segment,
            fb::TensorDataLocation::External => Self::External,
        }
    }
}

/// Where a delegate's payload is stored (`BackendDelegateDataReference.location`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DataLocation {
    /// Inside the FlatBuffer, in `Program.backend_delegate_data[index]`.
    Inline,
    /// In `Program.segments[index]`, after the FlatBuffer.
    Segment,
}

impl From<fb::DataLocation> for DataLocation {
    fn from(value: fb::DataLocation) -> Self {
        match value {
            fb::DataLocation::Inline => Self::Inline,
            fb::DataLocation::Segment => Self::Segment,
        }
    }
}
