/**
 * Backend.scope (tfjs `tidy`): tensors made inside are freed when it returns, except those in its
 * result; nested scopes hand kept tensors to the enclosing one; a throw frees everything made. On
 * WebGPU, counted with the backend's live-tensor counter, including whole block-streamed runs: a
 * perplexity evaluation and a GPTQ quantization leave as many live tensors as they found. CPU: the
 * same calls, whose results stay usable. WebGPU cases skip, with the reason, without an adapter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { TINY656K } from '../helpers/paths.js';

const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# scope: WebGPU cases skipped: ${made.reason}`);
const gpu = made.ok ? made.backend : undefined as never;

const x4 = (be: Backend) => be.upload(Float32Array.from([1, 2, 3, 4]), [2, 2]);

describe('Backend.scope on WebGPU (live-tensor counter)', { skip }, () => {
  it('frees what it made except its result (a tensor, or tensors in arrays/objects), at any nesting', async () => {
    const start = gpu.liveTensors;
    const a = x4(gpu);
    const kept = gpu.scope(() => {
      const b = gpu.add(a, a);
      const c = gpu.add(b, b);
      const inner = gpu.scope(() => { const d = gpu.add(c, c); gpu.add(d, d); return { d, list: [gpu.add(a, c)] }; });
      gpu.free(b); // freeing inside is allowed
      return { out: gpu.add(inner.d, inner.list[0]!), n: 3 };
    });
    assert.equal(gpu.liveTensors, start + 2); // a and kept.out
    assert.deepEqual([...await gpu.read(kept.out)], [13, 26, 39, 52]); // d + (a + c) = 8a + 5a
    gpu.free(kept.out); gpu.free(a);
    assert.equal(gpu.liveTensors, start);
  });

  it('a throw frees everything made inside; an async function is refused', () => {
    const start = gpu.liveTensors;
    assert.throws(() => gpu.scope(() => { gpu.add(x4(gpu), x4(gpu)); throw new Error('boom'); }), /^Error: boom$/);
    assert.equal(gpu.liveTensors, start);
    assert.throws(() => gpu.scope(async () => x4(gpu)), /^TypeError: scope: the function must be synchronous/);
    assert.equal(gpu.liveTensors, start);
  });

  it('block-streamed perplexity and GPTQ quantization end with the live tensors they started with', async () => {
    const ckpt = openModel(TINY656K);
    const start = gpu.liveTensors;
    const bytes = gpu.deviceMemory().liveBytes;
    await evaluatePpl(ckpt, gpu, 'tinystories', { seqlen: 64, limit: 2 });
    assert.equal(gpu.liveTensors, start, 'after evaluatePpl');
    // the device bytes too: every storage buffer made was destroyed; the peak held at least one block's weights
    const mem = gpu.deviceMemory();
    assert.equal(mem.liveBytes, bytes, 'device bytes after evaluatePpl');
    const blockWeights = ckpt.weights.list().filter((t) => t.name.startsWith('model.layers.0.')).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * 2, 0);
    assert.ok(mem.peakBytes >= bytes + blockWeights, `peak ${mem.peakBytes} below one block's weights ${blockWeights}`);
    const dir = mkdtempSync(join(tmpdir(), 'lowbit-scope-'));
    try {
      await quantizeModel(ckpt, gpu, { method: 'gptq', bits: 4, calib: 'c4', nsamples: 2, seqlen: 64, out: join(dir, 'q') });
    } finally { rmSync(dir, { recursive: true, force: true }); }
    assert.equal(gpu.liveTensors, start, 'after quantizeModel');
    assert.equal(gpu.deviceMemory().liveBytes, bytes, 'device bytes after quantizeModel');
  });
});

describe('Backend.scope on the CPU', () => {
  it('returns its result usable; nested; a throw propagates', async () => {
    const cpu = new CpuBackend(jsKernels, 'js');
    const a = x4(cpu);
    const r = cpu.scope(() => [cpu.scope(() => cpu.add(a, a))]);
    assert.deepEqual([...await cpu.read(r[0]!)], [2, 4, 6, 8]);
    assert.throws(() => cpu.scope(() => { throw new RangeError('inside'); }), /^RangeError: inside$/);
    assert.throws(() => cpu.scope(async () => 1), /must be synchronous/);
  });
});
