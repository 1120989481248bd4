/**
 * A WebGPU device that fails mid-run (issue 13: "device lost mid-run → a clear error, nothing half-written"). The
 * CLI runs with LOWBIT_WEBGPU_LOSE_AFTER=N (tests only: the device is destroyed after its N-th dispatch, as a
 * driver reset would take it): `eval --out` and `quantize --out` must end with the one line and exit 2 and leave
 * nothing in their output folder. In process: the read after a loss throws a DeviceError (a LowbitError); a device
 * out of memory is a DeviceError too, a validation error a plain Error (a bug). Skipped without an adapter.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { loseAfterOf, type GpuCapabilities } from '../../src/backend/webgpu/capabilities.js';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { DeviceError, LowbitError } from '../../src/errors.js';
import { runCliAsync } from '../cli/helpers.js';

const made = await createWebGpuBackend(jsKernels, 'js');
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
const LOST = 'lowbit: webgpu: the device was lost (destroyed): device was destroyed; nothing after it was trusted or written';

describe('a WebGPU device lost mid-run', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-lost-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('eval --out and quantize --out (GPTQ) end with one line and exit 2, and write nothing', async () => {
    // the quantize run makes 250 to 300 dispatches: lost at the 200th, in its second block, after reads of the first
    const runs: [string, string[]][] = [
      ['40', ['eval', '--backend', 'webgpu', '--ppl', 'tinystories', '--limit', '2', '--out', join(dir, 'eval.json')]],
      ['200', ['quantize', '--method', 'gptq', '--wbits', '4', '--group', '128', '--calib', 'c4', '--nsamples', '2', '--seqlen', '256',
        '--backend', 'webgpu', '--out', join(dir, 'gptq')]],
    ];
    for (const [after, args] of runs) { // one at a time: two cores
      const r = await runCliAsync(args, { env: { LOWBIT_WEBGPU_LOSE_AFTER: after }, timeoutMs: 120_000 });
      const lines = r.stderr.split('\n').filter((l) => l && !/artificially reduced/.test(l)); // Dawn's own notices on lavapipe
      assert.deepEqual(lines, [LOST], `${args[0]}: ${r.stderr}`);
      assert.equal(r.status, 2, args[0]);
    }
    assert.deepEqual(readdirSync(dir), [], 'nothing written, not even a temporary file');
  });

  it('LOWBIT_WEBGPU_LOSE_AFTER takes a whole number of dispatches; anything else is refused in one line', () => {
    assert.equal(loseAfterOf(undefined), undefined);
    assert.equal(loseAfterOf(''), undefined);
    assert.equal(loseAfterOf('12'), 12);
    for (const bad of ['0', '-1', '1.5', 'x', '07']) assert.throws(() => loseAfterOf(bad), /^Error: LOWBIT_WEBGPU_LOSE_AFTER is '.*'; expected a whole number of dispatches \(1 or more\)$/);
  });

  it('an uncaptured out-of-memory error is a DeviceError, a validation error a plain Error (a fake device)', () => {
    class GPUOutOfMemoryError { constructor(readonly message: string) {} }
    class GPUValidationError { constructor(readonly message: string) {} }
    const make = () => {
      const target = new EventTarget();
      const fake = Object.assign(target, { lost: new Promise(() => {}), createBuffer: () => ({}) }) as unknown as GPUDevice;
      return { gpu: new GpuDevice(fake, {} as GpuCapabilities), target };
    };
    const raise = (target: EventTarget, error: object) => target.dispatchEvent(Object.assign(new Event('uncapturederror'), { error }));
    const a = make();
    a.gpu.check();
    raise(a.target, new GPUOutOfMemoryError('Out of memory\nsecond line'));
    raise(a.target, new GPUValidationError('later'));
    assert.throws(() => a.gpu.check(), (e) => e instanceof DeviceError && e.message === 'webgpu: the device ran out of memory: Out of memory');
    const b = make();
    raise(b.target, new GPUValidationError('Binding size too small'));
    assert.throws(() => b.gpu.check(), (e) => !(e instanceof LowbitError) && (e as Error).message === 'WebGPU error: Binding size too small');
  });

  // last: it destroys this process's device
  it('in process, the read after a loss throws a DeviceError; the next backend gets a new device', async () => {
    assert.ok(made.ok);
    const gpu = (made.backend as unknown as { gpu: GpuDevice }).gpu;
    const buf = gpu.upload('x', new Float32Array(4).fill(2));
    assert.deepEqual([...new Float32Array(await gpu.read(buf, 16))], [2, 2, 2, 2]);
    gpu.device.destroy();
    await assert.rejects(gpu.read(buf, 16), (e) => e instanceof DeviceError && e.message === LOST.slice('lowbit: '.length));
    // the lost device is not handed out again: a new backend gets a new device, which works
    const again = await createWebGpuBackend(jsKernels, 'js');
    assert.ok(again.ok, again.ok ? '' : again.reason);
    const gpu2 = (again.backend as unknown as { gpu: GpuDevice }).gpu;
    assert.notEqual(gpu2.device, gpu.device);
    const buf2 = gpu2.upload('y', new Float32Array(4).fill(3));
    assert.deepEqual([...new Float32Array(await gpu2.read(buf2, 16))], [3, 3, 3, 3]);
  });
});
