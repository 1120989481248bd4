"""PyTorch anchor for bench/pplSpeed.ts llama3-8b: block-streamed perplexity over random LLaMA-3-8B
block shapes (hidden 4096, 32 heads, 8 KV heads, head_dim 128, intermediate 14336, 2 blocks,
vocab 128256, untied LM head), on the CPU in float32 compute.

Streamed as lowbit's streamedNll does: the embedding table is made, all windows are embedded, the
table is dropped; each block's bf16 weights are made, every window goes through the block (one
linear layer at a time, its weight upcast to float32 once for all windows), the block is dropped;
then the final norm and the LM head (bf16, upcast one vocabulary chunk of 16384 rows at a time),
logits [256 rows, chunk] at a time, cross-entropy through an online logsumexp.
Weights are bf16 (torch's RNG, uniform ±1.7/sqrt(in_features) like bench/randomSource.ts, norms 1). The weights are random and differ from lowbit's: only speed and
memory are comparable, not the NLL.

Usage: python3 bench/ppl_torch.py THREADS WINDOWS SEQLEN [cpu|cuda] [BLOCKS]
BLOCKS: decoder blocks (default 2; 32 is LLaMA-3-8B's depth).
Prints one JSON line: tokens, seconds (all, weight generation included), computeSeconds (weight
generation excluded), tokensPerSecond, computeTokensPerSecond, peakRssMiB (getrusage ru_maxrss).
With cuda (the anchor of `pplSpeed.js llama3-8b ... --backend webgpu`): everything on the GPU in float32 with
TF32 off (WGSL has no TF32), the same streaming; times after torch.cuda.synchronize(); also peakDeviceMiB
(torch.cuda.max_memory_allocated).
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F

D, H, KVH, HD, FF, L, V = 4096, 32, 8, 128, 14336, 2, 128256  # L: blocks (argv[5])
EPS, THETA = 1e-5, 500000.0
SCALING = dict(factor=8.0, low=1.0, high=4.0, original=8192)
HEAD_ROWS, VOCAB_CHUNK = 256, 16384

gen_seconds = 0.0
DEVICE = "cpu"


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def weight(rows, cols):
    """bf16 random matrix [rows, cols] (timed as weight generation)."""
    global gen_seconds
    sync()
    t0 = time.perf_counter()
    a = 1.7 / math.sqrt(cols)
    w = torch.empty(rows, cols, dtype=torch.bfloat16).uniform_(-a, a)
    sync()
    gen_seconds += time.perf_counter() - t0
    return w


def norm_weight():
    return torch.ones(D, dtype=torch.bfloat16)


def inv_freq():
    """Hugging Face's llama3 rope scaling (_compute_llama3_parameters)."""
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
    low_wl = SCALING["original"] / SCALING["low"]
    high_wl = SCALING["original"] / SCALING["high"]
    wl = 2 * math.pi / inv
    scaled = torch.where(wl > low_wl, inv / SCALING["factor"], inv)
    smooth = (SCALING["original"] / wl - SCALING["low"]) / (SCALING["high"] - SCALING["low"])
    smoothed = (1 - smooth) * scaled / SCALING["factor"] + smooth * scaled
    medium = (wl >= high_wl) & (wl <= low_wl)
    return torch.where(medium, smoothed, scaled)


