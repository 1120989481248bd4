/**
 * One suite, every backend: each op of the Backend interface runs the same seeded cases on the CPU
 * backend (js kernels, the reference) and on WebGPU, compared by NMSE with the per-op, per-dtype
 * tolerance of TOLERANCE (NaN/inf positions checked first, by assertClose), with guard words after
 * every WebGPU output that no kernel may touch. Without a WebGPU adapter
 * every WebGPU case is skipped with the reason, never passed. Sizes are small: lavapipe runs at
 * about 2 GFLOP/s. The row-part split of large weights and the size refusal are exercised with a
 * lowered binding limit (createWebGpuBackend's maxBinding), not with 128 MiB tensors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, BTensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { WebGpuBackend, createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { REQUIRED_LIMITS, adapterShortfall, autoPicksWebGpu } from '../../src/backend/webgpu/capabilities.js';
import { packGptq } from '../../src/tensor/gptqPack.js';
import { packAwq } from '../../src/tensor/awqPack.js';
import { mergeZeroShift } from '../../src/tensor/gptqZeroShift.js';
import type { PackedWeight } from '../../src/tensor/packed.js';
import { assertClose, randF32 } from './kernelCases.js';
import { fakeKind, randomGrid, weight } from './weightCases.js';
import { TOLERANCE, type Op } from './tolerance.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true });
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# parity: WebGPU cases skipped: ${made.reason}`);

type Out = Float32Array | Float64Array;
/** A case: the same function of a backend, run on both; returns one array or several to compare. */
async function same(op: Op, what: string, run: (be: Backend) => Promise<Out | Out[]>): Promise<void> {
  const want = [await run(cpu)].flat(), got = [await run(gpu!)].flat();
  assert.equal(got.length, want.length);
  want.forEach((w, i) => assertClose(got[i]!, w, TOLERANCE[op], `${op} ${what}${want.length > 1 ? ` (output ${i})` : ''}`));
}

/** Uploads, runs `f`, reads the result and frees everything it made. */
async function op(be: Backend, inputs: BTensor[], f: () => BTensor): Promise<Float32Array> {
  const y = f();
  const out = await be.read(y);
  if (be instanceof WebGpuBackend) await be.checkGuards(y);
  be.free(y);
  for (const x of inputs) be.free(x);
  return out;
}
const up = (be: Backend, n: number, seed: number, shape: number[], scale = 1) => be.upload(randF32(n, seed, scale), shape);




const LINEAR_SHAPES: [number, number, number][] = [[1, 1, 1], [3, 17, 33], [17, 31, 65], [5, 64, 300], [33, 9, 16]];

