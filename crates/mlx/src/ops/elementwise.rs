use mlx_sys::{binary as bin, unary as un};

use crate::array::Array;
use crate::device::Stream;
use crate::dtype::Dtype;
use crate::error::Result;
use crate::ops::optional_ptr;

/// One-input element-wise ops ([`unary`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Abs,
    Negative,
    Sign,
    Floor,
    Ceil,
    /// Round toward zero (MLX `trunc`).
    Trunc,
    Square,
    Sqrt,
    Rsqrt,
    Reciprocal,
    Exp,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Arcsinh,
    Arccosh,
    Arctanh,
    Erf,
    Sigmoid,
    LogicalNot,
    BitwiseInvert,
}

impl UnaryOp {
    fn code(self) -> i32 {
        match self {
            UnaryOp::Abs => un::ABS,
            UnaryOp::Negative => un::NEGATIVE,
            UnaryOp::Sign => un::SIGN,
            UnaryOp::Floor => un::FLOOR,
            UnaryOp::Ceil => un::CEIL,
            UnaryOp::Trunc => un::TRUNC,
            UnaryOp::Square => un::SQUARE,
            UnaryOp::Sqrt => un::SQRT,
            UnaryOp::Rsqrt => un::RSQRT,
            UnaryOp::Reciprocal => un::RECIPROCAL,
            UnaryOp::Exp => un::EXP,
            UnaryOp::Expm1 => un::EXPM1,
            UnaryOp::Log => un::LOG,
            UnaryOp::Log2 => un::LOG2,
            UnaryOp::Log10 => un::LOG10,
            UnaryOp::Log1p => un::LOG1P,
            UnaryOp::Sin => un::SIN,
            UnaryOp::Cos => un::COS,
            UnaryOp::Tan => un::TAN,
            UnaryOp::Arcsin => un::ARCSIN,
            UnaryOp::Arccos => un::ARCCOS,
            UnaryOp::Arctan => un::ARCTAN,
            UnaryOp::Sinh => un::SINH,
            UnaryOp::Cosh => un::COSH,
            UnaryOp::Tanh => un::TANH,
            UnaryOp::Arcsinh => un::ARCSINH,
            UnaryOp::Arccosh => un::ARCCOSH,
            UnaryOp::Arctanh => un::ARCTANH,
            UnaryOp::Erf => un::ERF,
            UnaryOp::Sigmoid => un::SIGMOID,
            UnaryOp::LogicalNot => un::LOGICAL_NOT,
            UnaryOp::BitwiseInvert => un::BITWISE_INVERT,
        }
    }
}

/// Two-input element-wise ops with NumPy broadcasting ([`binary`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    /// True division (integer inputs promote to float).
    Divide,
    /// `floor(a / b)`; for integer inputs MLX 0.32 also floors (Python `//`), tested on CPU.
    FloorDivide,
    /// Remainder with the sign of the divisor (Python `%`).
    Remainder,
    Power,
    Maximum,
    Minimum,
    Arctan2,
    LogAddExp,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    LogicalAnd,
    LogicalOr,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

impl BinaryOp {
    fn code(self) -> i32 {
        match self {
            BinaryOp::Add => bin::ADD,
            BinaryOp::Subtract => bin::SUBTRACT,
            BinaryOp::Multiply => bin::MULTIPLY,
            BinaryOp::Divide => bin::DIVIDE,
            BinaryOp::FloorDivide => bin::FLOOR_DIVIDE,
            BinaryOp::Remainder => bin::REMAINDER,
            BinaryOp::Power => bin::POWER,
            BinaryOp::Maximum => bin::MAXIMUM,
            BinaryOp::Minimum => bin::MINIMUM,
            BinaryOp::Arctan2 => bin::ARCTAN2,
            BinaryOp::LogAddExp => bin::LOGADDEXP,
            BinaryOp::Equal => bin::EQUAL,
            BinaryOp::NotEqual => bin::NOT_EQUAL,
            BinaryOp::Less => bin::LESS,
            BinaryOp::LessEqual => bin::LESS_EQUAL,
            BinaryOp::Greater => bin::GREATER,
            BinaryOp::GreaterEqual => bin::GREATER_EQUAL,
            BinaryOp::LogicalAnd => bin::LOGICAL_AND,
            BinaryOp::LogicalOr => bin::LOGICAL_OR,
            BinaryOp::BitwiseAnd => bin::BITWISE_AND,
            BinaryOp::BitwiseOr => bin::BITWISE_OR,
            BinaryOp::BitwiseXor => bin::BITWISE_XOR,
        }
    }
}

pub fn unary(op: UnaryOp, x: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call; out-pointer supplied by `produce`.
    Array::produce("unary", |out| unsafe {
        mlx_sys::etm_unary(op.code(), x.as_ptr(), s.raw(), out)
    })
    .map_err(|e| e.with_detail(op))
}

pub fn binary(op: BinaryOp, a: &Array, b: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("binary", |out| unsafe {
        mlx_sys::etm_binary(op.code(), a.as_ptr(), b.as_ptr(), s.raw(), out)
    })
    .map_err(|e| e.with_detail(op))
}

/// `x * sigmoid(x)` as one fused kernel (`mx::compile`): one MLX node instead of two.
pub fn compiled_silu(x: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("compiled_silu", |out| unsafe {
        mlx_sys::etm_compiled_silu(x.as_ptr(), s.raw(), out)
    })
}

/// `silu(gate) * up` as one fused kernel (`mx::compile`): one MLX node instead of three.
pub fn compiled_swiglu(gate: &Array, up: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("compiled_swiglu", |out| unsafe {
        mlx_sys::etm_compiled_swiglu(gate.as_ptr(), up.as_ptr(), s.raw(), out)
    })
}

/// Rounds half to even at `decimals` decimal places.
pub fn round(x: &Array, decimals: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("round", |out| unsafe {
        mlx_sys::etm_round(x.as_ptr(), decimals, s.raw(), out)
    })
}

/// `cond ? x : y`, broadcasting all three.
pub fn where_(cond: &Array, x: &Array, y: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("where", |out| unsafe {
        mlx_sys::etm_where(cond.as_ptr(), x.as_ptr(), y.as_ptr(), s.raw(), out)
    })
}

/// Clamps to `[a_min, a_max]`; a `None` bound leaves that side open (MLX needs at least one).
pub fn clip(x: &Array, a_min: Option<&Array>, a_max: Option<&Array>, s: Stream) -> Result<Array> {
    // SAFETY: valid (or null) handles borrowed for the call.
    Array::produce("clip", |out| unsafe {
        mlx_sys::etm_clip(
            x.as_ptr(),
            optional_ptr(a_min),
            optional_ptr(a_max),
            s.raw(),
            out,
        )
    })
}

pub fn astype(x: &Array, dtype: Dtype, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("astype", |out| unsafe {
        mlx_sys::etm_astype(x.as_ptr(), dtype.code(), s.raw(), out)
    })
}