def rope_tables(T):
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq()[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return torch.cat([-x2, x1], dim=-1)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w.float()


def linear_all(xs, w):
    """xs[i] @ w.T for every window: the bf16 weight is upcast to float32 once per use (per block)."""
    wf = w.float()
    return [F.linear(x, wf) for x in xs]


def attention(q, k, v):
    T = q.shape[0]
    q = q.view(T, H, HD).transpose(0, 1)      # [H, T, hd]
    k = k.view(T, KVH, HD).transpose(0, 1)    # [KVH, T, hd]
    v = v.view(T, KVH, HD).transpose(0, 1)
    cos, sin = rope_tables(T)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(H // KVH, dim=0)
    v = v.repeat_interleave(H // KVH, dim=0)
    s = q.matmul(k.transpose(1, 2)) / math.sqrt(HD)
    mask = torch.full((T, T), float("-inf")).triu(1)
    a = torch.softmax(s + mask, dim=-1).matmul(v)
    return a.transpose(0, 1).reshape(T, H * HD)


def block_all(xs, w):
    """One decoder block over all windows, one linear layer at a time (as lowbit's block streaming
    keeps one block resident; here at most one float32 copy of one weight besides)."""
    n1 = [rmsnorm(x, w["in_norm"]) for x in xs]
    qs, ks, vs = linear_all(n1, w["q"]), linear_all(n1, w["k"]), linear_all(n1, w["v"])
    del n1
    a = [attention(q, k, v) for q, k, v in zip(qs, ks, vs)]
    del qs, ks, vs
    hs = [x + o for x, o in zip(xs, linear_all(a, w["o"]))]
    del a
    n2 = [rmsnorm(h, w["post_norm"]) for h in hs]
    gs = linear_all(n2, w["gate"])
    ms = [F.silu(g) * u for g, u in zip(gs, linear_all(n2, w["up"]))]
    del gs, n2
    return [h + d for h, d in zip(hs, linear_all(ms, w["down"]))]


def load_block():
    return dict(
        in_norm=norm_weight(), post_norm=norm_weight(),
        q=weight(H * HD, D), k=weight(KVH * HD, D), v=weight(KVH * HD, D), o=weight(D, H * HD),
        gate=weight(FF, D), up=weight(FF, D), down=weight(D, FF),
    )


@torch.no_grad()
def main():
    global DEVICE, L
    threads, windows, seqlen = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    DEVICE = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    L = int(sys.argv[5]) if len(sys.argv) > 5 else L
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(12345)
    seqs = [torch.randint(0, V, (seqlen,), generator=g) for _ in range(windows)]
    if DEVICE == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_default_device("cuda")
        seqs = [s.cuda() for s in seqs]
    t0 = time.perf_counter()
    embed = weight(V, D)
    hidden = [F.embedding(ids, embed).float() for ids in seqs]
    del embed
    for _ in range(L):
        w = load_block()
        hidden = block_all(hidden, w)
        del w
    final_norm, head = norm_weight(), weight(V, D)
    # rows 0..T-2 of every window predict tokens 1..T-1; the LM head is upcast one vocabulary chunk
    # at a time (once for all windows), logits [256 rows, chunk] at a time, with an online logsumexp
    rows = torch.cat([rmsnorm(x, final_norm)[:-1] for x in hidden])
    targets = torch.cat([ids[1:] for ids in seqs])
    del hidden
    lse = torch.full((rows.shape[0],), float("-inf"))
    picked = torch.zeros(rows.shape[0])
    for v0 in range(0, V, VOCAB_CHUNK):
        hf = head[v0:v0 + VOCAB_CHUNK].float()
        for r in range(0, rows.shape[0], HEAD_ROWS):
            logits = F.linear(rows[r:r + HEAD_ROWS], hf)
            lse[r:r + HEAD_ROWS] = torch.logaddexp(lse[r:r + HEAD_ROWS], torch.logsumexp(logits, dim=1))
            t = targets[r:r + HEAD_ROWS] - v0
            inside = (t >= 0) & (t < hf.shape[0])
            picked[r:r + HEAD_ROWS][inside] = logits[inside, t[inside]]
        del hf
    total_nll = (lse - picked).sum().item()
    sync()
    seconds = time.perf_counter() - t0
    tokens = windows * seqlen
    compute = seconds - gen_seconds
    print(json.dumps(dict(
        bench="ppl-torch", torch=torch.__version__, threads=torch.get_num_threads(), windows=windows, seqlen=seqlen, blocks=L,
        tokens=tokens, seconds=round(seconds, 2), computeSeconds=round(compute, 2),
        tokensPerSecond=round(tokens / seconds, 1), computeTokensPerSecond=round(tokens / compute, 1),
        meanNll=round(total_nll / (windows * (seqlen - 1)), 4),
        peakRssMiB=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), device=DEVICE,
        **(dict(gpu=torch.cuda.get_device_name(), peakDeviceMiB=round(torch.cuda.max_memory_allocated() / 2**20))
           if DEVICE == "cuda" else {}),
    )))


if __name__ == "__main__":
    main()
