/**
 * The search ops AWQ's scale search runs on the backend (Backend.scaledFakeQuant, Backend.sumSquaredDiff):
 * the WebGPU candidate weights equal the host's quantizeScaledInto bit for bit (ties, constant groups,
 * fp16-rounded scales down to fp16's subnormals and up to its overflow, weights split in row parts), the
 * squared-difference sums agree with float64, and AWQ makes the same choices and the same checkpoint with
 * the ops as with candidates made on the host and outputs read back, on the CPU and on WebGPU.
 * Without an adapter the WebGPU cases are skipped with the reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { quantizeScaledInto } from '../../src/quant/methods/awqQuantizer.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { randF32 } from './kernelCases.js';
import { withoutOps } from './withoutOps.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const gpu = made.ok ? made.backend : undefined;
// the same adapter planning with a 1 KiB binding limit: a weight of more than 256 floats is split in row parts
const split = made.ok ? await createWebGpuBackend(jsKernels, 'js, 1 thread', { maxBinding: 1024 }) : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# searchOps: WebGPU cases skipped: ${made.reason}`);

interface Case { rows: number; cols: number; group: number; bits: number; f16: boolean; w: Float32Array; s: Float32Array }

/** Weights and scales with the cases a float32 port gets wrong first. */
function cases(): Case[] {
  const out: Case[] = [];
  let seed = 1;
  for (const [rows, cols, group] of [[5, 64, 32], [3, 96, -1], [9, 256, 128], [2, 8, 8]] as const) {
    for (const bits of [2, 3, 4, 8]) {
      for (const f16 of [false, true]) {
        const w = randF32(rows * cols, seed++, 2), s = randF32(cols, seed++, 1);
        for (let c = 0; c < cols; c++) s[c] = Math.fround(0.25 + Math.abs(s[c]!) * 3);
        const gs = group === -1 ? cols : group, maxq = 2 ** bits - 1;
        // row 0, first group: s = 1 and values on the grid's half-way points (ties, to even)
        for (let c = 0; c < gs; c++) { s[c] = 1; w[c] = c === 0 ? 0 : c === 1 ? maxq : (c % maxq) + 0.5; }
        // row 1: a constant group (range below 1e-5) and a group of tiny values (fp16-subnormal scales)
        if (rows > 1) for (let c = 0; c < cols; c++) w[cols + c] = c < gs ? 0.375 : Math.fround(3e-7 * ((c % 5) - 2));
        // the last row: huge values, an fp16 scale above 65504
        for (let c = 0; c < cols; c++) w[(rows - 1) * cols + c] = Math.fround(3e6 * Math.sin(c + 1));
        out.push({ rows, cols, group, bits, f16, w, s });
      }
    }
  }
  return out;
}

async function viaBackend(be: Backend, k: Case): Promise<Float32Array> {
  const w = be.uploadWeight(new Tensor('f32', [k.rows, k.cols], k.w)), s = be.upload(k.s, [k.cols]);
  const q = be.scaledFakeQuant!(w, s, { groupSize: k.group, bits: k.bits, f16Scale: k.f16 });
  const out = (await be.read(q)).slice();
  for (const x of [w, s, q]) be.free(x);
  return out;
}

function onHost(k: Case): Float32Array {
  const out = new Float32Array(k.rows * k.cols);
  quantizeScaledInto(k.w, k.rows, k.cols, k.s, k.group, k.bits, k.f16 ? 'f16' : 'f32', out);
  return out;
}

/** Pairs of outputs with outliers, cancellations and lengths that are not multiples of a workgroup. */
function pairs(): [Float32Array, Float32Array][] {
  return [7, 256, 1000, 70001].map((n, i) => {
    const a = randF32(n, 100 + i, 4), b = Float32Array.from(a, (v, j) => v + (j % 7 === 0 ? 1e-6 * v : randF32(1, 1000 * i + j)[0]!));
    a[0] = 3e4; b[0] = -2e4;
    return [a, b];
  });
}

function float64Sum(ps: readonly [Float32Array, Float32Array][]): number {
  let s = 0;
  for (const [a, b] of ps) for (let i = 0; i < a.length; i++) { const d = a[i]! - b[i]!; s += d * d; }
  return s;
}

