/**
 * Provider selection (--cpu-kernels / --threads), the wasm pool's failure path, and wasm's own exp/log.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { loadNativeKernels } from '../../src/backend/cpu/kernels/native.js';
import { loadWasmKernels } from '../../src/backend/cpu/kernels/wasm.js';
import { JOB, OP } from '../../src/backend/cpu/wasm/pool.js';
import { PROVIDERS, availability, randF32 } from './kernelCases.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const wasm = PROVIDERS.find((p) => p.name === 'wasm')!;

describe('selectKernels', () => {
  it('js is always there, and says so', () => {
    const s = selectKernels('js', 4);
    assert.equal(s.kernels.name, 'js');
    assert.match(s.note, /^js, 1 thread/);
    assert.equal(typeof s.kernels.cholesky, 'function', 'linalg filled in');
  });

  it('auto prefers native, then wasm, then js, with the reasons for what it skipped', () => {
    const s = selectKernels('auto', 2);
    const native = loadNativeKernels(2), wasmK = loadWasmKernels(2);
    const want = native.ok ? 'native' : wasmK.ok ? 'wasm' : 'js';
    assert.equal(s.kernels.name, want);
    if (!native.ok) assert.ok(s.note.includes(`native unavailable: ${native.reason}`), s.note);
    if (want !== 'js') assert.match(s.note, /2 threads/);
  });

  it('the WebAssembly kernels ship built: they load without a build step or a toolchain', () => {
    const committed = join(PACKAGE_ROOT, 'src', 'backend', 'cpu', 'wasm', 'lowbit_kernels.wasm');
    assert.ok(existsSync(committed), committed);
    assert.ok(WebAssembly.validate(readFileSync(committed)), 'a valid module');
    const w = loadWasmKernels(1);
    assert.ok(w.ok, w.ok ? '' : w.reason);
    assert.equal(w.kernels.name, 'wasm');
  });

  it('rejects unknown preferences and thread counts', () => {
    assert.throws(() => selectKernels('gpu' as never), /--cpu-kernels: gpu is not one of auto, native, wasm, js/);
    assert.throws(() => selectKernels('auto', 0), /--threads: 0/);
  });

  it('a shape mismatch also throws on the js provider it hands out', () => {
    const { kernels } = selectKernels('js');
    assert.throws(() => kernels.gemm(new Float32Array(1), new Float32Array(1), new Float32Array(1), 1, 1, 2), /gemm: x has 1 elements, expected 2/);
  });
});

describe('wasm pool', availability(wasm), () => {
  it('a worker that dies makes the next call throw a clear error, not hang; the next load starts a new pool', { timeout: 20_000 }, () => {
    const r = loadWasmKernels(2);
    assert.ok(r.ok);
    const y = new Float32Array(256 * 64);
    r.kernels.gemm(randF32(256 * 64, 1), randF32(64 * 64, 2), y, 256, 64, 64); // 4 tasks: the worker started and working
    const want = y.slice();
    // A real failure: a one-task GEMM job, posted to the worker alone (the main thread takes no part), whose
    // arrays lie past the end of the wasm memory. The worker's kernel traps and the worker dies.
    const { pool } = r, ctrl = new Int32Array(pool.memory.buffer, pool.job, JOB.BYTES / 4);
    const outside = pool.memory.buffer.byteLength;
    [outside, outside, outside, 64, 64, 64, 0].forEach((v, i) => { ctrl[JOB.ARGS + i] = v; });
    ctrl[JOB.OP] = OP.GEMM;
    ctrl[JOB.NTASKS] = 1;
    Atomics.store(ctrl, JOB.NEXT, 0);
    Atomics.store(ctrl, JOB.LEFT, 0);
    Atomics.add(ctrl, JOB.GEN, 1);
    Atomics.notify(ctrl, JOB.GEN);
    assert.notEqual(Atomics.wait(ctrl, JOB.LEFT, 0, 10_000), 'timed-out');
    assert.equal(Atomics.load(ctrl, JOB.ERROR), 1, 'the supervisor saw worker 1 die');
    assert.throws(() => r.kernels.gemm(randF32(256 * 64, 1), randF32(64 * 64, 2), y, 256, 64, 64),
      /worker 1 of 1 failed: memory access out of bounds \(the pool is unusable/);
    assert.throws(() => r.kernels.gemm(randF32(256 * 64, 1), randF32(256 * 64, 2), new Float32Array(256 * 256), 256, 256, 64), /pool is unusable/);
    const again = loadWasmKernels(2);
    assert.ok(again.ok);
    assert.notEqual(again.pool, pool);
    const y2 = new Float32Array(256 * 64);
    again.kernels.gemm(randF32(256 * 64, 1), randF32(64 * 64, 2), y2, 256, 64, 64);
    assert.deepEqual(y2, want);
  });

  it('exp and log of kernels.c agree with Math.exp/Math.log to a few ulp, specials included', () => {
    const r = loadWasmKernels(1);
    assert.ok(r.ok);
    const { exp_f64, log_f64 } = r.pool.exports;
    for (let x = -745; x <= 709.7; x += 0.173) {
      const want = Math.exp(x), got = exp_f64(x);
      assert.ok(Math.abs(got - want) <= 4e-16 * want + 5e-324, `exp(${x}) = ${got}, want ${want}`);
    }
    for (let x = 1e-300; x < 1e300; x *= 1.9) {
      const want = Math.log(x), got = log_f64(x);
      assert.ok(Math.abs(got - want) <= 4e-16 * Math.abs(want) + 1e-300, `log(${x}) = ${got}, want ${want}`);
    }
    assert.ok(Number.isNaN(exp_f64(NaN)) && exp_f64(Infinity) === Infinity && exp_f64(-Infinity) === 0);
    assert.ok(Number.isNaN(log_f64(NaN)) && Number.isNaN(log_f64(-1)) && log_f64(0) === -Infinity && log_f64(Infinity) === Infinity);
  });
});
