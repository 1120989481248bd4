/**
 * GPTQ's float32 solve on the device (`gptq --device-solve`, kernels/gptq.wgsl.ts) against the host's
 * float64 solve on the same layers: every option (per channel, dynamic groups, act-order, static groups,
 * symmetric, 2–8 bits, a block size that does not divide the columns, dead columns), q equal to the
 * codes' dequantization bit for bit, the loss within 1e-3 and at least 99% of the codes the host's; damping
 * retried as on the host; a Hessian no damping saves is one error. Skipped, with the reason, without a
 * WebGPU adapter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { gptq, gptqOnDevice, type GptqOptions } from '../../src/quant/methods/gptq.js';
import { dequantize } from '../../src/quant/core/grid.js';
import { rng } from './kernelCases.js';
import * as GPTQ_WGSL from '../../src/backend/webgpu/kernels/gptq.wgsl.js';
import { REQUIRED_LIMITS } from '../../src/backend/webgpu/capabilities.js';

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const reference = await createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels: 'reference' });
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# gptqDevice: skipped: ${made.reason}`);

/** A layer and a correlated Hessian (inputs sharing a component, a few outlier channels, dead columns). */
function layer(rows: number, cols: number, seed: number, dead: number[] = []): { W: Float32Array; H: Float64Array } {
  const r = rng(seed), W = new Float32Array(rows * cols).map(() => (r() * 2 - 1) * 0.05);
  const T = cols + 40, X = new Float64Array(T * cols);
  for (let t = 0; t < T; t++) {
    const shared = r() * 2 - 1;
    for (let c = 0; c < cols; c++) X[t * cols + c] = dead.includes(c) ? 0 : (r() * 2 - 1 + 0.5 * shared) * (c % 17 === 3 ? 8 : 1);
  }
  const H = new Float64Array(cols * cols);
  for (let t = 0; t < T; t++)
    for (let a = 0; a < cols; a++) {
      const xa = X[t * cols + a]!;
      if (xa === 0) continue;
      for (let b = 0; b < cols; b++) H[a * cols + b]! += (2 / T) * xa * X[t * cols + b]!;
    }
  return { W, H };
}

const CASES: [string, number, number, Omit<GptqOptions, 'where'>][] = [
  ['W4 g32', 40, 96, { spec: { bits: 4, groupSize: 32, sym: false } }],
  ['W3 per channel, blocksize 40', 33, 100, { spec: { bits: 3, groupSize: -1, sym: false }, blocksize: 40 }],
  ['W2 g16 sym, act-order', 24, 64, { spec: { bits: 2, groupSize: 16, sym: true }, actOrder: true }],
  ['W4 g32 act-order, static groups, blocksize 48', 20, 96, { spec: { bits: 4, groupSize: 32, sym: false }, actOrder: true, staticGroups: true, blocksize: 48 }],
  ['W8 g64, f16 scales', 16, 128, { spec: { bits: 8, groupSize: 64, sym: false, scaleDtype: 'f16' } }],
];

describe('gptq --device-solve kernels', () => {
  it('each kernel binds at most the storage buffers and the workgroup memory every adapter offers (REQUIRED_LIMITS)', () => {
    const kernels = Object.entries(GPTQ_WGSL).filter(([, v]) => typeof v === 'string' && v.includes('@compute'));
    assert.ok(kernels.length >= 10);
    for (const [name, text] of kernels) {
      const n = (text as string).split('var<storage').length - 1;
      assert.ok(n >= 1 && n <= REQUIRED_LIMITS.maxStorageBuffersPerShaderStage, `${name}: ${n} storage bindings`);
      // workgroup memory within what every adapter offers: arrays of 4-byte words and single words
      let bytes = 0;
      for (const m of (text as string).matchAll(/var<workgroup>\s+\w+\s*:\s*([^;]+);/g)) {
        const arr = /^array<(?:f32|u32|i32),\s*(\d+)>$/.exec(m[1]!.trim());
        assert.ok(arr || /^(f32|u32|i32)$/.test(m[1]!.trim()), `${name}: workgroup variable of type ${m[1]}`);
        bytes += arr ? 4 * Number(arr[1]) : 4;
      }
      assert.ok(bytes <= REQUIRED_LIMITS.maxComputeWorkgroupStorageSize, `${name}: ${bytes} bytes of workgroup memory`);
    }
  });
});