describe('backend parity: WebGPU vs CPU', { skip }, () => {
  it('upload/read and uploadWeight/read in every dtype', async () => {
    await same('upload', '[7, 13]', (be) => op(be, [], () => up(be, 91, 1, [7, 13])));
    for (const dt of ['f32', 'f16', 'bf16'] as const) await same('weight', `${dt} [5, 7]`, (be) => op(be, [], () => weight(be, dt, [5, 7], 2)));
  });

  it('embedding from f32, f16 and bf16 tables', async () => {
    const ids = Int32Array.from([3, 0, 9, 3, 7]);
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      await same('embedding', dt, (be) => { const tb = weight(be, dt, [10, 11], 3); return op(be, [tb], () => be.embedding(tb, ids)); });
    }
  });

  it('rmsnorm with f32 and bf16 gamma', async () => {
    for (const dt of ['f32', 'bf16'] as const) {
      await same('rmsnorm', dt, (be) => {
        const x = up(be, 6 * 130, 4, [6, 130], 3), g = weight(be, dt, [130], 5);
        return op(be, [x, g], () => be.rmsnorm(x, g, 1e-5));
      });
    }
  });

  it('linear with f32, f16 and bf16 weights on awkward shapes', async () => {
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      for (const [M, N, K] of LINEAR_SHAPES) {
        await same(`linear ${dt}`, `${M}x${N}x${K}`, (be) => {
          const x = up(be, M * K, M + K, [M, K]), w = weight(be, dt, [N, K], N * 3 + K);
          return op(be, [x, w], () => be.linear(x, w));
        });
      }
    }
  });

  it('linear with GPTQ-packed weights (2, 3, 4, 8 bits; groups, act-order) and AWQ-packed weights', async () => {
    const cases: [number, number, number, number, boolean][] = [[4, 32, 64, 32, false], [3, 33, 100, 32, true], [2, 5, 31, 31, false], [8, 17, 40, 8, true]];
    for (const [bits, N, K, group, act] of cases) {
      const q = packGptq(randomGrid(N, K, bits, group, bits * 7 + N, act), N, K, bits).tensors;
      await same('linear gptq', `W${bits} g${group}${act ? ' act-order' : ''} ${N}x${K}`, (be) => linearBy(be, q, 3, K, 11));
    }
    for (const [N, K, group] of [[16, 64, 32], [40, 96, 16]] as const) {
      const g = randomGrid(N, K, 4, group, N + K);
      const q = packAwq(g, N, K, group);
      await same('linear awq', `W4 g${group} ${N}x${K}`, (be) => linearBy(be, q, 5, K, 12));
    }
  });

  it('linear and read with GPTQ float zero points (QA-LoRA merge; uploaded dequantized, weights.ts)', async () => {
    const N = 33, K = 64, group = 32, q0 = packGptq(randomGrid(N, K, 4, group, 31), N, K, 4).tensors;
    const q = mergeZeroShift(q0, randF32(N * (K / group), 32, 0.01), group);
    assert.ok(q.zerosF!.some((z) => !Number.isInteger(z)), 'the merge made non-integer zeros');
    await same('linear gptq float zeros', `W4 g${group} ${N}x${K}`, (be) => linearBy(be, q, 5, K, 14));
    await same('linear gptq float zeros', 'read', async (be) => { const w = be.uploadQuantized(q); const r = await be.read(w); be.free(w); return r; });
  });

  it('linear with a method-specific kind (decoded on the host), with and without an input transform', async () => {
    for (const transform of [false, true]) {
      const k = fakeKind(70, 33, 21, transform);
      await same('linear kind', transform ? 'transformed' : 'plain', (be) => linearBy(be, k, 4, 33, 13));
      await same('linear kind', `${transform ? 'transformed' : 'plain'} read`, async (be) => { const w = be.uploadQuantized(k); const r = await be.read(w); be.free(w); return r; });
    }
  });

  it('rope, attention (GQA, offset), siluMul, add', async () => {
    const T = 5, H = 4, KVH = 2, hd = 8;
    const ropeOn = (be: Backend) => {
      const x = up(be, T * H * hd, 31, [T, H * hd]), c = up(be, T * hd / 2, 32, [T, hd / 2]), s = up(be, T * hd / 2, 33, [T, hd / 2]);
      return op(be, [x, c, s], () => be.rope(x, H, hd, c, s));
    };
    await same('rope', `${T}x${H}x${hd}`, ropeOn);
    for (const [Tq, S, offset] of [[5, 5, 0], [3, 9, 6], [1, 12, 11]] as const) {
      await same('attention', `T${Tq} S${S} offset ${offset}`, (be) => {
        const q = up(be, Tq * H * hd, 41, [Tq, H * hd], 2), k = up(be, S * KVH * hd, 42, [S, KVH * hd], 2), v = up(be, S * KVH * hd, 43, [S, KVH * hd]);
        return op(be, [q, k, v], () => be.attention(q, k, v, { nHeads: H, nKvHeads: KVH, headDim: hd, offset }));
      });
    }
    await same('siluMul', '[9, 70]', (be) => { const g = up(be, 630, 51, [9, 70], 6), u = up(be, 630, 52, [9, 70]); return op(be, [g, u], () => be.siluMul(g, u)); });
    await same('add', '[9, 70]', (be) => { const a = up(be, 630, 53, [9, 70]), b = up(be, 630, 54, [9, 70]); return op(be, [a, b], () => be.add(a, b)); });
  });

  it('quantizeRows equals the CPU bit for bit (ties to even, float32)', async () => {
    const ties = Float32Array.from({ length: 64 }, (_, i) => (i - 32) * 0.5); // halves: every tie case at bits where s = 0.5
    for (const bits of [2, 4, 8, 16]) {
      await same('quantizeRows', `${bits} bits`, (be) => { const x = up(be, 7 * 300, 61 + bits, [7, 300], 4); return op(be, [x], () => be.quantizeRows(x, bits)); });
    }
    await same('quantizeRows', 'ties', (be) => { const x = be.upload(ties, [1, 64]); return op(be, [x], () => be.quantizeRows(x, 7)); });
  });

  it('rows and concatRows', async () => {
    await same('rows', '[2, 5) of 7', (be) => { const x = up(be, 7 * 6, 71, [7, 6]); return op(be, [x], () => be.rows(x, 2, 3)); });
    await same('concatRows', '3 + 4', (be) => { const a = up(be, 18, 72, [3, 6]), b = up(be, 24, 73, [4, 6]); return op(be, [a, b], () => be.concatRows(a, b)); });
  });

  it('nll and logSoftmaxParts (targets inside and outside the chunk)', async () => {
    const T = 6, V = 1000;
    const targets = Int32Array.from([0, 999, 500, 7, 123, 640]);
    await same('nll', `${T}x${V}`, async (be) => { const l = up(be, T * V, 81, [T, V], 8); const r = await be.nll(l, targets); be.free(l); return r; });
    for (const offset of [0, 400]) {
      await same('logSoftmaxParts', `offset ${offset}`, async (be) => {
        const l = up(be, T * 300, 82, [T, 300], 8);
        const r = await be.logSoftmaxParts(l, targets, offset);
        be.free(l);
        return [r.lse, r.picked];
      });
    }
  });

  it('results are the same bits run to run (fixed reduction orders)', async () => {
    const once = async () => {
      const x = up(gpu!, 9 * 300, 95, [9, 300], 3), w = weight(gpu!, 'bf16', [70, 300], 96);
      const y = gpu!.linear(x, w), a = gpu!.attention(y, y, y, { nHeads: 5, nKvHeads: 5, headDim: 14, offset: 0 });
      const parts = await gpu!.logSoftmaxParts(a, Int32Array.from({ length: 9 }, (_, i) => i * 7), 0);
      const out = [await gpu!.read(y), await gpu!.read(a), parts.lse, parts.picked];
      for (const tsr of [x, w, y, a]) gpu!.free(tsr);
      return out.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'));
    };
    assert.deepEqual(await once(), await once());
  });

  it('bad input gives the CPU backend\'s errors', async () => {
    const errorOf = (be: Backend, f: (be: Backend) => unknown): string => {
      try { f(be); } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; }
      return 'no error';
    };
    const bad: [string, (be: Backend) => unknown][] = [
      ['linear shape', (be) => be.linear(up(be, 6, 1, [2, 3]), weight(be, 'f32', [4, 5], 2))],
      ['attention keys', (be) => be.attention(up(be, 16, 1, [2, 8]), up(be, 8, 2, [1, 8]), up(be, 8, 3, [1, 8]), { nHeads: 1, nKvHeads: 1, headDim: 8, offset: 0 })],
      ['embedding id', (be) => be.embedding(weight(be, 'f32', [4, 3], 1), Int32Array.from([4]))],
      ['rows range', (be) => be.rows(up(be, 6, 1, [2, 3]), 1, 2)],
      ['quantizeRows bits', (be) => be.quantizeRows(up(be, 6, 1, [2, 3]), 1)],
      ['bf16 activation', (be) => be.add(weight(be, 'bf16', [2, 3], 1), weight(be, 'bf16', [2, 3], 2))],
    ];
    for (const [what, f] of bad) assert.equal(errorOf(gpu!, f), errorOf(cpu, f), what);
    await assert.rejects(gpu!.nll(gpu!.upload(new Float32Array(6), [2, 3]), Int32Array.from([0, 3])), /nll: target 3 at row 1 outside the vocabulary of 3/);
  });

  it('weights larger than one binding are split by rows; activations larger than one are refused with their size', async () => {
    const small = await createWebGpuBackend(jsKernels, 'js', { maxBinding: 4096 });
    assert.ok(small.ok);
    const be = small.backend;
    // a [100, 33] f32 table is 13,200 bytes: 4 parts of at most 31 rows
    for (const dt of ['f32', 'bf16'] as const) {
      const ids = Int32Array.from([0, 99, 31, 32, 62, 63, 93, 50]);
      const run = (b: Backend) => { const tb = weight(b, dt, [100, 33], 91); return op(b, [tb], () => b.embedding(tb, ids)); };
      assertClose(await run(be), await run(cpu), 0, `split embedding ${dt}`);
      const lin = (b: Backend) => { const x = up(b, 4 * 33, 92, [4, 33]), w = weight(b, dt, [100, 33], 93); return op(b, [x, w], () => b.linear(x, w)); };
      assertClose(await lin(be), await lin(cpu), TOLERANCE[`linear ${dt}`], `split linear ${dt}`);
    }
    assert.throws(() => be.upload(new Float32Array(2000), [2000]), /^UsageError: webgpu: upload output \[2000\] needs 8000 bytes, above this adapter's maxStorageBufferBindingSize of 4096 bytes$/);
    const x = be.upload(new Float32Array(12 * 33), [12, 33]), w = weight(be, 'f32', [100, 33], 1);
    assert.throws(() => be.linear(x, w), /^UsageError: webgpu: linear output \[12, 100\] needs 4800 bytes, above .* 4096 bytes$/);
    be.free(x); be.free(w);
  });
});

