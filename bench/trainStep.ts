/**
 * LoRA training speed and peak memory (issue 14): tokens/s of the whole optimizer step (forward +
 * backward of every sequence through train/sequenceGrad.ts with per-block activation checkpointing,
 * the adapters' gradients read back and summed, gradient-norm clipping, AdamW), as train/finetune.ts
 * assembles it, with QLoRA's adapter (LoRA r 64, alpha 16, no dropout, all seven linears) and its
 * trainer settings (AdamW β 0.9/0.999, ε 1e-8, no weight decay, max grad norm 0.3, lr 2e-4).
 * benchTrainStep prints nothing.
 *
 *   node --expose-gc dist/bench/trainStep.js [--quick] [--threads N] [--no-torch] [--cases a,b]
 * (default: the bundled cases 3 steps × 4 × 256 tokens after 1 warm-up step, the 8B cases 1 step × 1 × 128
 * tokens, about 3 minutes on 2 cores; --quick: bundled 2 × 2 × 256, 8b-v32000 only at 1 × 1 × 64, about 70 s)
 * runs each case in its own process (so each peak RSS is its own), then bench/train_torch.py (PyTorch
 * CPU, float32, the same shapes, step and thread count; torch.utils.checkpoint per block) for it, and
 * prints one JSON line per case and a table with both tokens/s and their ratio. Cases:
 *   bundled-bf16  TinyStories-656K as stored (bf16)
 *   bundled-nf4   TinyStories-656K quantized in-process to NF4 + double quant (QLoRA's base, calib none)
 *   8b-v128256    random LLaMA-3-8B block shapes, 2 blocks, bf16, the real vocabulary (the LM head's
 *                 128256 × 4096 is about 45% of the step's flops)
 *   8b-v32000     the same blocks with a 32000-token vocabulary (the blocks weigh more in the figure)
 * A case alone: node --expose-gc dist/bench/trainStep.js --one CASE [--seqlen T] [--sequences S]
 *   [--steps N] [--warmup W] [--threads N] (prints its lowbit JSON line only).
 *
 * Figures. seconds / tokens/s: the timed steps only (after `warmup` untimed steps); model loading,
 * random weight generation and quantization are "setupSeconds". peakRssMiB: the process's resident
 * high-water mark (process.resourceUsage().maxRSS, getrusage; torch: ru_maxrss), so it includes setup
 * (for the random model: its generated weights) and Node's (or Python + torch's) own baseline, which
 * is printed as baseRssMiB (measured before the model is loaded). Weights differ between the two sides
 * (lowbit: the bundled model's or bench/randomSource.ts's; torch: its RNG): compare speed and memory.
 */
import { availableParallelism, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isTrainable, type TrainableBackend } from '../src/backend/backend.js';
import { createBackend } from '../src/cli/backendOptions.js';
import type { ModelCheckpoint } from '../src/io/checkpoint.js';
import type { LlamaConfig } from '../src/io/config.js';
import { openModel } from '../src/io/open.js';
import { ropeFor } from '../src/model/stream.js';
import { DEFAULT_MODEL, PACKAGE_ROOT } from '../src/paths.js';
import { quantizeModel } from '../src/quant/quantizeModel.js';
import { RECIPES } from '../src/quant/lora/recipes.js';
import { AdamW, clipGradNorm } from '../src/train/adamw.js';
import type { BlockAdapters } from '../src/train/blockGrad.js';
import { loadFrozen } from '../src/train/finetune.js';
import { AdapterSet } from '../src/train/lora.js';
import { sequenceGrad } from '../src/train/sequenceGrad.js';
import { LLAMA3_8B_2BLOCKS, randomLlama3Blocks, LazyRandomSource } from './randomSource.js';
import { torchPython } from './python.js';

export interface TrainStepOptions {
  /** tokens per sequence */
  readonly seqlen: number;
  /** sequences per optimizer step (gradient accumulation) */
  readonly sequences: number;
  /** timed optimizer steps */
  readonly steps: number;
  /** untimed steps before them (default 1) */
  readonly warmup?: number;
  readonly rank?: number;
  readonly alpha?: number;
  readonly seed?: number;
}

