# Writes test/golden/icq-irqlora.json: IR-QLoRA's ICQ search (htqin/IR-QLoRA utils.py at
# e6fef4ac13f311350b51bc59aaf971cf6bef021b: evaluate_entropy, search, quantize_tensor, nf4_quant, copied
# below) on the deterministic matrix of scripts/nf4-golden.py (128 × 128: one group of 256 blocks), with
# the repository's settings tau_lambda 0.1, tau_n 100, blocksize2 256. The one change: nf4_quant
# quantizes with bitsandbytes' pure-torch quantize_4bit (scripts/nf4-golden.py) instead of
# bnb.nn.Params4bit(...).cuda(), so that no GPU is needed. Needs torch, numpy and scipy.
import base64
import importlib.util
import json
import os

import numpy as np
import torch
from scipy.stats import norm

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


golden = load("golden", "nf4-golden.py")
dm = load("dm", "nf4-dynamic-map.py")

sigma = 1 / norm.ppf(torch.linspace(0.9677083, 0.5, 9)[:-1]).tolist()[0]
normal_map_fp8 = dm.create_dynamic_map()


def quantize_tensor(X, L, idx=False):
    L = L.to(X.device)
    X_shape = X.shape
    X_expanded = X.reshape(-1, 1)
    L_reshaped = L.reshape(1, -1)
    abs_diff = torch.abs(X_expanded - L_reshaped)
    min_index = torch.argmin(abs_diff, dim=-1)
    min_index = min_index.to(torch.uint8).reshape(X_shape)
    return min_index


@torch.no_grad()
def nf4_quant(weight, weight_shape, tau):
    weight = weight.reshape(-1, 256, 64)
    tau = tau.reshape(-1, 256, 1)
    _weight = (weight - tau).reshape(weight_shape)
    nf4_weight, absmax = golden.quantize_4bit(_weight, 64)  # was: bnb.nn.Params4bit(_weight, ...).cuda(0)
    tau2 = tau.abs().max(dim=1, keepdim=True)[0]
    tau1 = quantize_tensor(tau / tau2, normal_map_fp8)
    return (nf4_weight, absmax), tau1.reshape(-1, 256), tau2.reshape(-1, 1)


@torch.no_grad()
def evaluate_entropy(weight_int8, blocksize):
    device = weight_int8.device
    _weight_int8 = weight_int8.reshape(-1, 1)
    weight_nf4 = torch.cat((_weight_int8 // 16, _weight_int8 % 16), 1).reshape(1, -1, blocksize)
    weight_nf4_repeat = weight_nf4.repeat(16, 1, 1).to(device)
    values = torch.tensor(range(16)).reshape(16, 1, 1).to(device)
    freqs = (weight_nf4_repeat == values).sum(dim=-1, keepdim=True) / blocksize
    entropy = -freqs * torch.log2(freqs)
    entropy = torch.where(torch.isnan(entropy), 0, entropy)
    entropy = entropy.sum(dim=0)
    return entropy


@torch.no_grad()
def search(fp_weight, fp_weight_shape, tau_range=0.1, tau_n=51, blocksize=64, blocksize2=256):
    fp_weight = fp_weight.reshape(-1, blocksize2, blocksize)
    tau0 = fp_weight.median(2, keepdim=True)[0]  # [-1, 256, 1]
    absmax = (fp_weight - tau0).abs().max(2, keepdim=True)[0]

    entropy_max, factor_best = None, None
    for factor in np.linspace(-tau_range * sigma, tau_range * sigma, tau_n * 2 + 1):
        tau = factor * absmax + tau0
        (nf4_weight, _), _, _ = nf4_quant(fp_weight, fp_weight_shape, tau)
        entropy = evaluate_entropy(nf4_weight, blocksize)

        if entropy_max is None:
            entropy_max = entropy
            factor_best = torch.full_like(entropy, factor)
        else:
            factor_best = torch.where(entropy > entropy_max, factor, factor_best)
            entropy_max = torch.max(entropy_max, entropy)

    tau = factor_best.reshape(-1, 256, 1) * absmax + tau0
    nf4_weight, tau1, tau2 = nf4_quant(fp_weight, fp_weight_shape, tau)
    return nf4_weight, tau1, tau2, tau


def b64(t):
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode()


if __name__ == "__main__":
    golden.ROWS, golden.COLS = 128, 128
    W = golden.golden_input().reshape(128, 128)
    (packed, absmax), tau1, tau2, tau = search(W, W.shape, tau_range=0.1, tau_n=100, blocksize2=256)
    out = {
        "generator": "scripts/icq-golden.py (IR-QLoRA e6fef4ac utils.py search, bitsandbytes 95f9af30 torch kernels)",
        "torch": torch.__version__,
        "sigma": sigma,
        "rows": 128, "cols": 128,
        "tau": b64(tau.reshape(-1)),
        "tauCodes": b64(tau1.reshape(-1)),
        "tauAbsmax": b64(tau2.reshape(-1)),
        "codes": b64(packed.reshape(-1)),
        "absmax": b64(absmax),
    }
    json.dump(out, open(os.path.join(HERE, "..", "test", "golden", "icq-irqlora.json"), "w"), indent=1)
    print("wrote test/golden/icq-irqlora.json", repr(sigma))