async function linearBy(be: Backend, q: PackedWeight, M: number, K: number, seed: number): Promise<Float32Array> {
  const x = up(be, M * K, seed, [M, K]), w = be.uploadQuantized(q);
  return op(be, [x, w], () => be.linear(x, w));
}

describe('WebGPU adapter requirements (no adapter needed)', () => {
  it('an adapter below a needed limit is refused with the limit\'s name', () => {
    const enough = { ...REQUIRED_LIMITS };
    assert.equal(adapterShortfall([], enough), undefined);
    assert.equal(adapterShortfall([], { ...enough, maxComputeWorkgroupStorageSize: 4096 }),
      "the WebGPU adapter's maxComputeWorkgroupStorageSize is 4096, below the 8192 the kernels need");
    const { maxStorageBuffersPerShaderStage: _, ...missing } = enough;
    assert.match(adapterShortfall([], missing)!, /maxStorageBuffersPerShaderStage is not reported/);
  });

  it('auto takes a hardware adapter and leaves a software one (isFallbackAdapter), saying why', () => {
    assert.deepEqual(autoPicksWebGpu({ adapterName: 'nvidia hopper NVIDIA H200', software: false }), { ok: true });
    assert.deepEqual(autoPicksWebGpu({ adapterName: 'mesa software llvmpipe', software: true }), {
      ok: false, reason: 'the WebGPU adapter (mesa software llvmpipe) is a software one (isFallbackAdapter), slower than the CPU kernels on the same cores',
    });
  });
});
