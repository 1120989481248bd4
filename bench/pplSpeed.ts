// Block-streamed perplexity speed and peak resident memory.
// Usage: node --expose-gc dist/bench/pplSpeed.js bundled|llama3-8b [windows] [seqlen] [--threads N] [--no-torch]
//          [--backend cpu|webgpu] [--blocks N]
// --blocks: decoder blocks of the random llama3-8b model (default 2; 32 is the whole LLaMA-3-8B depth), on both sides.
// With --backend webgpu the PyTorch anchor runs on CUDA (float32, TF32 off) when torch sees a GPU, else on the CPU.
// llama3-8b also runs bench/ppl_torch.py (PyTorch, same shapes, windows, seqlen, threads, same block
// streaming, float32 compute over bf16 weights) when a python3 can import torch, and prints a JSON
// line with both tokens/s and their ratio. Both sides' weights are random (and differ): compare
// speed and memory, not NLL. "seconds" include generating the random weights on both sides;
// "compute" figures exclude it (lowbit: time inside the random source's read() and readRows()).
// llama3-8b also prints the memory target: peak RSS <= (one block's weights + activations) x 1.2,
// where activations = the hidden states of all sequences (a block's input and output, float32) + the
// largest transient of one block forward, all of blockForward's float32 intermediates of one sequence
// (live until it returns): T x (5 hidden [norms, o-proj, residual, down-proj] + 3 q dim [q, roped q,
// attention] + 3 kv dim [k, roped k, v] + 3 intermediate [gate, up, gate*up]) x 4 bytes, + the native
// kernels' per-thread decoded weight panels (threads x 256 rows x intermediate x 4 bytes).
// Node's own RSS (measured after start-up, kernels loaded) counts in the peak; both verdicts are printed.
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { openModel } from '../src/io/open.js';
import { DEFAULT_MODEL, PACKAGE_ROOT } from '../src/paths.js';
import { evaluatePpl } from '../src/eval/ppl.js';
import { streamedNll } from '../src/model/stream.js';
import { createBackend } from '../src/cli/backendOptions.js';
import { LLAMA3_8B_2BLOCKS, randomLlama3Blocks } from './randomSource.js';
import { DTYPE_BYTES } from '../src/tensor/dtype.js';
import { torchPython } from './python.js';

const argv = process.argv.slice(2);
const ti = argv.indexOf('--threads');
const threads = ti >= 0 ? Number(argv[ti + 1]) : availableParallelism();
const bi = argv.indexOf('--backend');
const backend = bi >= 0 ? argv[bi + 1]! : 'cpu';
const li = argv.indexOf('--blocks');
const blocks = li >= 0 ? Number(argv[li + 1]) : 2;
if (!Number.isInteger(blocks) || blocks < 1) {
  console.error(`pplSpeed: --blocks must be a positive integer, not ${argv[li + 1]}`);
  process.exit(2);
}
const noTorch = argv.includes('--no-torch');
const valueAt = new Set([ti, bi, li].filter((i) => i >= 0).map((i) => i + 1));
const positional = argv.filter((a, i) => !a.startsWith('--') && !valueAt.has(i));
const [which = 'bundled', winArg, seqArg] = positional;
const startRss = process.memoryUsage().rss;
const be = await createBackend({ backend, threads });
const baselineRss = process.memoryUsage().rss;
const t0 = performance.now();
let tokens = 0, label = '', genMs = 0, windows = 0, seqlen = 0;
if (which === 'bundled') {
  const r = await evaluatePpl(openModel(DEFAULT_MODEL), be, 'tinystories', { seqlen: Number(seqArg ?? 512), limit: winArg ? Number(winArg) : undefined });
  tokens = r.windowsEvaluated * r.seqlen;
  label = `TinyStories-656K, tinystories, ${r.windowsEvaluated} windows × ${r.seqlen}, ppl ${r.ppl.toFixed(3)}`;
} else {
  const ck = randomLlama3Blocks(blocks);
  const src = ck.weights, read = src.read.bind(src), readRows = src.readRows!.bind(src);
  let depth = 0; // read() goes through readRows(): time the outermost call only
  const timed = <T>(f: () => T): T => {
    const s = performance.now();
    depth++;
    try { return f(); } finally { if (--depth === 0) genMs += performance.now() - s; }
  };
  src.read = (name: string) => timed(() => read(name));
  src.readRows = (name: string, start: number, count: number) => timed(() => readRows(name, start, count));
  windows = Number(winArg ?? 1); seqlen = Number(seqArg ?? 128);
  let s = 12345;
  const seqs = Array.from({ length: windows }, () => Int32Array.from({ length: seqlen }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % 128256; }));
  await streamedNll(ck, be, seqs);
  tokens = windows * seqlen;
  label = `random LLaMA-3-8B block shapes (${blocks} blocks, bf16), ${windows} windows × ${seqlen}`;
}
const sec = (performance.now() - t0) / 1000;
const peakMiB = process.resourceUsage().maxRSS / 1024;
const lowbit = {
  bench: 'ppl', label, backend: be.description, threads, tokens, seconds: +sec.toFixed(2), tokensPerSecond: +(tokens / sec).toFixed(1),
  ...(which === 'bundled' ? {} : { computeSeconds: +(sec - genMs / 1000).toFixed(2), computeTokensPerSecond: +(tokens / (sec - genMs / 1000)).toFixed(1) }),
  peakRssMiB: +peakMiB.toFixed(0),
  ...('deviceMemory' in be ? { peakDeviceMiB: +((be as unknown as { deviceMemory(): { peakBytes: number } }).deviceMemory().peakBytes / 2 ** 20).toFixed(0) } : {}),
};
console.log(JSON.stringify(lowbit));

