/**
 * QuIP kept packed on WebGPU (kernels/quipRebuild.ts): layers quantized by the real quantizer (quip()),
 * stored with quipTensors and opened through PACKED_KINDS as a checkpoint would be. The weight the
 * device rebuilds in two-float arithmetic (read through linear and linearT of an identity, each output
 * one product by 1 plus zeros) must be rebuildQuipWeight's, float64 on the host, in every element but
 * at most a fraction DIFFERING of them, each of those one float32 (fp16) ulp away; the GEMMs within
 * parity.test.ts's 'linear kind' NMSE of the CPU backend's; the device must hold the codes, grid and D,
 * not 4 bytes a weight, and free the rebuild's buffers; a layer with a rotation block above
 * QUIP_DEVICE_MAX_BLOCK stays on the host path; the bundled model quantized with QuIP has the CPU's
 * perplexity within 1e-4 relative. Without a WebGPU adapter every case is skipped with the reason,
 * never passed.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrainableBackend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { QUIP_DEVICE_MAX_BLOCK } from '../../src/backend/webgpu/kernels/quipRebuild.js';
import { PACKED_KINDS } from '../../src/tensor/kinds.js';
import type { KindLayer } from '../../src/tensor/packed.js';
import { half, packQuipCodes, quipTensors, quipWords, rebuildQuipWeight, type QuipLayerParts } from '../../src/tensor/quipPack.js';
import { butterflyFactors } from '../../src/tensor/quipTransform.js';
import { quip } from '../../src/quant/methods/quip.js';
import { layer } from '../quant/rand.js';
import { openModel } from '../../src/io/open.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { TINY656K } from '../helpers/paths.js';
import { NAMES } from '../../src/io/source.js';
import { assertClose, randF32 } from './kernelCases.js';
import { TOLERANCE } from './tolerance.js';
import { eye, run } from './weightCases.js';

/**
 * The fraction of a rebuilt weight's elements allowed to differ from the host's, by one ulp (rounded up:
 * one element in a layer of 100,000 or more). Measured: none in these cases; 1 of 2,818,048 (1024×2752,
 * W2, float32) and 2 of 1,048,576 (1024×1024, W3, float32) on lavapipe: where the float64 value lies
 * within its own rounding error of a float32 rounding boundary.
 */
const DIFFERING = 1e-5;

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true });
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# quipDevice: WebGPU cases skipped: ${made.reason}`);

interface Case { name: string; w: KindLayer; parts: QuipLayerParts; stored: number }

function quipCase(rows: number, cols: number, bits: number, fp16: boolean, seed: number): Case {
  const { W, H } = layer(seed, rows, cols);
  const r = quip(W, rows, cols, H, { bits, seed, fp16, linalg: jsKernels });
  const t = quipTensors(r.parts);
  const w = PACKED_KINDS.quip!.open(t, bits);
  const stored = Object.values(t).reduce((a, x) => a + x.data.byteLength, 0);
  const f = (n: number) => butterflyFactors(n).join('·');
  return { name: `quip W${bits} ${fp16 ? 'fp16' : 'f32'} ${rows}x${cols} (${f(rows)}, ${f(cols)})`, w, parts: r.parts, stored };
}

function cases(): Case[] {
  return [
    quipCase(96, 384, 2, true, 1), quipCase(96, 384, 3, false, 2), quipCase(96, 384, 4, true, 3),
    quipCase(40, 26, 2, false, 4), quipCase(13, 30, 3, true, 5), quipCase(12, 13, 4, false, 6), quipCase(64, 64, 4, false, 7),
  ];
}


function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}

/** The next float32 (or fp16) value after x towards y. */
function ulpApart(x: number, y: number, fp16: boolean): boolean {
  if (fp16) { const e = Math.max(2 ** -24, 2 ** (Math.floor(Math.log2(Math.abs(x) || 1)) - 10)); return Math.abs(x - y) <= e && half(x) === x; }
  const f = new Float32Array([x, y]), u = new Int32Array(f.buffer);
  return Math.abs(u[0]! - u[1]!) === 1;
}

/** The device-rebuilt weight through linear (x = I) and linearT (dy = I). */
async function deviceWeight(c: Case): Promise<[Float32Array, Float32Array]> {
  const { rows, cols } = c.parts;
  const w = gpu!.uploadQuantized(c.w);
  const x = gpu!.upload(eye(cols), [cols, cols]);
  const fwd = transpose(await run(gpu!, [x], () => gpu!.linear(x, w)), cols, rows);
  const dy = gpu!.upload(eye(rows), [rows, rows]);
  const back = await run(gpu!, [dy], () => gpu!.linearT(dy, w));
  gpu!.free(w);
  return [fwd, back];
}