export interface TrainStepFigures {
  readonly seqlen: number;
  readonly sequences: number;
  readonly steps: number;
  readonly warmup: number;
  readonly rank: number;
  readonly alpha: number;
  /** trainable parameters (LoRA A and B of every linear) */
  readonly params: number;
  readonly tokens: number;
  readonly seconds: number;
  readonly tokensPerSecond: number;
  /** loading the frozen model onto the backend */
  readonly loadSeconds: number;
  /** the loss of every step (warm-up included): the mean NLL of its sequences */
  readonly losses: number[];
}

/** A seeded token sequence of length n over [0, vocab). */
function tokens(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0 || 1;
  return Int32Array.from({ length: n }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % vocab; });
}

/** Times `steps` LoRA optimizer steps of `sequences` × `seqlen` random tokens on a frozen checkpoint. */
export async function benchTrainStep(be: TrainableBackend, ckpt: ModelCheckpoint, o: TrainStepOptions): Promise<TrainStepFigures> {
  const q = RECIPES.qlora;
  const rank = o.rank ?? q.lora.rank, alpha = o.alpha ?? q.lora.alpha, warmup = o.warmup ?? 1, seed = o.seed ?? 42;
  const { seqlen: T, sequences } = o;
  const cfg = ckpt.config;
  if (T > cfg.maxPositionEmbeddings) throw new RangeError(`seqlen ${T} exceeds the model's context (${cfg.maxPositionEmbeddings})`);
  const set = new AdapterSet(cfg, { form: 'lora', rank, alpha, dropout: 0 }, seed);
  const params = set.params();
  const opt = new AdamW(params.map((p) => p.value), q.train.adam);
  const t0 = performance.now();
  const frozen = loadFrozen(ckpt, be);
  const loadSeconds = (performance.now() - t0) / 1000;
  const { cos, sin } = ropeFor(ckpt, be, 0, T);
  const rope = { cos, sin, negSin: be.scale(sin, -1) };
  // every position predicts the next token of a sequence T + 1 long; the step's loss is the mean over sequences
  const data = Array.from({ length: sequences }, (_, i) => {
    const all = tokens(T + 1, cfg.vocabSize, seed * 1000 + i + 1);
    return { ids: all.subarray(0, T), targets: all.subarray(1), weights: new Float32Array(T).fill(1 / (T * sequences)) };
  });
  const losses: number[] = [];
  const step = async (): Promise<void> => {
    set.zeroGrads();
    let loss = 0;
    for (const s of data) {
      const memo = new Map<number, BlockAdapters>();
      loss += await sequenceGrad(be, frozen, s, {
        rope,
        adapters: (layer) => {
          let a = memo.get(layer);
          if (!a) memo.set(layer, (a = set.blockTensors(be, layer, T, () => 0)));
          return a;
        },
        onGrads: (layer, g) => set.accumulate(be, layer, g),
      });
    }
    const grads = params.map((p) => p.grad);
    clipGradNorm(grads, q.train.maxGradNorm);
    opt.update(grads, q.train.lr);
    losses.push(loss);
  };
  for (let i = 0; i < warmup; i++) await step();
  const t1 = performance.now();
  for (let i = 0; i < o.steps; i++) await step();
  const seconds = (performance.now() - t1) / 1000;
  const n = o.steps * sequences * T;
  return {
    seqlen: T, sequences, steps: o.steps, warmup, rank, alpha, params: params.reduce((a, p) => a + p.value.length, 0),
    tokens: n, seconds, tokensPerSecond: n / seconds, loadSeconds, losses,
  };
}

// ---- the command line ----

interface Case {
  readonly name: string;
  readonly label: string;
  /** the shapes bench/train_torch.py builds */
  readonly torchShape: Record<string, unknown>;
  readonly seqlen: number;
  readonly sequences: number;
  readonly steps: number;
  readonly warmup: number;
}

