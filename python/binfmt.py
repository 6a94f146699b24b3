"""Reader/writer for the official op-test `.bin` tensor files (numpy only, no torch).

Layout (little-endian, as every supported host writes it):
  u32 count, then per tensor: u32 dtype code, u32 ndim, ndim x i32 dims, raw contiguous data.
bf16 has no numpy dtype: it is kept as raw uint16 and tagged with its code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np

# dtype code -> (name, numpy storage dtype)
CODES = {
    0: ("float32", np.dtype("<f4")),
    1: ("float16", np.dtype("<f2")),
    2: ("int32", np.dtype("<i4")),
    3: ("int64", np.dtype("<i8")),
    4: ("bfloat16", np.dtype("<u2")),  # raw bits
    5: ("bool", np.dtype("bool")),
    6: ("uint8", np.dtype("u1")),
}
NAME_TO_CODE = {name: code for code, (name, _) in CODES.items()}

# Refuse absurd headers instead of allocating gigabytes from a corrupt file.
MAX_TENSORS = 4096
MAX_NDIM = 16


class BinFormatError(ValueError):
    pass


@dataclass
class BinTensor:
    dtype: str  # one of CODES names
    data: np.ndarray  # storage array (bf16 as uint16 bits)

    @property
    def shape(self):
        return tuple(self.data.shape)

    def as_float32(self) -> np.ndarray:
        """Values widened to float32 (bf16 bits shifted into the high half)."""
        if self.dtype == "bfloat16":
            return (self.data.astype(np.uint32) << 16).view(np.float32)
        return self.data.astype(np.float32)

    def as_float64(self) -> np.ndarray:
        return self.as_float32().astype(np.float64) if self.dtype in ("bfloat16", "float16", "float32") else self.data.astype(np.float64)


def read_bin(path: Union[str, Path]) -> List[BinTensor]:
    raw = Path(path).read_bytes()
    return parse_bin(raw, str(path))


def parse_bin(raw: bytes, what: str = "<bytes>") -> List[BinTensor]:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise BinFormatError(f"{what}: truncated at byte {pos} (need {n} more, have {len(raw) - pos})")
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
            raise BinFormatError(f"{what}: tensor {i} has a negative dim {dims}")
        name, np_dtype = CODES[code]
        numel = int(np.prod(dims, dtype=np.int64)) if ndim else 1
        data = np.frombuffer(take(numel * np_dtype.itemsize), dtype=np_dtype).reshape(dims).copy()
        out.append(BinTensor(name, data))
    if pos != len(raw):
        raise BinFormatError(f"{what}: {len(raw) - pos} trailing bytes after {count} tensors")
    return out


def write_bin(tensors: Sequence[BinTensor], path: Union[str, Path]) -> None:
    buf = bytearray(struct.pack("<I", len(tensors)))
    for t in tensors:
        code = NAME_TO_CODE[t.dtype]
        arr = np.ascontiguousarray(t.data, dtype=CODES[code][1])
        buf += struct.pack("<II", code, arr.ndim)
        buf += struct.pack(f"<{arr.ndim}i", *arr.shape)
        buf += arr.tobytes()
    Path(path).write_bytes(bytes(buf))


def from_torch(tensor) -> BinTensor:
    """Convert a torch tensor (only imported by callers that have torch)."""
    import torch

    t = tensor.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return BinTensor("bfloat16", t.view(torch.uint16).numpy().copy())
    name = str(t.dtype).replace("torch.", "")
    if name not in NAME_TO_CODE:
        raise BinFormatError(f"dtype {t.dtype} cannot be stored in a .bin file")
    return BinTensor(name, t.numpy().copy())


def compare(expected: List[BinTensor], actual: List[BinTensor], rtol: float, atol: float):
    """The official suite's rules (test_utils.compare_outputs).

    Returns (passed, message, max_abs_err). Count and shapes must match; differing dtypes are
    compared as float32; bool must be equal; else allclose(expected, actual, rtol, atol)
    (|e - a| <= atol + rtol * |a|, NaN never close).
    """
    if len(expected) != len(actual):
        return False, f"output count mismatch: expected {len(expected)}, got {len(actual)}", None
    worst = 0.0
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e.shape != a.shape:
            return False, f"output {i} shape mismatch: expected {list(e.shape)}, got {list(a.shape)}", None
        if e.dtype != a.dtype:
            ev, av, kind = e.as_float32(), a.as_float32(), "float32"
        elif e.dtype == "bool":
            diff = int(np.count_nonzero(e.data != a.data))
            if diff:
                return False, f"output {i} (bool): {diff}/{e.data.size} elements differ", 1.0
            continue
        elif e.dtype in ("float32", "float16", "bfloat16"):
            ev, av, kind = e.as_float32(), a.as_float32(), e.dtype
        else:
            ev, av, kind = e.data.astype(np.float64), a.data.astype(np.float64), e.dtype
        if ev.size:
            with np.errstate(invalid="ignore", over="ignore"):
                d = np.abs(ev.astype(np.float64) - av.astype(np.float64))
            finite = d[np.isfinite(d)]
            err = float(finite.max()) if finite.size else 0.0
            if np.isnan(d).any() and not np.isnan(ev).all():
                err = float("nan")
            worst = max(worst, err) if not np.isnan(err) else err
        if not np.allclose(ev, av, rtol=rtol, atol=atol, equal_nan=False):
            return (
                False,
                f"output {i} ({kind}) not close: max_abs_err={worst:.6e} rtol={rtol} atol={atol} "
                f"expected[:5]={ev.ravel()[:5].tolist()} actual[:5]={av.ravel()[:5].tolist()}",
                worst,
            )
    return True, "all outputs match", worst
