/**
 * The in-shader decoders of the stored kinds (kernels/kindDecoders.wgsl.ts) against the CPU backend:
 * each kind's layer quantized from seeded weights by the real quantizer, packed by its packer and
 * opened through PACKED_KINDS as a checkpoint would be. The decoded weight must be the CPU's bit for
 * bit (linear of an identity gives W exactly, linearT of an identity too: each output is one product
 * by 1 plus zeros), the GEMMs within parity.test.ts's 'linear kind' NMSE, with guard words after every
 * output, and the device must hold the stored parts (bytes reported), not 4 bytes a weight. Without a
 * WebGPU adapter every case is skipped with the reason, never passed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, TrainableBackend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { PACKED_KINDS } from '../../src/tensor/kinds.js';
import { materializeKind, type KindLayer, type PackedWeight } from '../../src/tensor/packed.js';
import { nf4KindName, packNf4 } from '../../src/tensor/nf4Pack.js';
import { packPbllm } from '../../src/tensor/pbllmPack.js';
import { billmTensors } from '../../src/tensor/billmPack.js';
import { dbllmTensors } from '../../src/tensor/dbllmPack.js';
import { packGptq } from '../../src/tensor/gptqPack.js';
import { mergeZeroShift } from '../../src/tensor/gptqZeroShift.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { nf4 } from '../../src/quant/methods/nf4.js';
import { icq } from '../../src/quant/methods/icq.js';
import { pbllm } from '../../src/quant/methods/pbllm.js';
import { billm } from '../../src/quant/methods/billm.js';
import { fdbInit } from '../../src/quant/methods/dbllm.js';
import { layer } from '../quant/rand.js';
import { assertClose, randF32 } from './kernelCases.js';
import { eye, randomGrid, run } from './weightCases.js';

/** parity.test.ts's bound for a quantized linear against the CPU's float64 accumulation. */
const NMSE = 1e-10;

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true });
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# kindDecoders: WebGPU cases skipped: ${made.reason}`);

const open = (name: string, parts: Record<string, Tensor>, bits: number) => PACKED_KINDS[name]!.open(parts, bits);
const partBytes = (parts: Record<string, Tensor>) => Object.values(parts).reduce((a, t) => a + t.data.byteLength, 0);

interface Case { name: string; w: PackedWeight; rows: number; cols: number; stored: number }

function cases(): Case[] {
  const out: Case[] = [];
  const kind = (name: string, parts: Record<string, Tensor>, bits: number) => {
    const w = open(name, parts, bits);
    out.push({ name: `${name} ${w.rows}x${w.cols}`, w, rows: w.rows, cols: w.cols, stored: partBytes(parts) });
  };
  // NF4 / ICQ: blocks of 64 straddle rows (odd width), > 256 blocks so absmax2 / tau_absmax have 2 groups
  for (const [rows, cols] of [[131, 130], [3, 22]] as const) {
    const w = randF32(rows * cols, rows + cols, 0.05);
    for (const dq of [false, true]) {
      const r = nf4(w, dq);
      kind(nf4KindName(dq, false), packNf4({ rows, cols, codes: r.codes, absmax: r.absmax }), 4);
      const q = icq(w, { tauLambda: 0.1, tauN: 20, doubleQuant: dq });
      kind(nf4KindName(dq, true), packNf4({ rows, cols, codes: q.codes, absmax: q.absmax, tau: q.tau }), 4);
    }
  }
  // PB-LLM: f32 and f16 parameters, groups of 64 and whole rows
  for (const [rows, cols, G, dt] of [[37, 192, 64, 'f32'], [20, 136, -1, 'f16']] as const) {
    const { W, H } = layer(rows, rows, cols);
    const r = pbllm(W, rows, cols, H, { lowFrac: 0.8, groupSize: G, ...(dt === 'f16' ? { scaleDtype: 'f16' as const } : {}) });
    kind('pbllm', packPbllm({ rows, cols, ...r, paramDtype: dt }), 1);
  }
  // BiLLM: a width that is not a multiple of 8, integer-valued weights (zero signs), f32 and f16 parameters
  for (const [rows, cols, g, dt] of [[29, 100, 25, 'f32'], [16, 96, 32, 'f16']] as const) {
    const { H } = layer(rows + 1, rows, cols);
    const u = randF32(rows * cols, rows * 3, 1);
    const W = u.map((v) => Math.round(v * 8) / 4);
    const r = billm(W, rows, cols, H, { blockSize: g, scaleDtype: dt });
    assert.ok(r.parts.zeroSigns.length > 0, 'the case has zero signs');
    kind('billm', billmTensors(r.parts), 1);
  }
  // DB-LLM: groups of 8 and of a whole row
  for (const [rows, cols, g] of [[33, 136, 8], [5, 64, 64]] as const) {
    const { parts } = fdbInit(randF32(rows * cols, rows + 7, 0.1), rows, cols, g);
    kind('dbllm', dbllmTensors(parts), 2);
  }
  // GPTQ with float zero points (QA-LoRA's merge)
  // (QA-LoRA merges contiguous groups only: no act-order)
  for (const [N, K, bits, group] of [[33, 64, 4, 32], [17, 40, 3, 8], [64, 128, 4, 32], [9, 48, 8, 16], [7, 48, 2, 16]] as const) {
    const q0 = packGptq(randomGrid(N, K, bits, group, N + bits), N, K, bits).tensors;
    const q = mergeZeroShift(q0, randF32(N * (K / group), N, 0.01), group);
    const stored = q.qweight.byteLength + q.scales.byteLength + q.gIdx.byteLength + q.zerosF!.byteLength;
    out.push({ name: `gptq float zeros W${bits} g${group} ${N}x${K}`, w: q, rows: N, cols: K, stored });
  }
  return out;
}


