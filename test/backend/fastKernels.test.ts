/**
 * The fast kernels against the reference kernels and the CPU backend. Attention (the tiled,
 * flash-style kernel of attention.wgsl.ts) does the reference's arithmetic in the same order, so
 * the two must give the same bits; it is checked across query blocks and key tiles, with GQA,
 * offsets (a KV cache) and several head sizes. The fast linear kernels
 * (kernels/linearFast.wgsl.ts: the tiled GEMM and the small-M GEMV) are checked against
 * the reference kernel and the CPU backend, on the same seeded cases: shapes that are not multiples
 * of any tile (M = 1, M ≤ 8 for the GEMV, K below the K step, K not a multiple of 4 for the scalar
 * x loads, 64- and 128-row tiles), every dense weight dtype, GPTQ at 2/3/4/8 bits with act-order,
 * AWQ, and a weight split in row parts. Each output must be within the parity suite's NMSE of the
 * CPU (float64 accumulation), and fast and reference within the float32 summation bound of each
 * other, element by element: |fast − ref| ≤ 2·(K + 2)·2⁻²⁴·Σ_k |x_k·w_k|. Guard words after every
 * output; the fast kernels give the same bits run to run. Skipped, with the reason, without an adapter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, BTensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { packGptq } from '../../src/tensor/gptqPack.js';
import { packAwq } from '../../src/tensor/awqPack.js';
import type { PackedWeight } from '../../src/tensor/packed.js';
import { assertClose, assertSameBits, randF32 } from './kernelCases.js';
import { randomGrid, weight } from './weightCases.js';
import { TOLERANCE, type Op } from './tolerance.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await Promise.all([
  createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true, kernels: 'reference' }),
  createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true, kernels: 'fast' }),
]);
const [ref, fast] = made.map((m) => (m.ok ? m.backend : undefined));
const skip = made[0]!.ok ? false : `WebGPU unavailable: ${made[0]!.reason}`;

/**
 * [M, N, K]: GEMV (M ≤ 8: 1, 3, 8), tiles of 64 and 128 rows/columns with ragged edges, K below the
 * K step (5, 1), K % 4 ≠ 0 (scalar x loads) and = 0 (vec4 loads).
 */
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 37, 300], [3, 17, 33], [8, 70, 129], [9, 65, 64], [17, 31, 65], [64, 64, 64],
  [65, 129, 130], [129, 7, 5], [130, 200, 16], [200, 130, 260],
];

type Make = (be: Backend) => BTensor;

/** y = x·Wᵀ on a backend, its guard words checked on WebGPU; x and w freed. */
async function linearOn(be: Backend, M: number, K: number, seed: number, makeW: Make): Promise<Float32Array> {
  const x = be.upload(randF32(M * K, seed), [M, K]), w = makeW(be);
  const y = be.linear(x, w);
  const out = await be.read(y);
  if (be !== cpu) await (be as WebGpuBackend).checkGuards(y);
  for (const tsr of [x, w, y]) be.free(tsr);
  return out;
}

/** Σ_k |x[m, k]·w[n, k]| per output, in float64 (the scale of the float32 summation error). */
async function absDot(M: number, N: number, K: number, seed: number, makeW: Make): Promise<Float64Array> {
  const x = randF32(M * K, seed), wt = makeW(cpu), w = await cpu.read(wt);
  cpu.free(wt);
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Math.abs(x[m * K + k]! * w[n * K + k]!);
      out[m * N + n] = s;
    }
  }
  return out;
}

/** One case: fast and reference against the CPU, against each other, and fast run to run. */
async function agree(op: Op, what: string, M: number, N: number, K: number, seed: number, makeW: Make): Promise<void> {
  await agreeOn(op, what, (be) => linearOn(be, M, K, seed, makeW), K, await absDot(M, N, K, seed, makeW));
}

/**
 * `run` on the CPU, the reference and the fast kernels: both within `nmse` (default: the table's) of
 * the CPU, within 2·(J + 2)·2⁻²⁴·scale[i] of each other (J: the reduction length), fast the same bits twice.
 */
