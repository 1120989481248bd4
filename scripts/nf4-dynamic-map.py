# Prints bitsandbytes' signed 8-bit dynamic map, the 256 float32 values of
# bitsandbytes/functional.py create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8),
# in the shortest decimal form that reads back as the same float32: the table DYNAMIC_MAP of
# src/tensor/nf4Pack.ts. Needs only torch (and numpy); the function is copied from bitsandbytes at
# 95f9af309d4d5793847169c39288dcd3fcbdf564 (functional.py lines 296-345). lowbit's table was printed
# with torch 2.13.0+cpu.
import numpy as np
import torch


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1,
        )
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()

    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()

    data.append(0)
    data.append(1.0)

    assert len(data) == 2**total_bits

    gap = 256 - len(data)
    for i in range(gap):
        data.append(0)

    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def shortest(v):
    for p in range(1, 10):
        s = "%.*g" % (p, v)
        if np.float32(float(s)) == np.float32(v):
            return s


if __name__ == "__main__":
    print(f"# torch {torch.__version__}")
    vals = [shortest(v) for v in create_dynamic_map().tolist()]
    for i in range(0, 256, 12):
        print("  " + ", ".join(vals[i : i + 12]) + ",")
