/**
 * The rebuilt-QuIP-weight cache and the butterflies' place on WebGPU (quipCache.ts, kernels/quipRebuild.ts):
 * multiplies through the cache (butterflies kept on the device) give the same bits as rebuilding for every
 * multiply (budget 0, butterflies uploaded per rebuild: the behaviour before the cache), across several
 * multiplies of interleaved layers, linear and linearT; a budget of two weights evicts the least recently
 * used and frees it; freeing a layer frees its kept weight, also while a recorded multiply still reads it;
 * the rule that puts the butterflies on the device, and the bytes a layer then holds; the env variable's
 * parsing. Layers are made-up codes (the rebuild does not care how they were found). Without a WebGPU
 * adapter the device cases are skipped with the reason, never passed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { QUIP_CACHE_MIB, quipCacheBytesOf } from '../../src/backend/webgpu/capabilities.js';
import { QUIP_BUTTERFLY_RATIO, quipButterfliesOnDevice } from '../../src/backend/webgpu/kernels/quipRebuild.js';
import { PACKED_KINDS } from '../../src/tensor/kinds.js';
import type { KindLayer } from '../../src/tensor/packed.js';
import { half, packQuipCodes, quipTensors, quipWords } from '../../src/tensor/quipPack.js';
import { butterflyFactors } from '../../src/tensor/quipTransform.js';
import type { BTensor } from '../../src/backend/backend.js';
import { assertSameBits, randF32 } from './kernelCases.js';

const MiB = 1024 * 1024;

async function backend(opts: { quipCacheBytes: number; quipButterflies?: 'device' | 'host' }): Promise<WebGpuBackend | string> {
  const made = await createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true, ...opts });
  return made.ok ? made.backend : made.reason;
}
const cached = await backend({ quipCacheBytes: QUIP_CACHE_MIB * MiB, quipButterflies: 'device' });
const plain = await backend({ quipCacheBytes: 0, quipButterflies: 'host' });
const skip = typeof cached === 'string' ? `WebGPU unavailable: ${cached}` : false;
if (skip) console.log(`# quipCache: WebGPU cases skipped: ${cached}`);

/** A QuIP layer of made-up codes, scale and D (seeded). */
function layer(rows: number, cols: number, bits: number, fp16: boolean, seed: number): KindLayer {
  const codes = Uint8Array.from(randF32(rows * cols, seed, 1), (v) => Math.floor((v + 1) * 2 ** (bits - 1)) & ((1 << bits) - 1));
  const D = Float32Array.from(randF32(cols, seed + 1, 0.5), (v) => 1 + v);
  const parts = { rows, cols, bits, qweight: packQuipCodes(codes, rows, cols, bits), scale: half(0.05), seed, fp16, D };
  return PACKED_KINDS.quip!.open(quipTensors(parts), bits);
}

/** Bytes of both butterflies as the kernel reads them (quipRebuild.ts butterflyWords). */
function blobBytes(rows: number, cols: number): number {
  const words = (n: number) => { const [a, b] = butterflyFactors(n); return 2 * n + 2 * n * (a + b); };
  return 4 * (words(rows) + words(cols));
}

/** y = x·Wᵀ and dx = g·W of the step'th inputs, read back. */
async function multiply(be: WebGpuBackend, w: BTensor, k: KindLayer, step: number): Promise<Float32Array[]> {
  const M = 1 + 3 * step;
  const x = be.upload(randF32(M * k.cols, 100 + step), [M, k.cols]), g = be.upload(randF32(M * k.rows, 200 + step), [M, k.rows]);
  const y = be.linear(x, w), dx = be.linearT(g, w);
  const out = [await be.read(y), await be.read(dx)];
  for (const t of [x, g, y, dx]) be.free(t);
  return out;
}