/** Positions where two arrays differ as numbers (±0 equal), with the first few. */
function differences(got: Float32Array, want: Float32Array): { count: number; first: string[] } {
  const first: string[] = [];
  let count = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i] && !(Number.isNaN(got[i]!) && Number.isNaN(want[i]!))) { count++; if (first.length < 4) first.push(`[${i}] ${got[i]} vs ${want[i]}`); }
  }
  return { count, first };
}

/** out [cols, rows] of a row-major [rows, cols] */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}

describe('WebGPU in-shader kind decoders vs CPU', { skip }, () => {
  const all = skip ? [] : cases();

  it('decode: linear and linearT of an identity give the CPU-decoded weight bit for bit', async () => {
    for (const c of all) {
      const want = await cpu.read(cpu.uploadQuantized(c.w));
      const w = gpu!.uploadQuantized(c.w);
      const x = gpu!.upload(eye(c.cols), [c.cols, c.cols]);
      const fwd = transpose(await run(gpu!, [x], () => gpu!.linear(x, w)), c.cols, c.rows);
      const dy = gpu!.upload(eye(c.rows), [c.rows, c.rows]);
      const back = await run(gpu!, [dy], () => gpu!.linearT(dy, w));
      gpu!.free(w);
      for (const [what, got] of [['linear', fwd], ['linearT', back]] as const) {
        const d = differences(got, want);
        assert.equal(d.count, 0, `${c.name} ${what}: ${d.count} of ${want.length} weights differ: ${d.first.join(', ')}`);
      }
    }
  });

  it('linear and linearT against the CPU backend within the parity bound (odd M)', async () => {
    for (const c of all) {
      for (const M of [1, 7, 70]) {
        const xs = randF32(M * c.cols, M + c.cols), gs = randF32(M * c.rows, M + c.rows);
        const by = async (be: TrainableBackend) => {
          const w = be.uploadQuantized(c.w), x = be.upload(xs, [M, c.cols]), g = be.upload(gs, [M, c.rows]);
          const y = await run(be, [x], () => be.linear(x, w));
          const dx = await run(be, [g], () => be.linearT(g, w));
          be.free(w);
          return [y, dx];
        };
        const [want, got] = [await by(cpu), await by(gpu!)];
        assertClose(got[0]!, want[0]!, NMSE, `linear ${c.name} M=${M}`);
        assertClose(got[1]!, want[1]!, NMSE, `linearT ${c.name} M=${M}`);
      }
    }
  });

  it('the device holds the stored parts (a small index beside them), not float32 weights', async () => {
    const lines: string[] = [];
    for (const c of all) {
      const w = gpu!.uploadQuantized(c.w);
      const bytes = gpu!.deviceBytes(w);
      gpu!.free(w);
      // parts padded to words, kmeta, PB-LLM's code index (a word per 128 weights)
      const slack = 4 * 12 + 64 + 4 * Math.ceil(c.rows * c.cols / 128);
      assert.ok(bytes >= c.stored && bytes <= c.stored + slack, `${c.name}: ${bytes} bytes on the device for ${c.stored} stored`);
      assert.ok(bytes < 4 * c.rows * c.cols, `${c.name}: ${bytes} bytes is not below float32's ${4 * c.rows * c.cols}`);
      lines.push(`${c.name}: ${(bytes / (c.rows * c.cols)).toFixed(3)} B/weight (stored ${(c.stored / (c.rows * c.cols)).toFixed(3)})`);
    }
    console.log(`# kindDecoders: device bytes per weight\n# ${lines.join('\n# ')}`);
  });

  it('a kind without a decoder (transforms, or opened without its parts) stays on the dense float32 path', async () => {
    const c = all.find((k) => k.name.startsWith('nf4 '))!;
    const { parts: _, ...bare } = c.w as KindLayer & { parts?: unknown };
    const layerNoParts: KindLayer = { ...bare, decodeRows: (r0, nr, o) => (c.w as KindLayer).decodeRows(r0, nr, o) };
    const w = gpu!.uploadQuantized(layerNoParts);
    assert.equal(gpu!.deviceBytes(w), 4 * c.rows * c.cols);
    const got = await gpu!.read(w);
    gpu!.free(w);
    assert.deepEqual(got, materializeKind(c.w as KindLayer));
  });

  it('a layer whose parts exceed one binding is uploaded in packed row parts (lowered binding limit), else dense', async () => {
    const limit = 4096;
    const small = await createWebGpuBackend(jsKernels, 'js, 1 thread', { maxBinding: limit, guardWords: true });
    assert.ok(small.ok);
    const be = small.backend;
    const big = all.filter((k) => k.stored > limit);
    assert.deepEqual(new Set(big.map((c) => c.name.split(' ')[0])), new Set(['nf4', 'icq', 'nf4dq', 'icqdq', 'pbllm', 'billm', 'dbllm', 'gptq']));
    for (const c of big) {
      const w = be.uploadQuantized(c.w);
      const bytes = be.deviceBytes(w);
      assert.ok(bytes < 2 * c.stored && bytes < 4 * c.rows * c.cols, `${c.name}: ${bytes} bytes on the device for ${c.stored} stored`);
      // the decoded weight, a few columns at a time (one-hot rows of x): the CPU's bits
      const want = await cpu.read(cpu.uploadQuantized(c.w));
      const B = Math.floor((limit - 256) / (4 * Math.max(c.rows, c.cols))); // guard words follow outputs
      for (let k0 = 0; k0 < c.cols; k0 += B) {
        const nb = Math.min(B, c.cols - k0), e = new Float32Array(nb * c.cols);
        for (let i = 0; i < nb; i++) e[i * c.cols + k0 + i] = 1;
        const x = be.upload(e, [nb, c.cols]);
        const y = await run(be, [x], () => be.linear(x, w));
        for (let i = 0; i < nb; i++) {
          for (let n = 0; n < c.rows; n++) assert.equal(y[i * c.rows + n], want[n * c.cols + k0 + i], `${c.name} W[${n}, ${k0 + i}] in row parts`);
        }
      }
      const gs = randF32(3 * c.rows, c.rows);
      const g = be.upload(gs, [3, c.rows]);
      const dx = await run(be, [g], () => be.linearT(g, w));
      be.free(w);
      const wc = cpu.uploadQuantized(c.w), gc = cpu.upload(gs, [3, c.rows]);
      assertClose(dx, await run(cpu, [gc, wc], () => cpu.linearT(gc, wc)), NMSE, `linearT ${c.name} in row parts`);
    }
    // below one row-aligned part (NF4 at width 130: 32 rows a part), the float32 row parts
    const tiny = await createWebGpuBackend(jsKernels, 'js, 1 thread', { maxBinding: 2048 });
    assert.ok(tiny.ok);
    const c = all.find((k) => k.name === 'nf4 131x130')!;
    const w = tiny.backend.uploadQuantized(c.w);
    assert.equal(tiny.backend.deviceBytes(w), 4 * c.rows * c.cols);
    tiny.backend.free(w);
  });
});
