"""Probe MLX's CUDA kernels for the shapes where the official op suite failed on an H100:
quantized_matmul against dequantize+matmul, and gather_mm with and without the sorted hint.
Prints one JSON line per failing case and a summary. Run on the GPU machine with mlx installed."""

import itertools
import json

import mlx.core as mx


def close(a, b, tol):
    return float(mx.max(mx.abs(a.astype(mx.float32) - b.astype(mx.float32))).item()) <= tol


def probe_qmm():
    bad = []
    for bits, group, groups_per_row, m, dtype in itertools.product(
        [2, 4, 6, 8], [32, 64, 128], [1, 2, 4], [1, 8, 32, 128], [mx.bfloat16, mx.float32]
    ):
        k = group * groups_per_row
        n = 128
        mx.random.seed(0)
        w = mx.random.normal((n, k)).astype(dtype)
        x = mx.random.normal((m, k)).astype(dtype)
        wq, scales, biases = mx.quantize(w, group_size=group, bits=bits)
        got = mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=group, bits=bits)
        ref = x.astype(mx.float32) @ mx.dequantize(wq, scales, biases, group_size=group, bits=bits).astype(mx.float32).T
        tol = 0.05 * float(mx.max(mx.abs(ref)).item()) + 1e-3
        if not close(got, ref, tol):
            bad.append(dict(op="quantized_matmul", bits=bits, group=group, k=k, m=m, dtype=str(dtype)))
    return bad


def probe_gather_mm():
    bad = []
    for dtype, m, e in itertools.product([mx.float32, mx.bfloat16], [1, 4, 16, 64], [4, 8]):
        mx.random.seed(1)
        a = mx.random.normal((m, 1, 64)).astype(dtype)
        b = mx.random.normal((e, 64, 128)).astype(dtype)
        idx = mx.sort(mx.random.randint(0, e, (m,)).astype(mx.uint32))
        try:
            ref = mx.gather_mm(a, b, rhs_indices=idx, sorted_indices=False)
            got = mx.gather_mm(a, b, rhs_indices=idx, sorted_indices=True)
            mx.eval(ref, got)
        except RuntimeError as err:
            bad.append(dict(op="gather_mm", m=m, e=e, dtype=str(dtype), error=str(err)))
            continue
        loop = mx.stack([a[i] @ b[idx[i].item()] for i in range(m)])
        if not close(ref, loop, 0.05 * float(mx.max(mx.abs(loop)).item())):
            bad.append(dict(op="gather_mm unsorted", m=m, e=e, dtype=str(dtype)))
        if not close(got, loop, 0.05 * float(mx.max(mx.abs(loop)).item())):
            bad.append(dict(op="gather_mm sorted", m=m, e=e, dtype=str(dtype)))
    return bad


if __name__ == "__main__":
    print("device", mx.default_device())
    bad = probe_qmm() + probe_gather_mm()
    for b in bad:
        print(json.dumps(b))
    print(json.dumps({"failing_cases": len(bad)}))
