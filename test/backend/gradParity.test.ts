/**
 * The training backward ops (GradOps) on WebGPU against the CPU backend (js kernels, the
 * reference), the parity suite's pattern: seeded small inputs, NMSE per op in GRAD_TOLERANCE (NaN
 * and inf positions first, by assertClose), guard words after every WebGPU output. Skipped with the
 * reason when there is no WebGPU adapter. Sizes are small: lavapipe runs at about 2 GFLOP/s.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isTrainable, type BTensor, type TrainableBackend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { WebGpuBackend, createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { packGptq } from '../../src/tensor/gptqPack.js';
import { packAwq } from '../../src/tensor/awqPack.js';
import { mergeZeroShift } from '../../src/tensor/gptqZeroShift.js';
import type { PackedWeight } from '../../src/tensor/packed.js';
import { assertClose, randF32 } from './kernelCases.js';
import { fakeKind, randomGrid, weight } from './weightCases.js';

/**
 * NMSE allowed against the CPU backend. The products (linearT, matmulTN) and attention's backward
 * accumulate in float32 where the host accumulates in float64 (matmulTN and linearT through the
 * js gemm); rmsnormBackward's two row sums are float32; exp is the GPU's. mul is one correctly
 * rounded float32 product on both sides, hence exact; scale is within one ulp (the host multiplies
 * by the float64 s, the device by its two-float split, whose fma lavapipe may not fuse).
 * Measured on lavapipe (Mesa 25): about 1e-14 for the products, attention and rmsnormBackward,
 * 3e-15 for scale, 5e-16 for crossEntropyGrad: the tolerances leave two to four decades.
 */
const GRAD_TOLERANCE = Object.freeze({
  'linearT f32': 1e-10, 'linearT f16': 1e-10, 'linearT bf16': 1e-10, 'linearT gptq': 1e-10, 'linearT gptq float zeros': 1e-10,
  'linearT awq': 1e-10, 'linearT kind': 1e-10, matmulTN: 1e-10, rmsnormBackward: 1e-11, attentionBackward: 1e-10,
  siluMulBackward: 1e-12, scale: 1e-14, mul: 0, crossEntropyGrad: 1e-12,
});
type Op = keyof typeof GRAD_TOLERANCE;

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true });
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# gradParity: WebGPU cases skipped: ${made.reason}`);

/** Worst NMSE seen per op (printed at the end, for the tolerance table's notes). */
const worst = new Map<string, number>();
function nmse(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) { if (Number.isFinite(want[i]!)) { num += (got[i]! - want[i]!) ** 2; den += want[i]! ** 2; } }
  return den === 0 ? num : num / den;
}

/** Runs the same function of a backend on both and compares every output. */
async function same(op: Op, what: string, run: (be: TrainableBackend) => Promise<Float32Array[]>): Promise<void> {
  const want = await run(cpu), got = await run(gpu!);
  assert.equal(got.length, want.length);
  want.forEach((w, i) => {
    worst.set(op, Math.max(worst.get(op) ?? 0, nmse(got[i]!, w)));
    assertClose(got[i]!, w, GRAD_TOLERANCE[op], `${op} ${what}${want.length > 1 ? ` (output ${i})` : ''}`);
  });
}

/** Reads the outputs (checking guard words on WebGPU) and frees outputs and inputs. */
async function outs(be: TrainableBackend, inputs: BTensor[], ys: BTensor[]): Promise<Float32Array[]> {
  const r: Float32Array[] = [];
  for (const y of ys) {
    r.push(await be.read(y));
    if (be instanceof WebGpuBackend) await be.checkGuards(y);
  }
  for (const x of [...ys, ...inputs]) be.free(x);
  return r;
}
const up = (be: TrainableBackend, shape: number[], seed: number, scale = 1) => be.upload(randF32(shape.reduce((a, b) => a * b, 1), seed, scale), shape);




async function linearTBy(be: TrainableBackend, q: PackedWeight, M: number, N: number, seed: number): Promise<Float32Array[]> {
  const dy = up(be, [M, N], seed), w = be.uploadQuantized(q);
  return outs(be, [dy, w], [be.linearT(dy, w)]);
}

/** [M, N, K]: dy[M, N] · W[N, K] */
const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 17, 33], [17, 31, 65], [5, 70, 130], [66, 9, 16]];

