"""PyTorch f32 GEMM anchor for bench/kernels.ts: prints one line of GFLOP/s per size.
Usage: python3 bench/anchor_torch.py THREADS N [N ...]  (y = x @ w.T, best of 5 after a warm-up)."""
import sys
import time

import torch

threads, sizes = int(sys.argv[1]), [int(s) for s in sys.argv[2:]]
torch.set_num_threads(threads)
cells = []
for n in sizes:
    x, w = torch.rand(n, n) - 0.5, torch.rand(n, n) - 0.5
    x @ w.T
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        x @ w.T
        best = min(best, time.perf_counter() - t0)
    cells.append(f"{2 * n**3 / best / 1e9:9.1f}")
print("".join(cells) + f"   (torch {torch.__version__}, {torch.get_num_threads()} threads)")
