/**
 * WebGPU causal attention time, reference kernel (one invocation per query row and head, keys read
 * from storage) next to the tiled flash-style kernel (K/V tiles in workgroup memory shared by 64
 * query rows), on whatever adapter exists. Device time (timestamp-query) when the adapter has it,
 * else wall clock around a read; best of three after a warm-up. Prints; asserts nothing.
 *   node dist/bench/webgpuAttention.js [--shapes T:H:KVH:HD,...]   (default 512:8:4:16,1024:8:8:64)
 */
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';

const i = process.argv.indexOf('--shapes');
const shapes = (i >= 0 ? process.argv[i + 1]! : '512:8:4:16,1024:8:8:64').split(',').map((s) => s.split(':').map(Number) as [number, number, number, number]);

async function seconds(be: WebGpuBackend, T: number, H: number, KVH: number, hd: number, device: boolean): Promise<number> {
  const q = be.upload(Float32Array.from({ length: T * H * hd }, (_, j) => Math.sin(j)), [T, H * hd]);
  const k = be.upload(Float32Array.from({ length: T * KVH * hd }, (_, j) => Math.cos(j)), [T, KVH * hd]);
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    if (device) be.timePasses();
    const t0 = performance.now();
    const y = be.attention(q, k, k, { nHeads: H, nKvHeads: KVH, headDim: hd, offset: 0 });
    const s = device ? await be.gpuSeconds() : (await be.read(y), (performance.now() - t0) / 1000);
    be.free(y);
    if (r > 0) best = Math.min(best, s);
  }
  be.free(q);
  be.free(k);
  return best;
}

const made = await Promise.all((['reference', 'fast'] as const).map((kernels) => createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels })));
if (!made[0]!.ok || !made[1]!.ok) {
  console.log(`webgpu attention: no adapter (${made[0]!.ok ? '' : made[0]!.reason}); nothing measured`);
} else {
  const [ref, fast] = made.map((m) => (m as { backend: WebGpuBackend }).backend) as [WebGpuBackend, WebGpuBackend];
  const device = ref.timePasses() && (await ref.gpuSeconds(), true);
  console.log(`webgpu causal attention, ms, on ${ref.caps.adapterName}; ${device ? 'device time (timestamp-query)' : 'wall clock around a read'}`);
  console.log('| T | heads / KV heads | head size | reference | tiled |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const [T, H, KVH, hd] of shapes) {
    const [a, b] = [await seconds(ref, T, H, KVH, hd, device), await seconds(fast, T, H, KVH, hd, device)];
    console.log(`| ${T} | ${H} / ${KVH} | ${hd} | ${(a * 1e3).toFixed(2)} | ${(b * 1e3).toFixed(2)} |`);
  }
}
