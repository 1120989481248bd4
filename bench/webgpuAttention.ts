/**
 * WebGPU causal attention time, reference kernels next to the tiled ones, on whatever adapter exists:
 *   forward   the reference (one invocation per query row and head, keys read from storage) and the
 *             flash-style kernel (K/V tiles in workgroup memory shared by 64 query rows);
 *   backward  attentionBackward's two reference kernels (per query row: statistics and dq; per key
 *             row: dk and dv) and the tiled ones (K/V tiles shared by 64 query rows; q/dout/stats
 *             tiles shared by 64 key rows), both kernels together.
 * Device time (timestamp-query) when the adapter has it, else wall clock around a read; best of three
 * after a warm-up. Prints; asserts nothing.
 *   node dist/bench/webgpuAttention.js [--shapes T:H:KVH:HD,...] [--backward-shapes T:H:KVH:HD,...]
 *   (defaults 512:8:4:16,1024:8:8:64 and 512:8:4:64; an empty list skips that table)
 */
import type { BTensor } from '../src/backend/backend.js';
import { jsKernels } from '../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/webgpuBackend.js';

type Shape = [number, number, number, number];
function shapesOf(flag: string, dflt: string): Shape[] {
  const i = process.argv.indexOf(flag);
  const list = i >= 0 ? process.argv[i + 1] ?? '' : dflt;
  return list.split(',').filter((s) => s !== '').map((s) => s.split(':').map(Number) as Shape);
}
const forwardShapes = shapesOf('--shapes', '512:8:4:16,1024:8:8:64');
const backwardShapes = shapesOf('--backward-shapes', '512:8:4:64');

/** Best of three timed calls of `op` (after one untimed) on q[T, H·hd], k = v[T, KVH·hd] and dout = q. */
async function seconds(be: WebGpuBackend, [T, H, KVH, hd]: Shape, device: boolean, op: (q: BTensor, k: BTensor) => BTensor[]): Promise<number> {
  const q = be.upload(Float32Array.from({ length: T * H * hd }, (_, j) => Math.sin(j)), [T, H * hd]);
  const k = be.upload(Float32Array.from({ length: T * KVH * hd }, (_, j) => Math.cos(j)), [T, KVH * hd]);
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    if (device) be.timePasses();
    const t0 = performance.now();
    const ys = op(q, k);
    const s = device ? await be.gpuSeconds() : (await be.read(ys[ys.length - 1]!), (performance.now() - t0) / 1000);
    for (const y of ys) be.free(y);
    if (r > 0) best = Math.min(best, s);
  }
  be.free(q);
  be.free(k);
  return best;
}

async function table(title: string, shapes: Shape[], ref: WebGpuBackend, fast: WebGpuBackend, device: boolean,
  op: (be: WebGpuBackend, s: Shape) => (q: BTensor, k: BTensor) => BTensor[]): Promise<void> {
  if (shapes.length === 0) return;
  console.log(`${title}, ms, on ${ref.caps.adapterName}; ${device ? 'device time (timestamp-query)' : 'wall clock around a read'}`);
  console.log('| T | heads / KV heads | head size | reference | tiled |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const s of shapes) {
    const a = await seconds(ref, s, device, op(ref, s)), b = await seconds(fast, s, device, op(fast, s));
    console.log(`| ${s[0]} | ${s[1]} / ${s[2]} | ${s[3]} | ${(a * 1e3).toFixed(2)} | ${(b * 1e3).toFixed(2)} |`);
  }
}

const made = await Promise.all((['reference', 'fast'] as const).map((kernels) => createWebGpuBackend(jsKernels, 'js, 1 thread', { kernels })));
if (!made[0]!.ok || !made[1]!.ok) {
  console.log(`webgpu attention: no adapter (${made[0]!.ok ? '' : made[0]!.reason}); nothing measured`);
} else {
  const [ref, fast] = made.map((m) => (m as { backend: WebGpuBackend }).backend) as [WebGpuBackend, WebGpuBackend];
  const device = ref.timePasses() && (await ref.gpuSeconds(), true);
  const opts = ([, H, KVH, hd]: Shape) => ({ nHeads: H, nKvHeads: KVH, headDim: hd, offset: 0 });
  await table('webgpu causal attention', forwardShapes, ref, fast, device, (be, s) => (q, k) => [be.attention(q, k, k, opts(s))]);
  await table('webgpu causal attention backward (dq, dk, dv)', backwardShapes, ref, fast, device, (be, s) => (q, k) => {
    const g = be.attentionBackward(q, k, k, q, opts(s));
    return [g.dq, g.dk, g.dv];
  });
}
