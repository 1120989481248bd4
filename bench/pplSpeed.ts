// Block-streamed perplexity speed and peak resident memory.
// Usage: node dist/bench/pplSpeed.js bundled|llama3-8b [windows] [seqlen] [--threads N] [--no-torch]
// llama3-8b also runs bench/ppl_torch.py (PyTorch, same shapes, windows, seqlen, threads, same block
// streaming, float32 compute over bf16 weights) when a python3 can import torch, and prints a JSON
// line with both tokens/s and their ratio. Both sides' weights are random (and differ): compare
// speed and memory, not NLL. "seconds" include generating the random weights on both sides;
// "compute" figures exclude it (lowbit: time inside the random source's read()).
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { openModel } from '../src/io/open.js';
import { DEFAULT_MODEL, PACKAGE_ROOT } from '../src/paths.js';
import { evaluatePpl } from '../src/eval/ppl.js';
import { streamedNll } from '../src/model/stream.js';
import { createBackend } from '../src/cli/backendOptions.js';
import { randomLlama3Blocks } from './randomSource.js';
import { torchPython } from './python.js';

const argv = process.argv.slice(2);
const ti = argv.indexOf('--threads');
const threads = ti >= 0 ? Number(argv[ti + 1]) : availableParallelism();
const noTorch = argv.includes('--no-torch');
const positional = argv.filter((a, i) => !a.startsWith('--') && !(ti >= 0 && i === ti + 1));
const [which = 'bundled', winArg, seqArg] = positional;
const be = await createBackend({ backend: 'cpu', threads });
const t0 = performance.now();
let tokens = 0, label = '', genMs = 0, windows = 0, seqlen = 0;
if (which === 'bundled') {
  const r = await evaluatePpl(openModel(DEFAULT_MODEL), be, 'tinystories', { seqlen: Number(seqArg ?? 512), limit: winArg ? Number(winArg) : undefined });
  tokens = r.windowsEvaluated * r.seqlen;
  label = `TinyStories-656K, tinystories, ${r.windowsEvaluated} windows × ${r.seqlen}, ppl ${r.ppl.toFixed(3)}`;
} else {
  const ck = randomLlama3Blocks();
  const src = ck.weights, read = src.read.bind(src);
  src.read = (name: string) => { const s = performance.now(); try { return read(name); } finally { genMs += performance.now() - s; } };
  windows = Number(winArg ?? 1); seqlen = Number(seqArg ?? 128);
  let s = 12345;
  const seqs = Array.from({ length: windows }, () => Int32Array.from({ length: seqlen }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % 128256; }));
  await streamedNll(ck, be, seqs);
  tokens = windows * seqlen;
  label = `random LLaMA-3-8B block shapes (2 blocks, bf16), ${windows} windows × ${seqlen}`;
}
const sec = (performance.now() - t0) / 1000;
const peakMiB = process.resourceUsage().maxRSS / 1024;
const lowbit = {
  bench: 'ppl', label, backend: be.description, threads, tokens, seconds: +sec.toFixed(2), tokensPerSecond: +(tokens / sec).toFixed(1),
  ...(which === 'bundled' ? {} : { computeSeconds: +(sec - genMs / 1000).toFixed(2), computeTokensPerSecond: +(tokens / (sec - genMs / 1000)).toFixed(1) }),
  peakRssMiB: +peakMiB.toFixed(0),
};
console.log(JSON.stringify(lowbit));

if (which !== 'bundled' && !noTorch) {
  const py = torchPython();
  if (!py) {
    console.log(JSON.stringify({ bench: 'ppl-vs-torch', torch: "absent (python3 -c 'import torch' fails)" }));
  } else {
    const r = spawnSync(py, [join(PACKAGE_ROOT, 'bench', 'ppl_torch.py'), String(threads), String(windows), String(seqlen)], { encoding: 'utf8' });
    const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    let torch: Record<string, number> | undefined;
    try { torch = JSON.parse(line); } catch { /* reported below */ }
    if (!torch) {
      console.log(JSON.stringify({ bench: 'ppl-vs-torch', error: (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' | ') }));
    } else {
      console.log(JSON.stringify(torch));
      const ratio = (a: number, b: number) => +(a / b).toFixed(2);
      console.log(JSON.stringify({
        bench: 'ppl-vs-torch', windows, seqlen, threads, note: 'random weights on both sides (they differ): speed/memory only',
        lowbitTokensPerSecond: lowbit.tokensPerSecond, torchTokensPerSecond: torch.tokensPerSecond,
        ratio: ratio(lowbit.tokensPerSecond, torch.tokensPerSecond!),
        lowbitComputeTokensPerSecond: lowbit.computeTokensPerSecond, torchComputeTokensPerSecond: torch.computeTokensPerSecond,
        computeRatio: ratio(lowbit.computeTokensPerSecond!, torch.computeTokensPerSecond!),
        lowbitPeakRssMiB: lowbit.peakRssMiB, torchPeakRssMiB: torch.peakRssMiB,
      }));
    }
  }
}