async function agreeOn(op: Op | 'gemmT', what: string, run: (be: Backend) => Promise<Float32Array>, J: number, scale: Float64Array): Promise<void> {
  const nmse = op === 'gemmT' ? 1e-10 : TOLERANCE[op]; // gradParity.test.ts's tolerance for linearT and matmulTN
  const want = await run(cpu), r = await run(ref!), f = await run(fast!);
  assertClose(r, want, nmse, `reference ${op} ${what}`);
  assertClose(f, want, nmse, `fast ${op} ${what}`);
  const u = 2 ** -24;
  for (let i = 0; i < f.length; i++) {
    const bound = 2 * (J + 2) * u * scale[i]!;
    assert.ok(Math.abs(f[i]! - r[i]!) <= bound, `${op} ${what}: element ${i}: fast ${f[i]} vs reference ${r[i]}, beyond the float32 bound ${bound.toExponential(2)}`);
  }
  assertSameBits(await run(fast!), f, `fast ${op} ${what} run to run`);
}

/** out[R, C] scale Σ_j |A[r, j]·B[c, j]| for row-major A [R, J] and B [C, J], float64. */
function absProducts(A: Float32Array, B: Float32Array, R: number, C: number, J: number): Float64Array {
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) {
    let s = 0;
    for (let j = 0; j < J; j++) s += Math.abs(A[r * J + j]! * B[c * J + j]!);
    out[r * C + c] = s;
  }
  return out;
}

/** [R, C] → [C, R]. */
function transpose(a: Float32Array, R: number, C: number): Float32Array {
  const t = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c]!;
  return t;
}

