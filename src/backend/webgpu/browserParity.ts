/**
 * The op-parity check that web/index.html runs in a browser tab: the same seeded cases on the CPU
 * backend (js kernels, float64 accumulation: the reference, computed in the page) and on the WebGPU
 * backend through the tab's navigator.gpu, compared by NMSE with test/backend/parity.test.ts's
 * tolerances. Browser-safe: it imports no node:* module (nor does anything it imports; the optional
 * `webgpu` package is only imported by capabilities.ts when there is no navigator.gpu and the runtime
 * is Node). test/backend/browserParity.test.ts opens the page in headless Chromium.
 */
import type { Backend, BTensor } from '../backend.js';
import { CpuBackend } from '../cpu/cpuBackend.js';
import { jsKernels } from '../cpu/kernels/js.js';
import { Tensor } from '../../tensor/tensor.js';
import { encodeHalf } from '../../tensor/codecs.js';
import { createWebGpuBackend } from './webgpuBackend.js';
import { mulberry32 } from '../../tensor/mulberry32.js';

/** NMSE allowed against the CPU backend: test/backend/parity.test.ts's TOLERANCE for these ops. */
export const BROWSER_TOLERANCE = Object.freeze({
  'linear f32': 1e-10, 'linear f16': 1e-10, 'linear bf16': 1e-10, rmsnorm: 1e-12, rope: 1e-13, attention: 1e-10, siluMul: 1e-12, add: 0,
});
export type ParityOp = keyof typeof BROWSER_TOLERANCE;

export interface ParityCase {
  readonly op: ParityOp;
  readonly what: string;
  readonly n: number;
  /** NMSE over the finite outputs; Infinity when a non-finite value differs in position or kind */
  readonly nmse: number;
  readonly tolerance: number;
  readonly pass: boolean;
}
export type ParityReport =
  | { ok: true; adapter: string; runtime: string; cases: ParityCase[]; pass: boolean }
  | { ok: false; reason: string };

const rng = mulberry32;
function randF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/** Non-finite values must match in position and kind (else Infinity), then NMSE over the finite ones. */
export function nmse(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)))) return Infinity;
      continue;
    }
    num += (g - w) ** 2;
    den += w * w;
  }
  return den === 0 ? num : num / den;
}

type Run = (be: Backend) => { inputs: BTensor[]; y: BTensor };
const up = (be: Backend, n: number, seed: number, shape: number[], scale = 1) => be.upload(randF32(n, seed, scale), shape);
function weight(be: Backend, dtype: 'f32' | 'f16' | 'bf16', shape: number[], seed: number): BTensor {
  const v = randF32(shape.reduce((a, b) => a * b, 1), seed);
  return be.uploadWeight(dtype === 'f32' ? new Tensor('f32', shape, v) : new Tensor(dtype, shape, encodeHalf(dtype, v)));
}

/** The fixed cases: small shapes (SwiftShader and lavapipe are slow), seeds fixed. */
function cases(): [ParityOp, string, Run][] {
  const out: [ParityOp, string, Run][] = [];
  for (const dt of ['f32', 'f16', 'bf16'] as const) {
    for (const [M, N, K] of [[3, 17, 33], [5, 64, 300]] as const) {
      out.push([`linear ${dt}`, `${M}x${N}x${K}`, (be) => {
        const x = up(be, M * K, M + K, [M, K]), w = weight(be, dt, [N, K], N * 3 + K);
        return { inputs: [x, w], y: be.linear(x, w) };
      }]);
    }
  }
  out.push(['rmsnorm', '[6, 130]', (be) => {
    const x = up(be, 6 * 130, 4, [6, 130], 3), g = weight(be, 'f32', [130], 5);
    return { inputs: [x, g], y: be.rmsnorm(x, g, 1e-5) };
  }]);
  const T = 5, H = 4, KVH = 2, hd = 8;
  out.push(['rope', `${T}x${H}x${hd}`, (be) => {
    const x = up(be, T * H * hd, 31, [T, H * hd]), c = up(be, T * hd / 2, 32, [T, hd / 2]), s = up(be, T * hd / 2, 33, [T, hd / 2]);
    return { inputs: [x, c, s], y: be.rope(x, H, hd, c, s) };
  }]);
  for (const [Tq, S, offset] of [[5, 5, 0], [3, 9, 6]] as const) {
    out.push(['attention', `T${Tq} S${S} offset ${offset} (GQA ${H}/${KVH})`, (be) => {
      const q = up(be, Tq * H * hd, 41, [Tq, H * hd], 2), k = up(be, S * KVH * hd, 42, [S, KVH * hd], 2), v = up(be, S * KVH * hd, 43, [S, KVH * hd]);
      return { inputs: [q, k, v], y: be.attention(q, k, v, { nHeads: H, nKvHeads: KVH, headDim: hd, offset }) };
    }]);
  }
  out.push(['siluMul', '[9, 70]', (be) => { const g = up(be, 630, 51, [9, 70], 6), u = up(be, 630, 52, [9, 70]); return { inputs: [g, u], y: be.siluMul(g, u) }; }]);
  out.push(['add', '[9, 70]', (be) => { const a = up(be, 630, 53, [9, 70]), b = up(be, 630, 54, [9, 70]); return { inputs: [a, b], y: be.add(a, b) }; }]);
  return out;
}

async function result(be: Backend, run: Run): Promise<Float32Array> {
  const { inputs, y } = run(be);
  const out = await be.read(y);
  be.free(y);
  for (const x of inputs) be.free(x);
  return out;
}

/** Runs every case on both backends; `{ ok: false, reason }` when there is no WebGPU adapter. */
export async function runBrowserParity(): Promise<ParityReport> {
  const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
  if (!made.ok) return { ok: false, reason: made.reason };
  const gpu = made.backend, cpu = new CpuBackend(jsKernels, 'js, 1 thread');
  const out: ParityCase[] = [];
  for (const [op, what, run] of cases()) {
    const want = await result(cpu, run), got = await result(gpu, run);
    const e = nmse(got, want), tolerance = BROWSER_TOLERANCE[op];
    out.push({ op, what, n: want.length, nmse: e, tolerance, pass: e <= tolerance });
  }
  return { ok: true, adapter: gpu.caps.adapterName, runtime: gpu.caps.runtime, cases: out, pass: out.every((c) => c.pass) };
}
