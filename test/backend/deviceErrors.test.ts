// The quantization reports' reconstruction error with the products on the backend (pipeline.ts
// backendReconstructionError, chosen where Backend.acceleratedGemm): the host's figure to float32 GEMM
// rounding, on the CPU backend and on WebGPU, in one chunk or several; on a software adapter the pipeline
// keeps the host's products; forced onto the device, a GPTQ run reports every layer's error within 1e-5 of
// the CPU backend's, says where they ran, and leaves no tensor behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { backendReconstructionError, reconstructionError } from '../../src/quant/pipeline.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { openModel } from '../../src/io/open.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA, TINY656K } from '../helpers/paths.js';
import { rng } from './kernelCases.js';
import type { Backend } from '../../src/backend/backend.js';

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { acceleratedGemm: true });
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# deviceErrors: WebGPU part skipped: ${made.reason}`);

test('backendReconstructionError is the host\'s reconstructionError to float32 GEMM rounding', async () => {
  const r = rng(11), rows = 37, cols = 96;
  const W = Float32Array.from({ length: rows * cols }, () => r() - 0.5);
  const Q = W.map((w) => Math.round(w * 8) / 8);
  const acc = new HessianAccumulator(cols);
  for (let s = 0; s < 3; s++) acc.add(Float32Array.from({ length: 40 * cols }, () => r() - 0.5), 40);
  const H = acc.finish();
  const host = reconstructionError(W, Q, rows, cols, H, jsKernels.gemm);
  const bes: [string, Backend][] = [['cpu', new CpuBackend(jsKernels)]];
  if (made.ok) bes.push(['webgpu', made.backend]);
  // H in row parts, as a [14336, 14336] one is on a device with 128 MiB bindings
  const parts = await createWebGpuBackend(jsKernels, 'js, 1 thread', { maxBinding: 16 * 1024 });
  if (parts.ok) bes.push(['webgpu, 16 KiB bindings', parts.backend]);
  for (const [name, be] of bes) {
    const Ht = be.uploadWeight(new Tensor('f32', [cols, cols], Float32Array.from(H)));
    for (const chunkValues of [1 << 24, 5 * cols, cols]) { // one chunk, 8 chunks (the last ragged), one row a chunk
      const got = await backendReconstructionError(be, W, Q, rows, cols, Ht, chunkValues);
      assert.ok(Math.abs(got - host) <= 1e-5 * host, `${name}, ${chunkValues} a chunk: ${got} vs ${host}`);
    }
    be.free(Ht);
  }
});

test('a software adapter keeps the host\'s products (acceleratedGemm false)', { skip }, async () => {
  const plain = await createWebGpuBackend(jsKernels, 'js, 1 thread');
  assert.ok(plain.ok);
  assert.equal(plain.backend.acceleratedGemm, !plain.backend.caps.software);
  assert.equal((new CpuBackend(jsKernels) as Backend).acceleratedGemm, undefined);
});

test('GPTQ on WebGPU with the errors\' products on the device: every layer\'s error within 1e-5 of the CPU backend\'s; nothing left behind', { skip }, async () => {
  const be = made.ok ? made.backend : undefined!;
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-deverr-'));
  const run = (b: Backend, out: string) => quantizeModel(openModel(TINY656K), b, {
    method: 'gptq', bits: 4, group: 32, nsamples: 4, seqlen: 128, seed: 0, dataDir: DATA, out: join(tmp, out), calib: 'c4',
  });
  const live = be.liveTensors;
  // square weights uploaded: the H for the errors (one per input and block), and q_proj and o_proj (128×128)
  const squares = async (b: typeof be, out: string) => {
    let n = 0;
    const own = b.uploadWeight.bind(b);
    b.uploadWeight = (t: Tensor) => { if (t.shape[0] === t.shape[1]) n++; return own(t); };
    try {
      return { report: await run(b, out), n };
    } finally {
      delete (b as { uploadWeight?: unknown }).uploadWeight; // the prototype's again
    }
  };
  const { report: dev, n } = await squares(be, 'webgpu');
  const plain = await createWebGpuBackend(jsKernels, 'js, 1 thread', { acceleratedGemm: false });
  assert.ok(plain.ok);
  const hostErrors = await squares(plain.backend, 'webgpu-host-errors');
  assert.equal(n - hostErrors.n, 8, 'H uploaded once per input (4) in each of 2 blocks');
  assert.equal(hostErrors.report.errorProducts, 'host');
  assert.equal(be.liveTensors, live, 'every H uploaded for the errors is freed');
  const cpu = await run(new CpuBackend(jsKernels), 'cpu');
  assert.equal(dev.errorProducts, 'backend');
  assert.equal(cpu.errorProducts, 'host');
  assert.equal(dev.layers.length, 14);
  for (let i = 0; i < dev.layers.length; i++) {
    const a = dev.layers[i]!.error!, b = cpu.layers[i]!.error!;
    assert.ok(b > 0 && Math.abs(a - b) <= 1e-5 * b, `${dev.layers[i]!.name}: ${a} vs ${b}`);
  }
});
