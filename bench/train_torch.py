"""PyTorch anchor for bench/trainStep.ts: the same LoRA training step on the CPU in float32.

A LLaMA model of the given shapes with random frozen float32 weights (uniform ±1.7/sqrt(in_features)
like bench/randomSource.ts, norms 1): embedding; per block rmsnorm, q/k/v/o with LoRA, RoPE
(rotate-half), causal GQA attention (scaled_dot_product_attention, is_causal, K/V repeated to the
query heads), rmsnorm, SwiGLU MLP with LoRA on gate/up/down; final norm, LM head (tied to the
embedding when `tie`), cross-entropy. LoRA as PEFT: frozen W, trainable A [r, in] ~ U(±1/sqrt(in)),
B [out, r] = 0, y = W x + (alpha / r) · B A x. Each block runs under torch.utils.checkpoint
(use_reentrant=False) as lowbit checkpoints per block. One optimizer step = `seqs` sequences of T
random tokens, each loss = sum NLL / (T · seqs), backward per sequence (gradient accumulation),
clip_grad_norm_(0.3), AdamW (lr 2e-4, betas 0.9/0.999, eps 1e-8, weight decay 0) over the LoRA
parameters. `warmup` untimed steps, then `steps` timed ones.

Usage: python3 bench/train_torch.py '{"D":..,"F":..,"L":..,"H":..,"KVH":..,"HD":..,"V":..,"tie":bool,
  "theta":..,"eps":..,"llama3Rope":bool,"threads":..,"T":..,"seqs":..,"steps":..,"warmup":..,"r":64,"alpha":16}'
Prints one JSON line: tokens, seconds, tokensPerSecond (timed steps), setupSeconds (weight
generation), baseRssMiB (after import torch), peakRssMiB (getrusage ru_maxrss).
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frozen(rows, cols):
    a = 1.7 / math.sqrt(cols)
    return torch.empty(rows, cols).uniform_(-a, a)


def inv_freq(c):
    HD = c["HD"]
    inv = 1.0 / (c["theta"] ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
    if not c["llama3Rope"]:
        return inv
    factor, low, high, orig = 8.0, 1.0, 4.0, 8192
    wl = 2 * math.pi / inv
    scaled = torch.where(wl > orig / low, inv / factor, inv)
    smooth = (orig / wl - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wl >= orig / high) & (wl <= orig / low)
    return torch.where(medium, smoothed, scaled)


class LoraLinear(torch.nn.Module):
    def __init__(self, out_f, in_f, r, alpha):
        super().__init__()
        self.weight = torch.nn.Parameter(frozen(out_f, in_f), requires_grad=False)
        b = 1 / math.sqrt(in_f)
        self.A = torch.nn.Parameter(torch.empty(r, in_f).uniform_(-b, b))
        self.B = torch.nn.Parameter(torch.zeros(out_f, r))
        self.s = alpha / r

    def forward(self, x):
        return F.linear(x, self.weight) + self.s * F.linear(F.linear(x, self.A), self.B)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        D, F_, H, KVH, HD, r, al = c["D"], c["F"], c["H"], c["KVH"], c["HD"], c["r"], c["alpha"]
        self.c = c
        self.n1 = torch.nn.Parameter(torch.ones(D), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(D), requires_grad=False)
        self.q, self.k = LoraLinear(H * HD, D, r, al), LoraLinear(KVH * HD, D, r, al)
        self.v, self.o = LoraLinear(KVH * HD, D, r, al), LoraLinear(D, H * HD, r, al)
        self.gate, self.up = LoraLinear(F_, D, r, al), LoraLinear(F_, D, r, al)
        self.down = LoraLinear(D, F_, r, al)

    def forward(self, x, cos, sin):
        c = self.c
        T, H, KVH, HD = x.shape[0], c["H"], c["KVH"], c["HD"]
        n1 = rmsnorm(x, self.n1, c["eps"])
        q = self.q(n1).view(T, H, HD).transpose(0, 1)
        k = self.k(n1).view(T, KVH, HD).transpose(0, 1)
        v = self.v(n1).view(T, KVH, HD).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=0)
        v = v.repeat_interleave(H // KVH, dim=0)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = x + self.o(a.transpose(0, 1).reshape(T, H * HD))
        n2 = rmsnorm(h, self.n2, c["eps"])
        return h + self.down(F.silu(self.gate(n2)) * self.up(n2))


def main():
    c = json.loads(sys.argv[1])
    torch.set_num_threads(c["threads"])
    torch.manual_seed(0)
    base_rss = rss_mib()
    t0 = time.perf_counter()
    embed = frozen(c["V"], c["D"])
    blocks = torch.nn.ModuleList([Block(c) for _ in range(c["L"])])
    norm = torch.ones(c["D"])
    head = embed if c["tie"] else frozen(c["V"], c["D"])
    T, seqs = c["T"], c["seqs"]
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq(c)[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    g = torch.Generator().manual_seed(12345)
    data = [torch.randint(0, c["V"], (T + 1,), generator=g) for _ in range(seqs)]
    params = [p for p in blocks.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    setup = time.perf_counter() - t0
    losses = []

    def step():
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for ids in data:
            x = F.embedding(ids[:-1], embed)
            for b in blocks:
                x = checkpoint(b, x, cos, sin, use_reentrant=False)
            logits = F.linear(rmsnorm(x, norm, c["eps"]), head)
            loss = F.cross_entropy(logits, ids[1:], reduction="sum") / (T * seqs)
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 0.3)
        opt.step()
        losses.append(round(total, 4))

    for _ in range(c["warmup"]):
        step()
    t1 = time.perf_counter()
    for _ in range(c["steps"]):
        step()
    seconds = time.perf_counter() - t1
    tokens = c["steps"] * seqs * T
    print(json.dumps(dict(
        bench="train-step-torch", torch=torch.__version__, threads=torch.get_num_threads(),
        shape={k: c[k] for k in ("D", "F", "L", "H", "KVH", "HD", "V", "tie")}, seqlen=T, sequences=seqs,
        steps=c["steps"], warmup=c["warmup"], params=sum(p.numel() for p in params), tokens=tokens,
        seconds=round(seconds, 3), tokensPerSecond=round(tokens / seconds, 1), setupSeconds=round(setup, 2),
        losses=losses, baseRssMiB=round(base_rss), peakRssMiB=round(rss_mib()),
    )))


if __name__ == "__main__":
    main()