const BUNDLED_TORCH = { D: 128, F: 384, L: 2, H: 8, KVH: 4, HD: 16, V: 2048, tie: true, theta: 10000, eps: 1e-6, llama3Rope: false };
const L3 = LLAMA3_8B_2BLOCKS;
const l3Torch = (V: number) => ({ D: L3.hiddenSize, F: L3.intermediateSize, L: L3.numLayers, H: L3.numHeads, KVH: L3.numKvHeads, HD: L3.headDim, V, tie: false, theta: L3.ropeTheta, eps: L3.rmsNormEps, llama3Rope: true });

function cases(quick: boolean): Case[] {
  const b = quick ? { seqlen: 256, sequences: 2, steps: 2, warmup: 1 } : { seqlen: 256, sequences: 4, steps: 3, warmup: 1 };
  // one untimed-warm-up-free step: the 8B-shaped step is seconds to a minute on 2 cores (native kernels need no JIT warm-up)
  const l = quick ? { seqlen: 64, sequences: 1, steps: 1, warmup: 0 } : { seqlen: 128, sequences: 1, steps: 1, warmup: 0 };
  const all: Case[] = [
    { name: 'bundled-bf16', label: 'TinyStories-656K, bf16 base', torchShape: BUNDLED_TORCH, ...b },
    { name: 'bundled-nf4', label: 'TinyStories-656K, NF4+DQ base', torchShape: BUNDLED_TORCH, ...b },
    { name: '8b-v128256', label: 'LLaMA-3-8B shapes ×2 blocks, vocab 128256, bf16', torchShape: l3Torch(128256), ...l },
    { name: '8b-v32000', label: 'LLaMA-3-8B shapes ×2 blocks, vocab 32000, bf16', torchShape: l3Torch(32000), ...l },
  ];
  return quick ? all.filter((c) => c.name !== '8b-v128256') : all; // --quick: the blocks-dominated 8B case only
}

