/**
 * WebGPU Gram (Backend.gram: S += xᵀx for x[T, K], GPTQ's Hessian sum in two-float pairs), the
 * reference kernel (one entry per invocation, x from global memory) next to the fast tiled kernel
 * (kernels/gramFast.wgsl.ts; the same sums bit for bit) and `--hessian f32`'s float32 GEMM per call
 * (column f32: fast kernels, precision 'f32'), on whatever adapter exists (Mesa's lavapipe
 * on a machine without a GPU). Prints; asserts nothing. A figure is the best of up to three calls
 * after a small warm-up call (fewer when a call takes over 10 s); time is the device's
 * (timestamp-query) when the adapter has it, else the wall clock around the call and one small read
 * back. Also printed: entry-tokens per second (K(K+1)/2 · T per call), the process's CPU seconds of
 * the best call (on lavapipe the device's work runs on this process's threads, so this figure moves
 * less than the time when other jobs share the cores; on a GPU it is the driver's share) and the
 * time the 128 × 2048 tokens of one GPTQ calibration set would take at that rate. Without an adapter
 * it prints why and exits 0. The header names the fast kernel's TwoProduct error on this device (fma(a, b, −p)
 * where the probe found fma fused, else the split products); column fast-split is the fast kernel with the
 * split products whatever the probe found (on a fused device: the step the fma replaces).
 *   node dist/bench/webgpuGram.js [--shapes 1024:2048,4096:2048] [--kernels reference,fast,fast-split,f32]
 */
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const shapes = arg('--shapes', '1024:2048,4096:2048').split(',').map((s) => s.split(':').map(Number) as [number, number]);
type Kind = 'reference' | 'fast' | 'fast-split' | 'f32';
const kinds = arg('--kernels', 'reference,fast,f32').split(',') as Kind[];
for (const k of kinds) if (!['reference', 'fast', 'fast-split', 'f32'].includes(k)) throw new Error(`--kernels: '${k}' is not reference, fast, fast-split or f32`);
const CALIB_TOKENS = 128 * 2048;

/** Deterministic values in [−0.5, 0.5), every 97th channel ×50 (outliers). */
function values(T: number, K: number): Float32Array {
  return Float32Array.from({ length: T * K }, (_, i) => ((((i * 7919) % 1000) / 1000) - 0.5) * (i % K % 97 === 5 ? 50 : 1));
}

/** Seconds of one gram call of x[T, K] (the best of the calls) and the process's CPU seconds during that call. */
async function timeCall(be: WebGpuBackend, K: number, T: number, device: boolean, precision: 'f64' | 'f32'): Promise<[number, number]> {
  const x = be.upload(values(T, K), [T, K]);
  const probe = be.upload(new Float32Array(1), [1, 1]);
  const acc = be.gramAccumulator(K, precision);
  const warm = be.upload(values(Math.min(T, 8), K), [Math.min(T, 8), K]);
  be.gram(warm, acc); // warm-up: compiles the pipeline
  await be.read(probe);
  be.free(warm);
  let best = Infinity, bestCpu = 0;
  for (let r = 0; r < 3; r++) {
    if (device) be.timePasses();
    const t0 = performance.now(), c0 = process.cpuUsage();
    be.gram(x, acc);
    const dt = device ? await be.gpuSeconds() : (await be.read(probe), (performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    if (dt < best) [best, bestCpu] = [dt, (c.user + c.system) / 1e6];
    if (dt > 10) break;
  }
  await be.readGram(acc);
  be.free(x);
  be.free(probe);
  return [best, bestCpu];
}

const made = await Promise.all(kinds.map((k) => createWebGpuBackend(jsKernels, 'js, 1 thread', {
  kernels: k === 'reference' ? 'reference' : 'fast', ...(k === 'fast-split' ? { fma: 'off' as const } : {}),
})));
const first = made[0]!;
if (!first.ok) {
  console.log(`webgpu Gram: no adapter (${first.reason}); nothing measured`);
} else {
  const device = first.backend.timePasses() && (await first.backend.gpuSeconds(), true);
  const caps = first.backend.caps;
  console.log(`webgpu Gram S += xᵀx (two-float sums; f32: a float32 GEMM per call), ${kinds.join(' / ')}, on ${caps.adapterName} (${caps.runtime}); ${device ? 'device time (timestamp-query)' : 'wall clock around a read'}`);
  console.log(`fast kernel's TwoProduct error: ${caps.fmaFused ? 'fma(a, b, −p), 10 float operations per entry-token' : 'split products, 17 float operations per entry-token'} (fma probe: ${caps.fmaProbe})`);
  console.log(`| K | T | ${kinds.map((k) => `${k}: s per call (G entry-tokens/s; CPU s)`).join(' | ')} | 128 × 2048 tokens at the last column's rate |`);
  console.log(`| --- | --- |${kinds.map(() => ' --- |').join('')} --- |`);
  for (const [K, T] of shapes) {
    const cells: string[] = [];
    let lastRate = 0;
    for (const [i, m] of made.entries()) {
      if (!m.ok) { cells.push('–'); continue; }
      try {
        const [s, cpu] = await timeCall(m.backend, K, T, device, kinds[i] === 'f32' ? 'f32' : 'f64');
        lastRate = (K * (K + 1) / 2) * T / s;
        cells.push(`${s.toPrecision(3)} (${(lastRate / 1e9).toPrecision(3)}; ${cpu.toPrecision(3)})`);
      } catch (e) { // e.g. x above the adapter's binding limit: say so, go on
        console.log(`(K = ${K}, T = ${T}: ${(e as Error).message})`);
        cells.push('–');
      }
    }
    const calib = lastRate > 0 ? `${((K * (K + 1) / 2) * CALIB_TOKENS / lastRate).toPrecision(3)} s` : '–';
    console.log(`| ${K} | ${T} | ${cells.join(' | ')} | ${calib} |`);
  }
}
