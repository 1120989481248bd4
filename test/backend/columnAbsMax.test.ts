/**
 * SmoothQuant's per-channel activation statistics on the backend (Backend.columnAbsMax, used by
 * BlockJob.captureAbsMax): the op on WebGPU equals the CPU's bit for bit (a maximum has no rounding),
 * and a SmoothQuant run gives the same smoothing scales and checkpoint whether the statistics are
 * reduced on the backend or from activations read back to the host (a backend without the op), on
 * the CPU and on WebGPU. Without an adapter the WebGPU cases are skipped with the reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { randF32 } from './kernelCases.js';
import { withoutOps } from './withoutOps.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# columnAbsMax: WebGPU cases skipped: ${made.reason}`);

/** acc after three sequences of x [T, C], with −0, ties and one channel that stays 0. */
async function absMax(be: Backend, C: number, Ts: readonly number[]): Promise<Float32Array> {
  const acc = be.upload(new Float32Array(C), [C]);
  Ts.forEach((T, s) => {
    const v = randF32(T * C, 7 * s + C, 3);
    for (let i = 0; i < v.length; i += 5) v[i] = -v[i]!;
    for (let i = 0; i < v.length; i += C) v[i] = i % 2 ? -0 : 0;
    const x = be.upload(v, [T, C]);
    be.columnAbsMax!(x, acc);
    be.free(x);
  });
  const out = await be.read(acc);
  be.free(acc);
  return out;
}

/** The host reference: `a > m` over every row, as SmoothQuant's get_act_scales. */
function reference(C: number, Ts: readonly number[]): Float32Array {
  const m = new Float32Array(C);
  Ts.forEach((T, s) => {
    const v = randF32(T * C, 7 * s + C, 3);
    for (let i = 0; i < v.length; i += 5) v[i] = -v[i]!;
    for (let i = 0; i < v.length; i += C) v[i] = i % 2 ? -0 : 0;
    for (let i = 0; i < v.length; i++) { const a = Math.abs(v[i]!); if (a > m[i % C]!) m[i % C] = a; }
  });
  return m;
}

const SHAPES: [number, number[]][] = [[1, [3, 1, 2]], [37, [5, 17, 1]], [300, [64, 3, 129]]];

describe('columnAbsMax', () => {
  it('CPU equals the host reference bit for bit', async () => {
    for (const [C, Ts] of SHAPES) assert.deepEqual(await absMax(cpu, C, Ts), reference(C, Ts), `C=${C}`);
  });

  it('WebGPU equals the CPU bit for bit', { skip }, async () => {
    for (const [C, Ts] of SHAPES) assert.deepEqual(await absMax(gpu!, C, Ts), await absMax(cpu, C, Ts), `C=${C}`);
  });

  const ck = openModel(TINY656K);
  const calib = { calib: 'c4', nsamples: 2, seqlen: 256, seed: 0, dataDir: DATA } as const;
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-absmax-'));
  /** SmoothQuant W8A8's smoothing scales and smoothed norms with statistics reduced on the backend or on the host. */
  async function smoothed(be: Backend, tag: string) {
    const out = join(tmp, tag);
    const r = await quantizeModel(ck, be, { method: 'smoothquant', bits: 8, options: { abits: 8 }, ...calib, out });
    const m = openModel(out);
    const norms = Array.from({ length: ck.config.numLayers }, (_, i) => m.weights.read(`model.layers.${i}.input_layernorm.weight`).toF32());
    assert.equal(r.blocks?.length, ck.config.numLayers, 'every block recorded its scales');
    return { blocks: r.blocks, norms };
  }

  it('SmoothQuant: the same scales with the statistics on the CPU backend or read back', async () => {
    assert.deepEqual(await smoothed(cpu, 'cpu-op'), await smoothed(withoutOps(cpu, ['columnAbsMax']), 'cpu-host'));
  });

  it('SmoothQuant: the same scales with the statistics on WebGPU or read back', { skip }, async () => {
    assert.deepEqual(await smoothed(gpu!, 'gpu-op'), await smoothed(withoutOps(gpu!, ['columnAbsMax']), 'gpu-host'));
  });
});
