"""PyTorch anchor for bench/gptqLayer.ts: GPTQ on one random layer, the algorithm of IST-DASLab/gptq
gptq.py (add_batch per 2048-token sequence in float32; fasterquant: damping 0.01, Cholesky of the
inverse, blocks of 128, 4-bit asymmetric groups of 128), on the CPU, or on CUDA with --cuda (float32, TF32
off, timed with synchronize; the CPU when torch sees no GPU, said in the line). Prints one line per shape:
  ROWSxCOLS hessian_s H solve_s S (torch VERSION, N threads|cuda NAME)
Usage: python3 bench/gptq_torch.py THREADS TOKENS ROWSxCOLS [ROWSxCOLS ...] [--cuda]"""
import sys
import time

import torch

DEV = torch.device("cuda" if "--cuda" in sys.argv and torch.cuda.is_available() else "cpu")
SEQ, BLOCK, GROUP, BITS, PERCDAMP = 2048, 128, 128, 4, 0.01


def params(w, maxq):
    xmin = torch.minimum(w.min(1).values, torch.zeros(1, device=w.device))
    xmax = torch.maximum(w.max(1).values, torch.zeros(1, device=w.device))
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp], xmax[tmp] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def quant(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def solve(W, H):
    maxq, cols = 2**BITS - 1, W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = PERCDAMP * torch.mean(torch.diag(H))
    H += damp * torch.eye(cols, device=H.device)
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    Q = torch.zeros_like(W)
    scale = zero = None
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if (i1 + i) % GROUP == 0:
                scale, zero = params(W[:, i1 + i:i1 + i + GROUP], maxq)
            q = quant(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q[:, i1 + i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return Q


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def main():
    args = [a for a in sys.argv[1:] if a != "--cuda"]
    threads, tokens, shapes = int(args[0]), int(args[1]), args[2:]
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    where = f"cuda {torch.cuda.get_device_name(DEV)}" if DEV.type == "cuda" else f"{torch.get_num_threads()} threads"
    # warm-up: the first LAPACK/BLAS (cuSOLVER/cuBLAS) calls of a process pay one-time initialisation
    a = torch.randn(256, 256, device=DEV)
    solve(0.02 * torch.randn(64, 256, device=DEV), a.t() @ a + torch.eye(256, device=DEV))
    sync()
    for shape in shapes:
        rows, cols = (int(s) for s in shape.split("x"))
        seq = min(SEQ, tokens)
        X = torch.randn(seq, cols, device=DEV)
        H, n = torch.zeros(cols, cols, device=DEV), 0
        sync()
        t0 = time.perf_counter()
        for done in range(0, tokens, seq):
            inp = X[: min(seq, tokens - done)].t().float()
            H *= n / (n + 1)
            n += 1
            inp = (2 / n) ** 0.5 * inp
            H += inp.matmul(inp.t())
        sync()
        hessian = time.perf_counter() - t0
        W = 0.02 * torch.randn(rows, cols, device=DEV)
        sync()
        t0 = time.perf_counter()
        solve(W, H)
        sync()
        print(f"{shape} hessian_s {hessian:.2f} solve_s {time.perf_counter() - t0:.2f}"
              f" (torch {torch.__version__}, {where})", flush=True)


if __name__ == "__main__":
    main()