describe('WebGPU QuIP: rebuilt weights kept for reuse', { skip }, () => {
  const a = cached as WebGpuBackend, b = plain as WebGpuBackend;
  const layers = skip ? [] : [layer(40, 26, 2, false, 1), layer(24, 32, 3, true, 2), layer(13, 30, 4, false, 3)];

  it('the cache and butterflies on the device give the bits of a rebuild per multiply with uploaded butterflies (linear and linearT, interleaved layers)', async () => {
    const [wa, wb] = [layers.map((k) => a.uploadQuantized(k)), layers.map((k) => b.uploadQuantized(k))];
    const before = [a.quipCacheStats(), b.quipCacheStats()];
    const steps = 3;
    for (let s = 0; s < steps; s++) {
      for (let i = 0; i < layers.length; i++) {
        const [got, want] = [await multiply(a, wa[i]!, layers[i]!, s), await multiply(b, wb[i]!, layers[i]!, s)];
        assertSameBits(got[0]!, want[0]!, `linear, layer ${i}, step ${s}`);
        assertSameBits(got[1]!, want[1]!, `linearT, layer ${i}, step ${s}`);
      }
    }
    const [sa, sb] = [a.quipCacheStats(), b.quipCacheStats()];
    const calls = 2 * steps * layers.length;
    assert.equal(sa.misses - before[0]!.misses, layers.length, 'one rebuild per layer with the cache');
    assert.equal(sa.hits - before[0]!.hits, calls - layers.length);
    assert.equal(sa.entries, layers.length);
    assert.equal(sa.bytes, layers.reduce((n, k) => n + 4 * k.rows * k.cols, 0));
    assert.equal(sb.misses - before[1]!.misses, calls, 'budget 0: a rebuild for every multiply');
    assert.deepEqual([sb.hits, sb.entries, sb.bytes], [0, 0, 0]);
    for (const [be, ws] of [[a, wa], [b, wb]] as const) for (const w of ws) be.free(w);
    assert.deepEqual([a.quipCacheStats().entries, a.quipCacheStats().bytes], [0, 0], 'freeing the layers empties the cache');
  });

  it('freeing a layer frees its kept weight, also while a recorded multiply still reads it', async () => {
    const k = layers[0]!, base = a.deviceMemory().liveBytes;
    const w = a.uploadQuantized(k), held = a.deviceBytes(w);
    const r = b.uploadQuantized(k), want = (await multiply(b, r, k, 0))[0]!;
    b.free(r);
    await multiply(a, w, k, 1); // rebuilt and kept
    assert.equal(a.deviceMemory().liveBytes, base + held + 4 * k.rows * k.cols, 'the layer and its kept weight');
    const x = a.upload(randF32(k.cols, 100), [1, k.cols]);
    const y = a.linear(x, w); // recorded, reading the kept weight
    a.free(w); // destroyed after the batch that reads it (device.ts destroy)
    assertSameBits(await a.read(y), want, 'the multiply recorded before the free');
    a.free(x); a.free(y);
    assert.equal(a.deviceMemory().liveBytes, base, 'every buffer freed');
    assert.equal(a.quipCacheStats().entries, 0);
  });

  it('a budget of two weights keeps the two used last and frees the evicted', async () => {
    const ks = [layer(32, 24, 2, false, 4), layer(32, 24, 3, false, 5), layer(32, 24, 4, true, 6)];
    const one = 4 * 32 * 24;
    const small = await backend({ quipCacheBytes: 2 * one });
    assert.ok(typeof small !== 'string', String(small));
    const base = small.deviceMemory().liveBytes;
    const ws = ks.map((k) => small.uploadQuantized(k)), refs = ks.map((k) => b.uploadQuantized(k));
    const layersBytes = ws.reduce((n, w) => n + small.deviceBytes(w), 0);
    // each step is a linear then a linearT of the same layer, so the linearT always finds the weight;
    // step 3 evicts layer 1 (used before layer 0), so layer 0 is found at step 4; step 5 evicts layer 2
    const steps = [[0, 1, 1, 1], [1, 2, 2, 2], [0, 2, 4, 2], [2, 3, 5, 2], [0, 3, 7, 2], [1, 4, 8, 2]] as const;
    for (const [s, [i, misses, hits, entries]] of steps.entries()) {
      const [got, want] = [await multiply(small, ws[i]!, ks[i]!, s), await multiply(b, refs[i]!, ks[i]!, s)];
      assertSameBits(got[0]!, want[0]!, `layer ${i} linear, step ${s}`);
      assertSameBits(got[1]!, want[1]!, `layer ${i} linearT, step ${s}`);
      const st = small.quipCacheStats();
      assert.deepEqual([st.misses, st.hits, st.entries, st.bytes], [misses, hits, entries, entries * one], `step ${s} (layer ${i})`);
      assert.equal(small.deviceMemory().liveBytes, base + layersBytes + entries * one, `step ${s}: the layers and ${entries} kept weights`);
    }
    const left = () => [small.quipCacheStats().entries, small.deviceMemory().liveBytes - base];
    small.free(ws[2]!); // evicted at step 5: the cache keeps its two
    assert.deepEqual(left(), [2, small.deviceBytes(ws[0]!) + small.deviceBytes(ws[1]!) + 2 * one]);
    small.free(ws[1]!);
    assert.deepEqual(left(), [1, small.deviceBytes(ws[0]!) + one]);
    small.free(ws[0]!);
    assert.deepEqual(left(), [0, 0]);
    for (const r of refs) b.free(r);
  });

  it(`the butterflies stay on the device at most ${QUIP_BUTTERFLY_RATIO} times the codes' bytes, counted in the layer's bytes`, async () => {
    // 4096×4096: 8.06 MiB of butterflies beside 4 MiB of 2-bit codes; 11008×4096: 63.2 MiB beside 11 MiB (2-bit) / 16.5 MiB (3-bit)
    const codes = (rows: number, cols: number, bits: number) => 4 * rows * quipWords(cols, bits);
    assert.equal(quipButterfliesOnDevice(blobBytes(4096, 4096), codes(4096, 4096, 2)), true);
    assert.equal(quipButterfliesOnDevice(blobBytes(11008, 4096), codes(11008, 4096, 2)), false);
    assert.equal(quipButterfliesOnDevice(blobBytes(11008, 4096), codes(11008, 4096, 3)), true);
    assert.equal(quipButterfliesOnDevice(blobBytes(128, 128), codes(128, 128, 4)), false);
    const rule = await backend({ quipCacheBytes: 0 });
    assert.ok(typeof rule !== 'string', String(rule));
    // 512×512 W4: 401 KiB of butterflies, 3.1 times the 128 KiB of codes; 128×128 W4: 6.25 times
    for (const [n, onDevice] of [[512, true], [128, false]] as const) {
      const w = rule.uploadQuantized(layer(n, n, 4, false, 6));
      const want = codes(n, n, 4) + 4 * (16 + n) + (onDevice ? blobBytes(n, n) : 0);
      assert.equal(rule.deviceBytes(w), want, `${n}×${n} W4`);
      rule.free(w);
    }
  });
});

describe('LOWBIT_WEBGPU_QUIP_CACHE_MIB', () => {
  it('a whole number of MiB, 0 or more; unset or empty: the default; anything else refused in one line', () => {
    assert.equal(quipCacheBytesOf(undefined), QUIP_CACHE_MIB * MiB);
    assert.equal(quipCacheBytesOf(''), QUIP_CACHE_MIB * MiB);
    assert.equal(quipCacheBytesOf('0'), 0);
    assert.equal(quipCacheBytesOf('16'), 16 * MiB);
    for (const bad of ['-1', '1.5', '1e3', 'lots', ' 8']) {
      assert.throws(() => quipCacheBytesOf(bad), (e: Error) => e.message.includes('LOWBIT_WEBGPU_QUIP_CACHE_MIB') && !e.message.includes('\n'), bad);
    }
  });
});