if (which !== 'bundled' && backend === 'cpu') { // the host-memory target is the CPU backend's
  const cfg = LLAMA3_8B_2BLOCKS, MiB = 1024 * 1024;
  const blockBytes = randomLlama3Blocks().weights.list()
    .filter((t) => t.name.startsWith('model.layers.0.'))
    .reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype], 0);
  const hiddenBytes = 2 * windows * seqlen * cfg.hiddenSize * 4;
  const qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim;
  const blockTransientBytes = seqlen * (5 * cfg.hiddenSize + 3 * qd + 3 * kvd + 3 * cfg.intermediateSize) * 4;
  const panelBytes = threads * 256 * cfg.intermediateSize * 4;
  const activationBytes = hiddenBytes + blockTransientBytes + panelBytes;
  const limit = (blockBytes + activationBytes) * 1.2;
  const peak = process.resourceUsage().maxRSS * 1024;
  const mib = (b: number) => +(b / MiB).toFixed(1);
  console.log(JSON.stringify({
    bench: 'ppl-memory-target', target: 'peak RSS <= (one block weights + activations) x 1.2',
    blockWeightMiB: mib(blockBytes),
    activationMiB: mib(activationBytes),
    activationParts: { hiddenStatesInOutMiB: mib(hiddenBytes), blockForwardTransientMiB: mib(blockTransientBytes), kernelPanelsMiB: mib(panelBytes) },
    limitMiB: mib(limit),
    nodeStartRssMiB: mib(startRss), baselineRssMiB: mib(baselineRss),
    peakRssMiB: mib(peak), met: peak <= limit,
    peakAboveBaselineMiB: mib(peak - baselineRss), metAboveBaseline: peak - baselineRss <= limit,
  }));
}

if (which !== 'bundled' && !noTorch) {
  const py = torchPython();
  if (!py) {
    console.log(JSON.stringify({ bench: 'ppl-vs-torch', torch: "absent (python3 -c 'import torch' fails)" }));
  } else {
    const cuda = backend !== 'cpu' && spawnSync(py, ['-c', 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)']).status === 0;
    const r = spawnSync(py, [join(PACKAGE_ROOT, 'bench', 'ppl_torch.py'), String(threads), String(windows), String(seqlen), cuda ? 'cuda' : 'cpu', String(blocks)], { encoding: 'utf8' });
    const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    let torch: Record<string, number> & { device?: string } | undefined;
    try { torch = JSON.parse(line); } catch { /* reported below */ }
    if (!torch) {
      console.log(JSON.stringify({ bench: 'ppl-vs-torch', error: (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' | ') }));
    } else {
      console.log(JSON.stringify(torch));
      const ratio = (a: number, b: number) => +(a / b).toFixed(2);
      console.log(JSON.stringify({
        bench: 'ppl-vs-torch', windows, seqlen, blocks, threads, lowbitBackend: be.description, torchDevice: torch.device, note: 'random weights on both sides (they differ): speed/memory only',
        lowbitTokensPerSecond: lowbit.tokensPerSecond, torchTokensPerSecond: torch.tokensPerSecond,
        ratio: ratio(lowbit.tokensPerSecond, torch.tokensPerSecond!),
        lowbitComputeTokensPerSecond: lowbit.computeTokensPerSecond, torchComputeTokensPerSecond: torch.computeTokensPerSecond,
        computeRatio: ratio(lowbit.computeTokensPerSecond!, torch.computeTokensPerSecond!),
        lowbitPeakRssMiB: lowbit.peakRssMiB, torchPeakRssMiB: torch.peakRssMiB,
        ...(lowbit.peakDeviceMiB !== undefined ? { lowbitPeakDeviceMiB: lowbit.peakDeviceMiB, torchPeakDeviceMiB: torch.peakDeviceMiB ?? null } : {}),
      }));
    }
  }
}