describe('training backward ops: WebGPU vs CPU', { skip }, () => {
  it('the WebGPU backend is trainable', () => assert.ok(isTrainable(gpu!)));

  it('linearT with f32, f16 and bf16 weights, and matmulTN, on awkward shapes', async () => {
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      for (const [M, N, K] of SHAPES) {
        await same(`linearT ${dt}`, `${M}x${N}x${K}`, (be) => {
          const dy = up(be, [M, N], M + N), w = weight(be, dt, [N, K], N * 3 + K);
          return outs(be, [dy, w], [be.linearT(dy, w)]);
        });
      }
    }
    for (const [M, N, K] of SHAPES) {
      await same('matmulTN', `${M}x${N}x${K}`, (be) => {
        const a = up(be, [M, N], M + 2 * N), b = up(be, [M, K], K + 7);
        return outs(be, [a, b], [be.matmulTN(a, b)]);
      });
    }
  });

  it('linearT with GPTQ (2, 3, 4, 8 bits, act-order), AWQ, GPTQ float zeros and kind weights', async () => {
    const cases: [number, number, number, number, boolean][] = [[4, 32, 64, 32, false], [3, 33, 100, 32, true], [2, 5, 31, 31, false], [8, 17, 40, 8, true]];
    for (const [bits, N, K, group, act] of cases) {
      const q = packGptq(randomGrid(N, K, bits, group, bits * 7 + N, act), N, K, bits).tensors;
      await same('linearT gptq', `W${bits} g${group}${act ? ' act-order' : ''} ${N}x${K}`, (be) => linearTBy(be, q, 3, N, 11));
    }
    for (const [N, K, group] of [[16, 64, 32], [40, 96, 16]] as const) {
      await same('linearT awq', `W4 g${group} ${N}x${K}`, (be) => linearTBy(be, packAwq(randomGrid(N, K, 4, group, N + K), N, K, group), 5, N, 12));
    }
    const N = 33, K = 64, q0 = packGptq(randomGrid(N, K, 4, 32, 31), N, K, 4).tensors;
    const fz = mergeZeroShift(q0, randF32(N * 2, 32, 0.01), 32);
    await same('linearT gptq float zeros', `W4 g32 ${N}x${K}`, (be) => linearTBy(be, fz, 5, N, 14));
    for (const transform of [false, true]) {
      await same('linearT kind', transform ? 'transformed' : 'plain', (be) => linearTBy(be, fakeKind(70, 33, 21, transform), 4, 70, 13));
    }
  });

  it('linearT over a weight split into row parts adds the parts', async () => {
    const small = await createWebGpuBackend(jsKernels, 'js', { maxBinding: 4096 });
    assert.ok(small.ok);
    const be = small.backend;
    for (const dt of ['f32', 'bf16'] as const) {
      // [100, 33] f32 is 13,200 bytes: 4 parts of at most 31 rows
      const run = async (b: TrainableBackend) => { const dy = up(b, [4, 100], 92), w = weight(b, dt, [100, 33], 93); return (await outs(b, [dy, w], [b.linearT(dy, w)]))[0]!; };
      assertClose(await run(be), await run(cpu), GRAD_TOLERANCE[`linearT ${dt}`], `split linearT ${dt}`);
    }
  });

  it('rmsnormBackward with f32, f16 and bf16 gamma', async () => {
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      for (const [M, D] of [[6, 130], [3, 8], [2, 1000]] as const) {
        await same('rmsnormBackward', `${dt} ${M}x${D}`, (be) => {
          const x = up(be, [M, D], 4 + D, 3), g = weight(be, dt, [D], 5), dy = up(be, [M, D], 6 + D);
          return outs(be, [x, g, dy], [be.rmsnormBackward(x, g, dy, 1e-5)]);
        });
      }
    }
  });

  it('attentionBackward (causal GQA, offsets, keys beyond the last query)', async () => {
    const cases: [number, number, number, number, number, number][] = [
      // T, S, offset, H, KVH, hd
      [5, 5, 0, 4, 2, 8], [3, 9, 6, 4, 2, 8], [1, 12, 11, 4, 1, 8], [4, 4, 0, 4, 2, 2], [6, 10, 2, 3, 3, 16], [7, 7, 0, 8, 2, 64],
    ];
    for (const [T, S, offset, H, KVH, hd] of cases) {
      await same('attentionBackward', `T${T} S${S} offset ${offset} H${H}/${KVH} hd${hd}`, (be) => {
        const q = up(be, [T, H * hd], 41 + T, 2), k = up(be, [S, KVH * hd], 42 + S, 2), v = up(be, [S, KVH * hd], 43), d = up(be, [T, H * hd], 44);
        const r = be.attentionBackward(q, k, v, d, { nHeads: H, nKvHeads: KVH, headDim: hd, offset });
        return outs(be, [q, k, v, d], [r.dq, r.dk, r.dv]);
      });
    }
  });

  it('siluMulBackward, scale and mul', async () => {
    await same('siluMulBackward', '[9, 70]', (be) => {
      const g = up(be, [9, 70], 51, 6), u = up(be, [9, 70], 52), d = up(be, [9, 70], 53);
      const r = be.siluMulBackward(g, u, d);
      return outs(be, [g, u, d], [r.dGate, r.dUp]);
    });
    for (const s of [-1, 2.5, 0.3, 1 / 3, 0]) await same('scale', `by ${s}`, (be) => { const x = up(be, [7, 50], 54, 5); return outs(be, [x], [be.scale(x, s)]); });
    await same('mul', '[9, 70]', (be) => { const a = up(be, [9, 70], 55), b = up(be, [9, 70], 56); return outs(be, [a, b], [be.mul(a, b)]); });
  });

  it('crossEntropyGrad from logSoftmaxParts\' lse (weighted rows, a zero-weight row with any target)', async () => {
    const T = 5, V = 300;
    const targets = Int32Array.from([0, 299, 7, -5, 150]), weights = Float32Array.from([0.25, 1, 0.5, 0, 1 / 3]);
    const safe = targets.map((k, i) => (weights[i] === 0 ? 0 : k));
    await same('crossEntropyGrad', `${T}x${V}`, async (be) => {
      const l = up(be, [T, V], 81, 8);
      const { lse } = await cpu.logSoftmaxParts(cpu.upload(await be.read(l), [T, V]), safe, 0); // the same lse on both
      return outs(be, [l], [be.crossEntropyGrad(l, lse, targets, weights)]);
    });
  });

  it('bad input gives the CPU backend\'s errors', () => {
    const errorOf = (be: TrainableBackend, f: (be: TrainableBackend) => unknown): string => {
      try { f(be); } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; }
      return 'no error';
    };
    const o = { nHeads: 2, nKvHeads: 1, headDim: 4, offset: 0 };
    const bad: [string, (be: TrainableBackend) => unknown][] = [
      ['linearT shape', (be) => be.linearT(up(be, [2, 3], 1), weight(be, 'f32', [4, 5], 2))],
      ['matmulTN rows', (be) => be.matmulTN(up(be, [2, 3], 1), up(be, [3, 3], 2))],
      ['rmsnormBackward dy', (be) => be.rmsnormBackward(up(be, [2, 3], 1), weight(be, 'f32', [3], 2), up(be, [3, 3], 3), 1e-5)],
      ['attentionBackward dOut', (be) => be.attentionBackward(up(be, [2, 8], 1), up(be, [2, 4], 2), up(be, [2, 4], 3), up(be, [1, 8], 4), o)],
      ['attentionBackward keys', (be) => be.attentionBackward(up(be, [2, 8], 1), up(be, [1, 4], 2), up(be, [1, 4], 3), up(be, [2, 8], 4), o)],
      ['siluMulBackward', (be) => be.siluMulBackward(up(be, [2, 3], 1), up(be, [2, 3], 2), up(be, [3, 2], 3))],
      ['mul', (be) => be.mul(up(be, [2, 3], 1), up(be, [3, 2], 2))],
      ['crossEntropyGrad target', (be) => be.crossEntropyGrad(up(be, [2, 3], 1), new Float64Array(2), Int32Array.from([0, 3]), Float32Array.from([1, 1]))],
      ['crossEntropyGrad lse', (be) => be.crossEntropyGrad(up(be, [2, 3], 1), new Float64Array(3), Int32Array.from([0, 1]), Float32Array.from([1, 1]))],
      ['bf16 activation', (be) => be.scale(weight(be, 'bf16', [2, 3], 1), 2)],
    ];
    for (const [what, f] of bad) {
      const want = errorOf(cpu, f);
      assert.notEqual(want, 'no error', what);
      assert.equal(errorOf(gpu!, f), want, what);
    }
  });

  it('worst NMSE per op (printed)', () => {
    for (const [op, e] of worst) console.log(`# gradParity: ${op}: worst NMSE ${e.toExponential(2)} (tolerance ${GRAD_TOLERANCE[op as Op].toExponential(0)})`);
    assert.ok(worst.size > 0);
  });
});
