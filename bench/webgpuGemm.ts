/**
 * WebGPU `linear` throughput (y[M, N] = x[M, K]·w[N, K]ᵀ, 2·M·N·K flops), reference kernels next to
 * the fast ones, per stored weight dtype: f32, bf16, f16 (decoded from u32 words in the shader),
 * GPTQ W4 g128 and AWQ W4 g128 codes, on whatever adapter exists (Mesa's lavapipe on a machine
 * without a GPU). Prints; asserts nothing. Each figure is the best of three timed runs after a
 * warm-up; a run is `reps` linears (about half a second of work). Time is the device's
 * (timestamp-query, begin to end of the compute passes) when the adapter has it, else the wall
 * clock around the run and one small read back; the header says which. Without an adapter it
 * prints why and exits 0. `--variants all` (or a list of LOWBIT_WEBGPU_GEMM designs) times the fast
 * kernels' GEMM designs side by side instead, one row per size and dtype, and names the fastest (`all`
 * leaves out, with the reason, a design the device cannot run: `shuffle` without subgroups).
 *   node dist/bench/webgpuGemm.js [--tokens M|square] [--sizes 256,1024] [--dtypes f32,bf16,f16,gptq,awq] [--variants all|tiled,prefetch,...]
 */
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuAvailability, type WebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';
import { UsageError } from '../src/errors.js';
import { GEMM_CHOICES, gemmChoiceOf, type GemmChoice } from '../src/backend/webgpu/capabilities.js';
import { tuneNote } from '../src/backend/webgpu/gemmTune.js';
import type { BTensor } from '../src/backend/backend.js';
import { Tensor } from '../src/tensor/tensor.js';
import { encodeHalf } from '../src/tensor/codecs.js';
import { packGptq } from '../src/tensor/gptqPack.js';
import { packAwq } from '../src/tensor/awqPack.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const tokens = arg('--tokens', '128');
const sizes = arg('--sizes', '256,1024').split(',').map(Number);
const dtypes = arg('--dtypes', 'f32,bf16,f16,gptq,awq').split(',');
const variantsArg = arg('--variants', '');
const design = (v: string): GemmChoice => {
  const c = gemmChoiceOf(v);
  if (!c || c === 'auto') throw new Error(`--variants: '${v}' is not a GEMM design (${GEMM_CHOICES.join(', ')}, or all)`);
  return c;
};
const variants: GemmChoice[] = variantsArg === 'all' ? [...GEMM_CHOICES] : variantsArg ? variantsArg.split(',').map(design) : [];
const GROUP = 128, BITS = 4;

/** Deterministic values in [−0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (((i + seed) * 7919) % 1000) / 1000 - 0.5);
}

function grid(N: number, K: number) {
  const groups = Math.ceil(K / GROUP), maxq = 2 ** BITS - 1;
  return {
    codes: Uint8Array.from({ length: N * K }, (_, i) => (i * 31) % (maxq + 1)),
    gIdx: Int32Array.from({ length: K }, (_, c) => Math.floor(c / GROUP)),
    zeros: Uint8Array.from({ length: N * groups }, (_, i) => i % (maxq + 1)),
    scales: Float32Array.from({ length: N * groups }, (_, i) => 0.01 + (i % 7) * 0.001),
  };
}

/** The host weight of `dtype` [n, n], made once and uploaded to each backend. */
function hostWeight(dtype: string, n: number): (be: WebGpuBackend) => BTensor {
  const w32 = () => values(n * n, 2);
  switch (dtype) {
    case 'f32': { const t = new Tensor('f32', [n, n], w32()); return (be) => be.uploadWeight(t); }
    case 'bf16': case 'f16': { const t = new Tensor(dtype, [n, n], encodeHalf(dtype, w32())); return (be) => be.uploadWeight(t); }
    case 'gptq': { const q = packGptq(grid(n, n), n, n, BITS).tensors; return (be) => be.uploadQuantized(q); }
    case 'awq': { const q = packAwq(grid(n, n), n, n, GROUP); return (be) => be.uploadQuantized(q); }
    default: throw new Error(`unknown dtype ${dtype}`);
  }
}

/** Three significant digits, whole numbers from 100 on. */
const fmt = (g: number): string => (g >= 100 ? g.toFixed(0) : g.toPrecision(3));

/** Seconds per linear: best of three runs of `reps`, reps chosen from the first run. */
async function time(be: WebGpuBackend, x: BTensor, w: BTensor, device: boolean): Promise<number> {
  const warm = be.linear(x, w);
  await be.read(warm);
  be.free(warm);
  let best = Infinity, reps = 1;
  for (let r = 0; r < 3; r++) {
    if (device) be.timePasses();
    const t0 = performance.now();
    const ys: BTensor[] = [];
    for (let i = 0; i < reps; i++) ys.push(be.linear(x, w));
    const dt = device ? await be.gpuSeconds() : (await be.read(ys.at(-1)!), (performance.now() - t0) / 1000);
    for (const y of ys) be.free(y);
    best = Math.min(best, dt / reps);
    if (r === 0) reps = Math.max(1, Math.min(64, Math.round(0.5 / Math.max(dt, 1e-5))));
  }
  return best;
}