describe('gptq --device-solve (float32 on WebGPU) against the host float64 solve', { skip }, () => {
  for (const [what, rows, cols, o] of CASES) {
    it(what, async () => {
      const be = made.ok ? made.backend : undefined!;
      const { W, H } = layer(rows, cols, rows * 7 + cols, [5, cols - 2]);
      const host = gptq(W, rows, cols, H, o);
      const dev = await gptqOnDevice(be, W, rows, cols, H, o);
      assert.deepEqual(dev.gIdx, host.gIdx, 'g_idx');
      assert.deepEqual(dev.perm, host.perm, 'act-order permutation');
      assert.equal(dev.dampUsed, host.dampUsed);
      assert.deepEqual(dev.notes, host.notes, 'notes (dead columns)');
      const nGroups = dev.scales.length / rows;
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) {
          const g = r * nGroups + dev.gIdx[c]!;
          const want = dequantize(dev.codes[r * cols + c]!, dev.scales[g]!, dev.zeros[g]!);
          if (!Object.is(dev.Q[r * cols + c], want)) assert.fail(`q [${r}, ${c}] = ${dev.Q[r * cols + c]} is not its code's ${want}`);
          if (c === 5 || c === cols - 2) assert.equal(dev.Q[r * cols + c], want, 'dead column');
        }
      let same = 0;
      for (let i = 0; i < dev.codes.length; i++) if (dev.codes[i] === host.codes[i]) same++;
      console.log(`# gptqDevice: ${what}: ${same} of ${dev.codes.length} codes equal the host's; loss ${dev.loss} (host ${host.loss})`);
      assert.ok(same / dev.codes.length >= 0.99, `${what}: ${same} of ${dev.codes.length} codes equal the host's`);
      assert.ok(Math.abs(dev.loss - host.loss) <= 1e-3 * host.loss, `${what}: loss ${dev.loss} vs host ${host.loss}`);
      if (o.spec.groupSize === -1 || o.staticGroups) assert.deepEqual(dev.scales, host.scales, 'parameters found before the solve');
    });
  }

  it('the blocked factorization (fast kernels) gives the reference kernels\' bits: codes, q, parameters, loss', async () => {
    const be = made.ok ? made.backend : undefined!;
    assert.ok(reference.ok);
    assert.equal((be as WebGpuBackend).caps.kernels, 'fast');
    assert.equal((reference.backend as WebGpuBackend).caps.kernels, 'reference');
    // several panels of NB columns and a ragged last one; act-order and dynamic groups
    const layers: [number, number, Omit<GptqOptions, 'where'>][] = [
      ...CASES.map(([, rows, cols, o]) => [rows, cols, o] as [number, number, Omit<GptqOptions, 'where'>]),
      [24, 300, { spec: { bits: 3, groupSize: 60, sym: false }, actOrder: true, blocksize: 64 }],
      [8, 2 * GPTQ_WGSL.NB + 1, { spec: { bits: 4, groupSize: -1, sym: true } }],
    ];
    for (const [rows, cols, o] of layers) {
      const { W, H } = layer(rows, cols, rows * 5 + cols, [3]);
      const fast = await gptqOnDevice(be, W, rows, cols, H, o), ref = await gptqOnDevice(reference.backend, W, rows, cols, H, o);
      const at = `${rows}x${cols}`;
      assert.deepEqual(fast.codes, ref.codes, `${at}: codes`);
      assert.deepEqual(fast.Q, ref.Q, `${at}: q`);
      assert.deepEqual(fast.scales, ref.scales, `${at}: scales`);
      assert.deepEqual(fast.zeros, ref.zeros, `${at}: zeros`);
      assert.equal(fast.loss, ref.loss, `${at}: loss`);
    }
  });

  it('damping: retried ×10 as on the host; a Hessian no damping saves is one error', async () => {
    const be = made.ok ? made.backend : undefined!;
    const n = 8, W = new Float32Array(4 * n).map((_, i) => Math.sin(i) * 0.1), spec = { bits: 4, groupSize: -1, sym: false } as const;
    const H = new Float64Array(n * n);
    for (let i = 0; i < n; i++) H[i * n + i] = 1;
    H[1] = H[n] = 1.05; // eigenvalue −0.05 of mean(diag H): damping 0.01 fails, 0.1 succeeds
    const host = gptq(W, 4, n, H, { spec }), dev = await gptqOnDevice(be, W, 4, n, H, { spec });
    assert.equal(host.dampUsed, 0.1);
    assert.equal(dev.dampUsed, 0.1);
    assert.deepEqual(dev.notes, host.notes);
    H[1] = H[n] = 30; // beyond damping 10 (three retries from 0.01)
    await assert.rejects(gptqOnDevice(be, W, 4, n, H, { spec, where: 'layer.x' }), /layer\.x: the Hessian is not positive definite in float32 even with damping 10/);
  });

  it('a layer whose buffers exceed one storage binding is refused with its size before anything runs', async () => {
    const small = await createWebGpuBackend(jsKernels, 'js, 1 thread', { maxBinding: 4096 });
    assert.ok(small.ok);
    const { W, H } = layer(4, 40, 3);
    await assert.rejects(gptqOnDevice(small.backend, W, 4, 40, H, { spec: { bits: 4, groupSize: -1, sym: false } }),
      /webgpu: gptq --device-solve: H \[40, 40\] needs 6400 bytes, above this adapter's maxStorageBufferBindingSize of 4096 bytes/);
    // H and its factor fit, W does not: refused before the factorization runs
    const wide = layer(50, 24, 4);
    let factored = 0;
    const be = small.backend, own = be.gptqFactor.bind(be);
    be.gptqFactor = async (...a) => { const f = await own(...a); factored++; return f; };
    try {
      await assert.rejects(gptqOnDevice(be, wide.W, 50, 24, wide.H, { spec: { bits: 4, groupSize: -1, sym: false }, blocksize: 8 }),
        /webgpu: gptq --device-solve: W \[50, 24\] needs 4800 bytes, above this adapter's maxStorageBufferBindingSize of 4096 bytes/);
      assert.equal(factored, 0);
    } finally {
      delete (be as { gptqFactor?: unknown }).gptqFactor;
    }
  });

  it('the layers reading one input share the device factor: made once, the bits of one each, freed by the last', async () => {
    const be = made.ok ? made.backend : undefined!;
    const cols = 64, { H } = layer(8, cols, 21, [5]);
    const Ws = [1, 2, 3].map((s) => layer(8 + s, cols, 30 + s).W);
    let factors = 0, releases = 0;
    const own = be.gptqFactor.bind(be);
    be.gptqFactor = async (...a) => {
      const f = await own(...a);
      factors++;
      if (!f) return f;
      const release = f.release.bind(f);
      return Object.assign(f, { release: () => { releases++; release(); } });
    };
    try {
      for (const actOrder of [false, true]) {
        const spec = { bits: 3, groupSize: 16, sym: false } as const;
        factors = releases = 0;
        const alone = [];
        for (const [i, W] of Ws.entries()) alone.push(await gptqOnDevice(be, W, 8 + i + 1, cols, H, { spec, actOrder }));
        assert.deepEqual([factors, releases], [3, 3], 'each made and freed on its own');
        const before = be.deviceMemory().liveBytes;
        factors = releases = 0;
        for (const [i, W] of Ws.entries()) {
          const r = await gptqOnDevice(be, W, 8 + i + 1, cols, H, { spec, actOrder, readers: 3 });
          assert.deepEqual(r.codes, alone[i]!.codes);
          assert.deepEqual(r.Q, alone[i]!.Q);
          assert.deepEqual(r.scales, alone[i]!.scales);
          assert.equal(r.loss, alone[i]!.loss);
          assert.deepEqual(r.notes, alone[i]!.notes);
          assert.equal(releases, i === 2 ? 1 : 0, `freed by the last reader only (reader ${i})`);
        }
        assert.equal(factors, 1, 'made once for three readers');
        assert.equal(be.deviceMemory().liveBytes, before, 'nothing left on the device');
        // the host's kept factors are other factors: a host reader does not take the device's, nor the other way
        gptq(Ws[0]!, 9, cols, H, { spec, actOrder, readers: 2 });
        await gptqOnDevice(be, Ws[0]!, 9, cols, H, { spec, actOrder, readers: 2 });
        assert.equal(factors, 2);
        await gptqOnDevice(be, Ws[0]!, 9, cols, H, { spec, actOrder, readers: 2 });
        assert.deepEqual([factors, releases], [2, 2]);
      }
      // a released factor is refused
      const f = (await be.gptqFactor(new Float32Array([4, 0, 0, 4]), 2))!;
      f.release();
      await assert.rejects(be.gptqSolve({ W: new Float32Array(2), rows: 1, cols: 2, blocksize: 2, maxq: 15, group: new Int32Array(2), scale: new Float32Array([1]), zero: new Float32Array([0]) }, f),
        /gptq --device-solve: the factor was released/);
    } finally {
      delete (be as { gptqFactor?: unknown }).gptqFactor;
    }
  });
});
