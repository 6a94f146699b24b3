"""Reader/writer for the official op-test `.bin` tensor files. Pure standard library, so the
conformance `run`/`check` steps work on a machine with neither torch nor numpy.

Layout (little-endian, as every supported host writes it):
  u32 count, then per tensor: u32 dtype code, u32 ndim, ndim x i32 dims, raw contiguous data.
bf16 is stored as its raw 16 bits.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple, Union

# dtype code -> (name, element size, struct format char for one element)
CODES = {
    0: ("float32", 4, "f"),
    1: ("float16", 2, "e"),
    2: ("int32", 4, "i"),
    3: ("int64", 8, "q"),
    4: ("bfloat16", 2, "H"),  # raw bits
    5: ("bool", 1, "?"),
    6: ("uint8", 1, "B"),
}
NAME_TO_CODE = {name: code for code, (name, _, _) in CODES.items()}
FLOAT_NAMES = ("float32", "float16", "bfloat16")

# Refuse absurd headers instead of allocating gigabytes from a corrupt file.
MAX_TENSORS = 4096
MAX_NDIM = 16


class BinFormatError(ValueError):
    pass


@dataclass
class BinTensor:
    dtype: str  # a CODES name
    shape: Tuple[int, ...]
    raw: bytes  # contiguous little-endian element bytes

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def values(self) -> list:
        """Elements as Python numbers (bf16/f16 widened exactly; bool as bool)."""
        name, size, fmt = CODES[NAME_TO_CODE[self.dtype]]
        if self.dtype == "bfloat16":
            bits = _native(array("H", self.raw))
            wide = array("I", (b << 16 for b in bits))
            return list(_native(array("f", wide.tobytes())))
        return list(struct.unpack(f"<{self.numel}{fmt}", self.raw))

    def as_float32(self) -> list:
        """Values rounded to float32 (what `tensor.float()` gives)."""
        vals = self.values()
        if self.dtype in FLOAT_NAMES:
            return vals
        return list(array("f", (float(v) for v in vals)))


def _native(a: array) -> array:
    if sys.byteorder != "little":
        a.byteswap()
    return a


def read_bin(path: Union[str, Path]) -> List[BinTensor]:
    return parse_bin(Path(path).read_bytes(), str(path))


def parse_bin(raw: bytes, what: str = "<bytes>") -> List[BinTensor]:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(raw):
            raise BinFormatError(f"{what}: truncated at byte {pos} (need {n}, have {len(raw) - pos})")
        chunk = raw[pos : pos + n]
        pos += n
        return chunk

    (count,) = struct.unpack("<I", take(4))
    if count > MAX_TENSORS:
        raise BinFormatError(f"{what}: tensor count {count} exceeds {MAX_TENSORS}")
    out = []
    for i in range(count):
        code, ndim = struct.unpack("<II", take(8))
        if code not in CODES:
            raise BinFormatError(f"{what}: tensor {i} has unknown dtype code {code}")
        if ndim > MAX_NDIM:
            raise BinFormatError(f"{what}: tensor {i} ndim {ndim} exceeds {MAX_NDIM}")
        dims = struct.unpack(f"<{ndim}i", take(4 * ndim))
        if any(d < 0 for d in dims):
            raise BinFormatError(f"{what}: tensor {i} has a negative dim {list(dims)}")
        name, size, _ = CODES[code]
        out.append(BinTensor(name, tuple(dims), take(math.prod(dims) * size)))
    if pos != len(raw):
        raise BinFormatError(f"{what}: {len(raw) - pos} trailing bytes after {count} tensors")
    return out


def write_bin(tensors: Sequence[BinTensor], path: Union[str, Path]) -> None:
    buf = bytearray(struct.pack("<I", len(tensors)))
    for t in tensors:
        code = NAME_TO_CODE[t.dtype]
        if len(t.raw) != t.numel * CODES[code][1]:
            raise BinFormatError(f"{t.dtype}{list(t.shape)}: {len(t.raw)} data bytes")
        buf += struct.pack(f"<II{len(t.shape)}i", code, len(t.shape), *t.shape)
        buf += t.raw
    Path(path).write_bytes(bytes(buf))


def from_torch(tensor) -> BinTensor:
    """Convert a torch tensor (torch is only imported by callers that have it)."""
    import torch

    t = tensor.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return BinTensor("bfloat16", tuple(t.shape), t.view(torch.uint16).numpy().tobytes())
    name = str(t.dtype).replace("torch.", "")
    if name not in NAME_TO_CODE:
        raise BinFormatError(f"dtype {t.dtype} cannot be stored in a .bin file")
    return BinTensor(name, tuple(t.shape), t.numpy().tobytes())


def _close(e: float, a: float, rtol: float, atol: float) -> bool:
    if e == a:  # also equal infinities
        return True
    if math.isnan(e) or math.isnan(a):
        return False
    return abs(e - a) <= atol + rtol * abs(a)


def compare(expected: List[BinTensor], actual: List[BinTensor], rtol: float, atol: float):
    """The official suite's rules (test_utils.compare_outputs).

    Returns (passed, message, max_abs_err). Count and shapes must match; differing dtypes are
    compared as float32; bool must be equal; else allclose(expected, actual): |e - a| <=
    atol + rtol * |a|, NaN never close. Arithmetic is done in float64 (torch does it in the
    tensor dtype), which can only differ at the last bit of the tolerance.
    """
    if len(expected) != len(actual):
        return False, f"output count mismatch: expected {len(expected)}, got {len(actual)}", None
    worst = 0.0  # largest finite |e - a|; NaN/inf mismatches are reported by the count
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e.shape != a.shape:
            return False, f"output {i} shape mismatch: expected {list(e.shape)}, got {list(a.shape)}", None
        if e.dtype != a.dtype:
            ev, av, kind = e.as_float32(), a.as_float32(), f"{e.dtype} vs {a.dtype}, as float32"
        else:
            ev, av, kind = e.values(), a.values(), e.dtype
            if e.dtype == "bool":
                diff = sum(1 for x, y in zip(ev, av) if x != y)
                if diff:
                    return False, f"output {i} (bool): {diff}/{len(ev)} elements differ", 1.0
                continue
        bad = 0
        for x, y in zip(ev, av):
            if not _close(x, y, rtol, atol):
                bad += 1
            if x != y:
                d = abs(x - y)
                if d > worst and not math.isinf(d):
                    worst = d
        if bad:
            return (
                False,
                f"output {i} ({kind}): {bad}/{len(ev)} elements not close, max_abs_err={worst:.6e} "
                f"rtol={rtol} atol={atol} expected[:5]={ev[:5]} actual[:5]={av[:5]}",
                worst,
            )
    return True, "all outputs match", worst