describe('fast kernels vs the reference and the CPU', { skip }, () => {
  it('attention: tiled = reference bit for bit, both within the CPU tolerance', async () => {
    // [T, S, offset, heads, KV heads, head size]: blocks of 64 query rows, tiles of 2048 / HD keys (at most 64)
    const cases: [number, number, number, number, number, number][] = [
      [150, 150, 0, 4, 2, 16], [70, 100, 30, 2, 1, 64], [1, 100, 99, 4, 4, 8], [65, 65, 0, 2, 2, 128], [3, 9, 6, 4, 2, 8],
    ];
    for (const [T, S, offset, H, KVH, hd] of cases) {
      const what = `T${T} S${S} offset ${offset} H${H}/${KVH} hd${hd}`;
      const run = async (be: Backend) => {
        const q = be.upload(randF32(T * H * hd, T + hd, 2), [T, H * hd]);
        const k = be.upload(randF32(S * KVH * hd, S + hd, 2), [S, KVH * hd]), v = be.upload(randF32(S * KVH * hd, S + 1), [S, KVH * hd]);
        const y = be.attention(q, k, v, { nHeads: H, nKvHeads: KVH, headDim: hd, offset });
        const out = await be.read(y);
        if (be !== cpu) await (be as WebGpuBackend).checkGuards(y);
        for (const tsr of [q, k, v, y]) be.free(tsr);
        return out;
      };
      const want = await run(cpu), r = await run(ref!), f = await run(fast!);
      assertClose(r, want, TOLERANCE.attention, `reference attention ${what}`);
      assertClose(f, want, TOLERANCE.attention, `fast attention ${what}`);
      assertSameBits(f, r, `attention ${what}: tiled vs reference`);
    }
  });

  it('dense f32, f16 and bf16 weights on ragged shapes (GEMV and tiled)', async () => {
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      for (const [M, N, K] of SHAPES) {
        await agree(`linear ${dt}`, `${M}x${N}x${K}`, M, N, K, M + 3 * K, (be) => weight(be, dt, [N, K], N * 7 + K));
      }
    }
  });

  it('GPTQ (2, 3, 4, 8 bits; act-order) and AWQ codes', async () => {
    const gptq: [number, number, number, number, boolean, number][] = [
      [4, 33, 100, 32, false, 70], [3, 130, 64, 32, true, 5], [2, 5, 31, 31, false, 2], [8, 17, 40, 8, true, 1], [4, 129, 256, 128, true, 130],
    ];
    for (const [bits, N, K, group, act, M] of gptq) {
      const q: PackedWeight = packGptq(randomGrid(N, K, bits, group, bits * 7 + N, act), N, K, bits).tensors;
      await agree('linear gptq', `W${bits} g${group}${act ? ' act-order' : ''} ${M}x${N}x${K}`, M, N, K, 11 + M, (be) => be.uploadQuantized(q));
    }
    for (const [N, K, group, M] of [[16, 64, 32, 3], [136, 96, 16, 70]] as const) {
      const q = packAwq(randomGrid(N, K, 4, group, N + K), N, K, group);
      await agree('linear awq', `W4 g${group} ${M}x${N}x${K}`, M, N, K, 12 + M, (be) => be.uploadQuantized(q));
    }
  });

  it('backward GEMMs (linearT = dy·W for every weight kind, matmulTN = aᵀ·b) on ragged shapes', async () => {
    type Grad = Backend & { linearT(dy: BTensor, w: BTensor): BTensor; matmulTN(a: BTensor, b: BTensor): BTensor };
    const read = async (be: Backend, y: BTensor, inputs: BTensor[]) => {
      const out = await be.read(y);
      if (be !== cpu) await (be as WebGpuBackend).checkGuards(y);
      for (const tsr of [...inputs, y]) be.free(tsr);
      return out;
    };
    const weights: [string, (N: number, K: number) => Make][] = [
      ['f32', (N, K) => (be) => weight(be, 'f32', [N, K], N + K)],
      ['bf16', (N, K) => (be) => weight(be, 'bf16', [N, K], N + K)],
      ['gptq W3 act-order', (N, K) => { const q = packGptq(randomGrid(N, K, 3, 32, N, true), N, K, 3).tensors; return (be) => be.uploadQuantized(q); }],
      ['awq', (N, K) => { const q = packAwq(randomGrid(N, K, 4, 16, N + K), N, K, 16); return (be) => be.uploadQuantized(q); }],
    ];
    // [M, N, K]: dy [M, N], W [N, K], dx [M, K]
    for (const [M, N, K] of [[1, 16, 33], [70, 136, 48], [130, 40, 200], [9, 200, 5]] as const) {
      for (const [name, make] of weights) {
        if (name === 'awq' && (N % 8 !== 0 || K % 16 !== 0)) continue;
        const makeW = make(N, K), dy = randF32(M * N, M + N);
        const wT = transpose(await (async () => { const w = makeW(cpu); const v = await cpu.read(w); cpu.free(w); return v; })(), N, K);
        await agreeOn('gemmT', `linearT ${name} ${M}x${N}x${K}`, (be) => {
          const d = be.upload(dy, [M, N]), w = makeW(be);
          return read(be, (be as Grad).linearT(d, w), [d, w]);
        }, N, absProducts(dy, wT, M, K, N));
      }
      const a = randF32(M * N, 3 * M), b = randF32(M * K, 5 * K);
      await agreeOn('gemmT', `matmulTN ${M}x${N}x${K}`, (be) => {
        const ta = be.upload(a, [M, N]), tb = be.upload(b, [M, K]);
        return read(be, (be as Grad).matmulTN(ta, tb), [ta, tb]);
      }, M, absProducts(transpose(a, M, N), transpose(b, M, K), N, K, M));
    }
  });

  it('a weight in row parts (lowered binding limit): each part writes its own columns', async () => {
    const small = await Promise.all([
      createWebGpuBackend(jsKernels, 'js', { maxBinding: 4096, guardWords: true, kernels: 'reference' }),
      createWebGpuBackend(jsKernels, 'js', { maxBinding: 4096, guardWords: true, kernels: 'fast' }),
    ]);
    const [sr, sf] = small.map((m) => (m.ok ? m.backend : undefined));
    for (const [M, N, K] of [[2, 70, 33], [12, 80, 40]] as const) { // GEMV and tiled; x and y fit one 4 KiB binding
      for (const dt of ['f32', 'bf16'] as const) {
        const makeW: Make = (be) => weight(be, dt, [N, K], N + K);
        const want = await linearOn(cpu, M, K, 21, makeW);
        const r = await linearOn(sr!, M, K, 21, makeW), f = await linearOn(sf!, M, K, 21, makeW);
        assertClose(r, want, TOLERANCE[`linear ${dt}`], `reference, parts, ${dt} ${M}x${N}x${K}`);
        assertClose(f, want, TOLERANCE[`linear ${dt}`], `fast, parts, ${dt} ${M}x${N}x${K}`);
      }
    }
  });
});