/** The checkpoint of a case (and a cleanup), quantizing or generating as it needs. */
async function caseModel(name: string, be: TrainableBackend): Promise<{ ckpt: ModelCheckpoint; done: () => void }> {
  if (name === 'bundled-bf16') return { ckpt: openModel(DEFAULT_MODEL), done: () => {} };
  if (name === 'bundled-nf4') {
    const out = join(mkdtempSync(join(tmpdir(), 'lowbit-trainbench-')), 'nf4');
    const base = RECIPES.qlora.base;
    await quantizeModel(openModel(DEFAULT_MODEL), be, { method: base.method, bits: base.bits, options: base.options, calib: 'none', out, reportErrors: false });
    return { ckpt: openModel(out), done: () => rmSync(join(out, '..'), { recursive: true, force: true }) };
  }
  const m = /^8b-v(\d+)$/.exec(name);
  if (!m) throw new Error(`unknown case '${name}' (bundled-bf16, bundled-nf4, 8b-v128256, 8b-v32000, 8b-vN)`);
  const vocab = Number(m[1]);
  const r = randomLlama3Blocks();
  const config: LlamaConfig = { ...LLAMA3_8B_2BLOCKS, vocabSize: vocab };
  return { ckpt: { ...r, config, weights: new LazyRandomSource(config) }, done: () => {} };
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** One case in this process: prints its lowbit JSON line. */
async function runOne(argv: string[]): Promise<void> {
  const name = flag(argv, '--one')!;
  const threads = Number(flag(argv, '--threads') ?? availableParallelism());
  const be = await createBackend({ backend: 'cpu', threads });
  if (!isTrainable(be)) throw new Error('the CPU backend is not trainable');
  const baseRss = process.memoryUsage().rss;
  const t0 = performance.now();
  const { ckpt, done } = await caseModel(name, be);
  const prepSeconds = (performance.now() - t0) / 1000;
  const num = (f: string, d: number) => Number(flag(argv, f) ?? d);
  const f = await benchTrainStep(be, ckpt, { seqlen: num('--seqlen', 256), sequences: num('--sequences', 1), steps: num('--steps', 1), warmup: num('--warmup', 1) });
  done();
  console.log(JSON.stringify({
    bench: 'train-step', case: name, backend: be.description, threads, ...f,
    seconds: +f.seconds.toFixed(3), tokensPerSecond: +f.tokensPerSecond.toFixed(1), losses: f.losses.map((l) => +l.toFixed(4)),
    setupSeconds: +(prepSeconds + f.loadSeconds).toFixed(2), loadSeconds: undefined,
    baseRssMiB: Math.round(baseRss / 2 ** 20), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  }));
}

type Json = Record<string, unknown>;

function lastJson(stdout: string | null): Json | undefined {
  const line = (stdout ?? '').trim().split('\n').pop() ?? '';
  try { return JSON.parse(line) as Json; } catch { return undefined; }
}

function why(r: ReturnType<typeof spawnSync>): string {
  return String(r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' | ');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--one')) return runOne(argv);
  const quick = argv.includes('--quick'), noTorch = argv.includes('--no-torch');
  const threads = Number(flag(argv, '--threads') ?? availableParallelism());
  const only = flag(argv, '--cases')?.split(',');
  const all = cases(quick).filter((c) => !only || only.includes(c.name));
  const py = noTorch ? null : torchPython();
  const self = fileURLToPath(import.meta.url);
  const torchCache = new Map<string, Json | string>();
  const rows: string[][] = [];
  console.log(`LoRA training step (r 64, alpha 16, all 7 linears; clip + AdamW), ${threads} threads${quick ? ', --quick' : ''}`);
  for (const c of all) {
    const size = ['--seqlen', c.seqlen, '--sequences', c.sequences, '--steps', c.steps, '--warmup', c.warmup].map(String);
    const r = spawnSync(process.execPath, ['--max-old-space-size=20000', '--expose-gc', self, '--one', c.name, '--threads', String(threads), ...size], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const lb = lastJson(r.stdout);
    if (lb) console.log(JSON.stringify(lb)); else console.log(JSON.stringify({ bench: 'train-step', case: c.name, error: why(r) }));
    let torch: Json | string = noTorch ? 'skipped (--no-torch)' : "absent (python3 -c 'import torch' fails)";
    const key = JSON.stringify([c.torchShape, size]);
    if (py && torchCache.has(key)) torch = torchCache.get(key)!;
    else if (py) {
      const tr = spawnSync(py, [join(PACKAGE_ROOT, 'bench', 'train_torch.py'), JSON.stringify({ ...c.torchShape, threads, T: c.seqlen, seqs: c.sequences, steps: c.steps, warmup: c.warmup, r: 64, alpha: 16 })], { encoding: 'utf8', maxBuffer: 1 << 26 });
      torch = lastJson(tr.stdout) ?? `failed: ${why(tr)}`;
      torchCache.set(key, torch);
      console.log(JSON.stringify(typeof torch === 'string' ? { bench: 'train-step-torch', error: torch } : torch));
    }
    const tt = typeof torch === 'string' ? undefined : torch;
    const tps = (x: Json | undefined, k: string) => (x && typeof x[k] === 'number' ? (x[k] as number) : undefined);
    const lt = tps(lb, 'tokensPerSecond'), ptt = tps(tt, 'tokensPerSecond');
    rows.push([
      c.label, `${c.steps}×${c.sequences}×${c.seqlen}`,
      lt?.toFixed(1) ?? 'failed', String(tps(lb, 'peakRssMiB') ?? '-'),
      ptt?.toFixed(1) ?? (typeof torch === 'string' ? torch.split(' ')[0]! : '-'), String(tps(tt, 'peakRssMiB') ?? '-'),
      lt && ptt ? (lt / ptt).toFixed(2) : '-',
    ]);
  }
  const head = ['case', 'steps×seqs×T', 'lowbit tok/s', 'lowbit peak MiB', 'torch tok/s', 'torch peak MiB', 'lowbit/torch'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => '  ' + r.map((s, i) => (i === 0 ? s.padEnd(w[i]!) : s.padStart(w[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log('  tok/s: timed steps only (forward + backward + clip + AdamW); peak: process RSS high-water mark (getrusage maxrss), baseline and weights included');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
  process.exit(0);
}
