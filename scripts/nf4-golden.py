# Writes test/golden/nf4-bnb.json: NF4 codes, absmax and double-quantized absmax of a deterministic
# matrix, computed by bitsandbytes' own pure-torch kernels (bitsandbytes/backends/default/ops.py at
# 95f9af309d4d5793847169c39288dcd3fcbdf564: quantize_4bit, quantize_blockwise, dequantize_blockwise,
# copied below unchanged but for the decorators) and functional.py's quantize_4bit(compress_statistics=True)
# and dequantize_4bit glue. Only torch and numpy are needed: `python3 scripts/nf4-golden.py`.
#
# The input is built from integer arithmetic that TypeScript repeats exactly (test/quant/nf4.test.ts),
# so the file holds only outputs.
import base64
import importlib.util
import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("dm", os.path.join(HERE, "nf4-dynamic-map.py"))
dm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dm)

NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0], dtype=torch.float32)


# --- backends/default/ops.py (verbatim bodies) ---
def quantize_blockwise(A, code, blocksize):
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2  # code is always sorted (same assumption as CUDA kernel)
    q = torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8)
    return q.reshape(A.shape), absmax


def dequantize_blockwise(A_flat, absmax, code, blocksize, dtype):
    n = A_flat.numel()
    out = code[A_flat.to(torch.int64)]
    rem = n % blocksize
    if rem == 0:
        out = (out.reshape(-1, blocksize) * absmax.view(-1, 1)).reshape(n)
    else:
        full = n - rem
        blocks = full // blocksize
        out = torch.cat(
            [
                (out[:full].reshape(blocks, blocksize) * absmax[:blocks].view(-1, 1)).reshape(full),
                out[full:] * absmax[blocks],
            ]
        )
    return out.to(dtype)


def quantize_4bit(A, blocksize):
    code = NF4
    midpoints = (code[:-1] + code[1:]) / 2
    bounds = midpoints
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    if scaled.numel() % 2:
        scaled = torch.nn.functional.pad(scaled, (0, 1))
    q = torch.bucketize(scaled, bounds, out_int32=True)
    q8 = q.to(torch.uint8)
    packed = ((q8[::2] << 4) | q8[1::2]).unsqueeze(1)
    return packed, absmax


def dequantize_4bit(A_flat, absmax, blocksize, n):
    out_dq = torch.empty(A_flat.size(0) * 2, dtype=torch.int32)
    out_dq[1::2] = A_flat & 0xF
    out_dq[::2] = A_flat >> 4
    out_dq = NF4[out_dq][:n]
    return (out_dq.view(-1, blocksize) * absmax.view(-1, 1)).reshape(n)


# --- the input: TypeScript builds the same values (test/quant/nf4.test.ts goldenInput) ---
ROWS, COLS = 160, 128  # 20480 weights, 320 blocks of 64: two blocks of 256 for the double quantization


def golden_input():
    f = np.float32
    w = np.empty(ROWS * COLS, dtype=f)
    for i in range(ROWS * COLS):
        h = (i * 2654435761 + 12345) & 0xFFFFFFFF
        v = f(((h >> 8) / 2**24 - 0.5) * 2)
        s = f(2.0 ** -((i // 64) % 5))
        w[i] = f(f(f(v * v) * v) * s)
    for b in range(0, ROWS * COLS // 64, 7):
        w[b * 64 + 3] = 0
    w[64 * 11 : 64 * 12] = 0  # an all-zero block
    return torch.from_numpy(w)


def b64(t):
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode()


if __name__ == "__main__":
    code = dm.create_dynamic_map()
    A = golden_input()
    packed, absmax = quantize_4bit(A, 64)
    Q = dequantize_4bit(packed.reshape(-1), absmax, 64, A.numel())
    offset = absmax.mean()
    qabsmax, absmax2 = quantize_blockwise(absmax - offset, code, 256)
    absmax_dq = dequantize_blockwise(qabsmax, absmax2, code, 256, torch.float32)
    absmax_dq += offset
    out = {
        "generator": "scripts/nf4-golden.py (bitsandbytes 95f9af30 backends/default/ops.py kernels)",
        "torch": torch.__version__,
        "rows": ROWS, "cols": COLS,
        "codes": b64(packed.reshape(-1)),
        "absmax": b64(absmax),
        "Q256": b64(Q[:256]),  # the first two rows' dequantized weights
        "offset": b64(offset.reshape(1)),
        "absmaxCodes": b64(qabsmax),
        "absmax2": b64(absmax2),
        "absmaxDq": b64(absmax_dq),
    }
    json.dump(out, open(os.path.join(HERE, "..", "test", "golden", "nf4-bnb.json"), "w"), indent=1)
    print("wrote test/golden/nf4-bnb.json", {k: len(v) if isinstance(v, str) else v for k, v in out.items()})