describe('WebGPU QuIP rebuild on the device vs the host\'s float64 rebuild', { skip }, () => {
  const all = skip ? [] : cases();

  it('linear and linearT of an identity give rebuildQuipWeight\'s weight (all but a fraction DIFFERING, those one ulp away)', async () => {
    const lines: string[] = [];
    for (const c of all) {
      const want = rebuildQuipWeight(c.parts);
      for (const [what, got] of (await deviceWeight(c)).map((g, i) => [i ? 'linearT' : 'linear', g] as const)) {
        let differ = 0;
        for (let i = 0; i < want.length; i++) {
          if (got[i] === want[i]) continue;
          differ++;
          assert.ok(ulpApart(got[i]!, want[i]!, c.parts.fp16), `${c.name} ${what}: W[${i}] = ${got[i]} vs ${want[i]}, more than one ulp`);
        }
        assert.ok(differ <= Math.floor(DIFFERING * want.length), `${c.name} ${what}: ${differ} of ${want.length} weights differ`);
        if (what === 'linear') lines.push(`${c.name}: ${differ} of ${want.length} differ`);
      }
    }
    console.log(`# quipDevice: elements differing from the host rebuild\n# ${lines.join('\n# ')}`);
  });

  it('linear and linearT against the CPU backend within the parity bound (odd M)', async () => {
    for (const c of all.slice(0, 4)) {
      const { rows, cols } = c.parts;
      for (const M of [1, 7, 70]) {
        const xs = randF32(M * cols, M + cols), gs = randF32(M * rows, M + rows);
        const by = async (be: TrainableBackend) => {
          const w = be.uploadQuantized(c.w), x = be.upload(xs, [M, cols]), g = be.upload(gs, [M, rows]);
          const y = await run(be, [x], () => be.linear(x, w));
          const dx = await run(be, [g], () => be.linearT(g, w));
          be.free(w);
          return [y, dx];
        };
        const [want, got] = [await by(cpu), await by(gpu!)];
        assertClose(got[0]!, want[0]!, TOLERANCE['linear kind'], `linear ${c.name} M=${M}`);
        assertClose(got[1]!, want[1]!, TOLERANCE['linear kind'], `linearT ${c.name} M=${M}`);
      }
    }
  });

  it('the device holds the codes, the grid values and D (the stored size), and frees the rebuild\'s buffers', async () => {
    const lines: string[] = [];
    for (const c of all) {
      const { rows, cols, bits } = c.parts;
      const before = gpu!.deviceMemory().liveBytes;
      const w = gpu!.uploadQuantized(c.w);
      const bytes = gpu!.deviceBytes(w);
      // qweight as stored, then 2^b grid values and D (cols floats) in place of s, D and the 8-word record
      const want = 4 * rows * quipWords(cols, bits) + 4 * ((1 << bits) + cols);
      assert.equal(bytes, want, `${c.name}: ${bytes} bytes on the device`);
      assert.ok(bytes < c.stored + 4 * 16, `${c.name}: ${bytes} bytes for ${c.stored} stored`);
      const x = gpu!.upload(randF32(3 * cols, cols), [3, cols]);
      await run(gpu!, [x], () => gpu!.linear(x, w));
      gpu!.free(w);
      assert.equal(gpu!.deviceMemory().liveBytes, before, `${c.name}: every buffer freed`);
      lines.push(`${c.name}: ${(bytes / (rows * cols)).toFixed(3)} B/weight (stored ${(c.stored / (rows * cols)).toFixed(3)})`);
    }
    console.log(`# quipDevice: device bytes per weight\n# ${lines.join('\n# ')}`);
  });

  it(`a rotation block above ${QUIP_DEVICE_MAX_BLOCK} (a prime dimension) stays on the host path, as float32`, async () => {
    // parts made up (the quantizer's Hessian and LDLQ at this width take long): 1031 is prime, one dense 1031×1031 rotation
    const rows = 4, cols = 1031, bits = 2;
    const codes = Uint8Array.from(randF32(rows * cols, 9, 1), (v) => Math.floor((v + 1) * 2) & 3);
    const parts: QuipLayerParts = {
      rows, cols, bits, qweight: packQuipCodes(codes, rows, cols, bits), scale: half(0.05), seed: 8, fp16: true,
      D: Float32Array.from(randF32(cols, 10, 0.5), (v) => 1 + v),
    };
    const c = { w: PACKED_KINDS.quip!.open(quipTensors(parts), bits), parts };
    const w = gpu!.uploadQuantized(c.w);
    assert.equal(gpu!.deviceBytes(w), 4 * rows * cols);
    const x = gpu!.upload(eye(cols).subarray(0, 5 * cols), [5, cols]);
    const y = await run(gpu!, [x], () => gpu!.linear(x, w));
    gpu!.free(w);
    const want = c.w.materialize!(); // rebuildQuipWeight with the transforms the upload drew (the layer keeps them)
    for (let i = 0; i < 5; i++) for (let r = 0; r < rows; r++) assert.equal(y[i * rows + r], want[r * cols + i]);
  });

  describe('the bundled model quantized with QuIP', () => {
    let dir = '';
    before(() => { dir = mkdtempSync(join(tmpdir(), 'lowbit-quip-device-')); });
    after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

    it('perplexity on WebGPU (weights rebuilt on the device) within 1e-4 relative of the CPU\'s', async () => {
      const lines: string[] = [];
      for (const bits of [2, 4]) {
        const out = join(dir, `quip${bits}`);
        await quantizeModel(openModel(TINY656K), cpu, { method: 'quip', bits, calib: 'c4', nsamples: 4, seqlen: 256, out });
        const ckpt = openModel(out);
        const down = ckpt.weights.readQuantized!(NAMES.layer(0, 'mlp.down_proj'))!, w = gpu!.uploadQuantized(down);
        assert.ok(gpu!.deviceBytes(w) < down.rows * down.cols, 'the layers are rebuilt on the device (not float32)');
        gpu!.free(w);
        const want = await evaluatePpl(ckpt, cpu, 'tinystories', { seqlen: 512, limit: 2 });
        const got = await evaluatePpl(ckpt, gpu!, 'tinystories', { seqlen: 512, limit: 2 });
        const rel = Math.abs(got.ppl - want.ppl) / want.ppl;
        assert.ok(rel <= 1e-4, `QuIP W${bits}: ${got.ppl} vs CPU ${want.ppl}, relative difference ${rel.toExponential(2)}`);
        lines.push(`QuIP W${bits} tinystories: cpu ${want.ppl.toFixed(6)}, webgpu ${got.ppl.toFixed(6)}, relative ${rel.toExponential(1)}`);
      }
      console.log(`# quipDevice: ${lines.join('\n# ')}`);
    });
  });
});