/** GFLOP/s of one linear [M, n]·[n, n]ᵀ on `be`, or '–' with the reason printed (e.g. above the binding limit). */
async function gflops(be: WebGpuBackend, M: number, n: number, dtype: string, makeW: (be: WebGpuBackend) => BTensor, device: boolean): Promise<string> {
  try {
    const x = be.upload(values(M * n, 1), [M, n]);
    const w = makeW(be);
    const g = fmt(2 * M * n * n / (await time(be, x, w, device)) / 1e9);
    be.free(w);
    be.free(x);
    return g;
  } catch (e) {
    console.log(`(N = K = ${n}, ${dtype}: ${(e as Error).message})`);
    return '–';
  }
}

const tokensOf = (n: number) => (tokens === 'square' ? n : Number(tokens));
const mShape = tokens === 'square' ? 'N = K' : `${tokens} tokens`;

/**
 * The GEMM designs side by side: one backend per design, the same host weights uploaded to each. A design
 * the device cannot run (`shuffle` without subgroups) is left out with the reason when `all` names it.
 */
async function compareDesigns(): Promise<void> {
  const made: { gemm: GemmChoice; be: WebGpuAvailability }[] = [];
  for (const gemm of [...variants]) {
    try {
      made.push({ gemm, be: await createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: 'fast', gemm }) });
    } catch (e) {
      if (!(e instanceof UsageError) || variantsArg !== 'all') throw e;
      console.log(`(${gemm} left out: ${e.message})`);
      variants.splice(variants.indexOf(gemm), 1);
    }
  }
  if (!made[0]!.be.ok) {
    console.log(`webgpu GEMM designs: no adapter (${made[0]!.be.reason}); nothing measured`);
    return;
  }
  const bes = made.map((m) => (m.be as { backend: WebGpuBackend }).backend);
  const device = bes[0]!.timePasses() && (await bes[0]!.gpuSeconds(), true);
  const caps = bes[0]!.caps;
  console.log(`webgpu linear GFLOP/s per GEMM design (LOWBIT_WEBGPU_GEMM), fast kernels, M = ${mShape}, on ${caps.adapterName} (${caps.runtime}); workgroup memory ${caps.limits.maxComputeWorkgroupStorageSize} bytes; ${caps.subgroups ? `subgroups of ${caps.subgroups.minSize}..${caps.subgroups.maxSize} (shuffle: ${caps.subgroups.shuffleLanes} lanes)` : 'no subgroups'}; ${device ? 'device time (timestamp-query)' : 'wall clock around a read'}`);
  console.log(`| N = K | dtype | ${variants.join(' | ')} | fastest |`);
  console.log(`| --- | --- |${variants.map(() => ' --- |').join('')} --- |`);
  for (const n of sizes) {
    for (const dtype of dtypes) {
      const makeW = hostWeight(dtype, n);
      const cells: string[] = [];
      for (const be of bes) cells.push(await gflops(be, tokensOf(n), n, dtype, makeW, device));
      const nums = cells.map(Number), finite = nums.filter(Number.isFinite);
      console.log(`| ${n} | ${dtype} | ${cells.join(' | ')} | ${finite.length ? variants[nums.indexOf(Math.max(...finite))] : '–'} |`);
    }
  }
}

/** Reference / fast kernels (the fast ones in the LOWBIT_WEBGPU_GEMM design, default tiled). */
async function compareKernels(): Promise<void> {
  const ref = await createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: 'reference' });
  const fast = await createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: 'fast' });
  if (!ref.ok || !fast.ok) {
    console.log(`webgpu GEMM: no adapter (${ref.ok ? '' : ref.reason}); nothing measured`);
    return;
  }
  const device = ref.backend.timePasses() && (await ref.backend.gpuSeconds(), true);
  const be = fast.backend;
  console.log(`webgpu linear GFLOP/s, reference / fast kernels, M = ${mShape}, on ${be.caps.adapterName} (${be.caps.runtime}); ${device ? 'device time (timestamp-query)' : 'wall clock around a read'}; ` +
    `fast GEMM design ${be.caps.gemmTune ? tuneNote(be.caps.gemmTune) : `${be.caps.gemm} (LOWBIT_WEBGPU_GEMM or the adapter's default)`}`);
  console.log(`| N = K | ${dtypes.join(' | ')} |`);
  console.log(`| --- |${dtypes.map(() => ' --- |').join('')}`);
  for (const n of sizes) {
    const cells: string[] = [];
    for (const dtype of dtypes) {
      const makeW = hostWeight(dtype, n);
      const pair: string[] = [];
      for (const b of [ref.backend, fast.backend]) pair.push(await gflops(b, tokensOf(n), n, dtype, makeW, device));
      cells.push(pair.join(' / '));
    }
    console.log(`| ${n} | ${cells.join(' | ')} |`);
  }
}

await (variants.length > 0 ? compareDesigns() : compareKernels());
