"""PyTorch anchor for bench/gptqBlock.ts: gptq.py's llama_sequential (IST-DASLab/gptq llama.py) on one random
LLaMA-3-8B decoder block: for each true-sequential group (k/v/q, o, up/gate, down) the block's forward over every
calibration window with each group layer's Hessian summed from its inputs (add_batch), then fasterquant per layer
(W4 g128 asym, damping 0.01, blocks of 128; bench/gptq_torch.py's solve), the quantized weights put back; finally
the block's output. Float32 forward (TF32 off: WGSL has none), random hidden states as the block's input.

Usage: python3 bench/gptq_block_torch.py THREADS SAMPLES SEQLEN [cpu|cuda]
Prints one JSON line: blockSeconds (everything after the weights and inputs exist), device, torch version.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

import gptq_torch as G
import ppl_torch as P

GROUPS = [["k", "v", "q"], ["o"], ["up", "gate"], ["down"]]


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def forward(x, w, collect):
    """One window through the block; collect(name, input) for every linear's input."""
    n1 = P.rmsnorm(x, w["in_norm"])
    for nm in ("q", "k", "v"):
        collect(nm, n1)
    q, k, v = n1 @ w["q"].t(), n1 @ w["k"].t(), n1 @ w["v"].t()
    a = P.attention(q, k, v)
    collect("o", a)
    h = x + a @ w["o"].t()
    n2 = P.rmsnorm(h, w["post_norm"])
    collect("gate", n2)
    collect("up", n2)
    m = F.silu(n2 @ w["gate"].t()) * (n2 @ w["up"].t())
    collect("down", m)
    return h + m @ w["down"].t()


@torch.no_grad()
def main():
    threads, samples, seqlen = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_default_device("cuda")
    w = {k: v.float() for k, v in P.load_block().items()}
    inps = [0.02 * torch.randn(seqlen, P.D) for _ in range(samples)]
    sync(device)
    t0 = time.perf_counter()
    for names in GROUPS:
        H = {nm: torch.zeros(w[nm].shape[1], w[nm].shape[1]) for nm in names}
        n = {nm: 0 for nm in names}

        def add_batch(nm, inp):
            if nm not in H:
                return
            H[nm] *= n[nm] / (n[nm] + 1)
            n[nm] += 1
            x = (2 / n[nm]) ** 0.5 * inp.t().float()
            H[nm] += x @ x.t()

        for x in inps:
            forward(x, w, add_batch)
        for nm in names:
            w[nm] = G.solve(w[nm].clone(), H[nm])
        del H
    outs = [forward(x, w, lambda nm, inp: None) for x in inps]
    sync(device)
    seconds = time.perf_counter() - t0
    del outs
    print(json.dumps(dict(
        bench="gptq-block-torch", torch=torch.__version__, device=device, threads=torch.get_num_threads(),
        samples=samples, seqlen=seqlen, blockSeconds=round(seconds, 2),
        **(dict(gpu=torch.cuda.get_device_name()) if device == "cuda" else {}),
    )))


if __name__ == "__main__":
    main()