async function sumVia(be: Backend, ps: readonly [Float32Array, Float32Array][]): Promise<number> {
  const ts = ps.map(([a, b]) => [be.upload(a, [a.length]), be.upload(b, [b.length])] as const);
  const r = await be.sumSquaredDiff!(ts);
  for (const [a, b] of ts) { be.free(a); be.free(b); }
  return r;
}

describe('search ops', () => {
  it('scaledFakeQuant on WebGPU equals the host\'s quantizeScaledInto bit for bit', { skip }, async () => {
    for (const k of cases()) {
      const want = onHost(k);
      const tag = `${k.rows}×${k.cols} g${k.group} ${k.bits} bits${k.f16 ? ' fp16 scales' : ''}`;
      assert.deepEqual(await viaBackend(gpu!, k), want, tag);
      assert.ok(split?.ok);
      assert.deepEqual(await viaBackend(split.backend, k), want, `${tag}, in row parts`);
    }
  });

  it('scaledFakeQuant refuses a group size that does not divide the columns and a quantized weight\'s dtype', { skip }, () => {
    const w = gpu!.uploadWeight(new Tensor('f32', [2, 12], new Float32Array(24))), s = gpu!.upload(new Float32Array(12), [12]);
    assert.throws(() => gpu!.scaledFakeQuant!(w, s, { groupSize: 5, bits: 4, f16Scale: false }), /group size 5 does not divide 12 columns/);
    const h = gpu!.uploadWeight(new Tensor('f16', [2, 12], new Uint16Array(24)));
    assert.throws(() => gpu!.scaledFakeQuant!(h, s, { groupSize: 4, bits: 4, f16Scale: false }), /must be a float32 weight, got f16/);
    for (const x of [w, s, h]) gpu!.free(x);
  });

  it('sumSquaredDiff: the CPU is the float64 sum exactly, WebGPU within 1e-12 of it', async () => {
    const ps = pairs(), want = float64Sum(ps);
    assert.equal(await sumVia(cpu, ps), want);
    if (gpu) {
      const got = await sumVia(gpu, ps);
      assert.ok(Math.abs(got - want) <= 1e-12 * want, `WebGPU ${got} against float64 ${want}`);
      assert.equal(await sumVia(gpu, ps), got, 'deterministic run to run');
    }
  });

  const ck = openModel(TINY656K);
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-search-'));
  /** AWQ W4 g32 (a short grid, no clipping: the scale search alone) and what it chose. */
  async function awq(be: Backend, tag: string) {
    const out = join(tmp, tag);
    const r = await quantizeModel(ck, be, {
      method: 'awq', bits: 4, group: 32, options: { awqGrid: 5, awqClip: false },
      calib: 'c4', nsamples: 2, seqlen: 128, seed: 0, dataDir: DATA, out,
    });
    return { choices: r.blocks?.map((b) => b.awq), weights: readFileSync(join(out, 'model.safetensors')) };
  }

  it('AWQ on the CPU: the same losses, choices and checkpoint with the ops as with outputs read back', async () => {
    const a = await awq(cpu, 'cpu-op'), b = await awq(withoutOps(cpu, ['scaledFakeQuant', 'sumSquaredDiff']), 'cpu-host');
    assert.deepEqual(a.choices, b.choices);
    assert.ok(a.weights.equals(b.weights));
  });

  it('AWQ on WebGPU: the same choices and checkpoint with the ops as with candidates from the host', { skip }, async () => {
    const a = await awq(gpu!, 'gpu-op'), b = await awq(withoutOps(gpu!, ['scaledFakeQuant', 'sumSquaredDiff']), 'gpu-host');
    const indices = (c: typeof a.choices) => c?.map((x) => Object.values((x as { scaleRatios: Record<string, unknown> }).scaleRatios)
      .map((r) => (typeof r === 'string' ? r : (r as { index: number }).index)));
    assert.deepEqual(indices(a.choices), indices(b.choices));
    assert.ok(a.weights.equals(b.weights));
  });
});
