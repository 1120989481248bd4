/**
 * Seeded weights for the backend parity suites (parity.test.ts, gradParity.test.ts, kindDecoders.test.ts,
 * quipDevice.test.ts): float weights in each stored dtype, random codes on a quantization grid, a kind layer
 * over a dense matrix, and a helper that runs one op, checks its guard words and frees what it made.
 */
import type { Backend, BTensor } from '../../src/backend/backend.js';
import { WebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeHalf } from '../../src/tensor/codecs.js';
import type { KindLayer } from '../../src/tensor/packed.js';
import { randF32, rng } from './kernelCases.js';

/** A seeded weight of `shape` uploaded in its stored dtype. */
export function weight(be: Backend, dtype: 'f32' | 'f16' | 'bf16', shape: number[], seed: number, scale = 1): BTensor {
  const v = randF32(shape.reduce((a, b) => a * b, 1), seed, scale);
  return be.uploadWeight(dtype === 'f32' ? new Tensor('f32', shape, v) : new Tensor(dtype, shape, encodeHalf(dtype, v)));
}

/** Random codes on a `bits` grid with sequential or shuffled (act-order) groups, for GPTQ and AWQ packing. */
export function randomGrid(N: number, K: number, bits: number, group: number, seed: number, actOrder = false) {
  const r = rng(seed), maxq = 2 ** bits - 1, groups = Math.ceil(K / group);
  const gIdx = Int32Array.from({ length: K }, (_, c) => Math.floor(c / group));
  if (actOrder) for (let c = K - 1; c > 0; c--) { const j = Math.floor(r() * (c + 1)); [gIdx[c], gIdx[j]] = [gIdx[j]!, gIdx[c]!]; }
  return {
    codes: new Uint8Array(N * K).map(() => Math.floor(r() * (maxq + 1))), gIdx,
    zeros: new Uint8Array(N * groups).map(() => Math.floor(r() * (maxq + 1))),
    scales: new Float32Array(N * groups).map(() => (r() - 0.3) * 0.05),
  };
}

/** A kind layer over a dense matrix, optionally with an input transform (x · 2) as QuIP-like kinds have. */
export function fakeKind(N: number, K: number, seed: number, transform: boolean): KindLayer {
  const core = randF32(N * K, seed);
  return {
    kind: 'test', rows: N, cols: K, coreRows: N, coreCols: K, parameters: new Float32Array(0),
    decodeRows: (r0, nr, out) => out.set(core.subarray(r0 * K, (r0 + nr) * K)),
    ...(transform ? { transformInput: (x: Float32Array) => x.map((v) => v * 2) } : {}),
  };
}

/** Runs f on the backend, reads the result (guard words checked) and frees what it made. */
export async function run(be: Backend, inputs: BTensor[], f: () => BTensor): Promise<Float32Array> {
  const y = f();
  const out = await be.read(y);
  if (be instanceof WebGpuBackend) await be.checkGuards(y);
  for (const x of [y, ...inputs]) be.free(x);
  return out;
}

/** The n×n identity, row-major. */
export const eye = (n: number) => { const a = new Float32Array(n * n); for (let i = 0; i < n; i++) a[i * n + i] = 1; return a; };
