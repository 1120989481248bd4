"""PyTorch fp32 GEMM anchor for bench/gpu/device-run.sh: y = x @ w.T on the GPU, TF32 off (true fp32).
Prints one line per size: N, TFLOP/s (best of 10 CUDA-event-timed products after 3 warm-ups).
Usage: python3 bench/gpu/torch_gemm.py N [N ...]"""
import sys

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
dev = torch.device("cuda")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, fp32, TF32 off")
for n in (int(s) for s in sys.argv[1:]):
    x = torch.rand(n, n, device=dev) - 0.5
    w = torch.rand(n, n, device=dev) - 0.5
    for _ in range(3):
        x @ w.T
    best = float("inf")
    for _ in range(10):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        x @ w.T
        b.record()
        b.synchronize()
        best = min(best, a.elapsed_time(b) / 1e3)
    print(f"| {n} | torch fp32 | {2 * n**3 / best / 1e12:.1f} TFLOP/s |", flush=True)
    del x, w
