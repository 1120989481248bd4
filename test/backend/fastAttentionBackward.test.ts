/**
 * Attention's backward, the tiled kernels (attentionBackwardFast.wgsl.ts) against the reference
 * kernels and the CPU backend. The tiled kernels do the reference's arithmetic term by term in the
 * same order, so dq, dk and dv must be the reference's bits; both must be within the parity suite's
 * NMSE of the CPU (float64; gradParity.test.ts: GRAD_TOLERANCE.attentionBackward). Cases cross the
 * tiles: T and S not multiples of the 64-row blocks or of the key/query tiles (64, 32/31, 16/15 rows
 * at head sizes 16, 64, 128), a KV cache prefix (offset > 0, S > T), keys that no query sees (S >
 * offset + T), GQA with 4 and 1 query heads per KV head, one query row. Guard words after every
 * output. Skipped, with the reason, without an adapter; the tile choice (sizes, and the fallback to
 * the reference) is checked without one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainableBackend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { WebGpuBackend, createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { tiledTiles } from '../../src/backend/webgpu/kernels/attentionBackward.js';
import { assertClose, assertSameBits, randF32 } from './kernelCases.js';

/** gradParity.test.ts's NMSE for attentionBackward against the CPU. */
const NMSE = 1e-10;

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await Promise.all((['reference', 'fast'] as const).map((kernels) =>
  createWebGpuBackend(jsKernels, 'js, 1 thread', { guardWords: true, kernels })));
const [ref, fast] = made.map((m) => (m.ok ? m.backend : undefined));
const skip = made[0]!.ok ? false : `WebGPU unavailable: ${made[0]!.reason}`;
if (!made[0]!.ok) console.log(`# fastAttentionBackward: WebGPU cases skipped: ${made[0]!.reason}`);

/** [T, S, offset, heads, KV heads, head size] */
const CASES: [number, number, number, number, number, number][] = [
  [150, 150, 0, 4, 1, 16], // 3 query blocks, the last ragged; GQA 4
  [70, 100, 30, 8, 2, 64], // KV cache prefix; GQA 4; key and query tiles of 32 and 31
  [1, 100, 99, 4, 4, 8], // one query row; one query head per KV head
  [65, 65, 0, 2, 2, 128], // one row past a block; tiles of 16 keys and 15 queries
  [33, 80, 47, 4, 1, 128], // prefix, GQA 4 at head size 128
  [40, 130, 20, 4, 2, 64], // keys 60..129 seen by no query: zero dk, dv
  [5, 5, 0, 4, 2, 2],
];

/** dq, dk, dv on a backend from seeded inputs; guard words checked on WebGPU; everything freed. */
async function grads(be: TrainableBackend, [T, S, offset, H, KVH, hd]: (typeof CASES)[number]): Promise<Float32Array[]> {
  const q = be.upload(randF32(T * H * hd, T + hd, 2), [T, H * hd]);
  const k = be.upload(randF32(S * KVH * hd, 3 * S + hd + 5, 2), [S, KVH * hd]);
  const v = be.upload(randF32(S * KVH * hd, S + 1), [S, KVH * hd]);
  const d = be.upload(randF32(T * H * hd, 7 * T + hd), [T, H * hd]);
  const r = be.attentionBackward(q, k, v, d, { nHeads: H, nKvHeads: KVH, headDim: hd, offset });
  const out: Float32Array[] = [];
  for (const y of [r.dq, r.dk, r.dv]) {
    out.push(await be.read(y));
    if (be instanceof WebGpuBackend) await be.checkGuards(y);
  }
  for (const x of [q, k, v, d, r.dq, r.dk, r.dv]) be.free(x);
  return out;
}

describe('attentionBackward: tiled kernels vs the reference and the CPU', { skip }, () => {
  for (const c of CASES) {
    const [T, S, offset, H, KVH, hd] = c;
    it(`T${T} S${S} offset ${offset} H${H}/${KVH} hd${hd}`, async () => {
      const want = await grads(cpu, c), r = await grads(ref!, c), f = await grads(fast!, c);
      ['dq', 'dk', 'dv'].forEach((name, i) => {
        assertClose(r[i]!, want[i]!, NMSE, `reference ${name}`);
        assertClose(f[i]!, want[i]!, NMSE, `tiled ${name}`);
        assertSameBits(f[i]!, r[i]!, `${name}: tiled vs reference`);
      });
    });
  }
});

describe('attentionBackward: tile sizes and the fallback to the reference', () => {
  const shape = (headDim: number, T = 512) => ({ T, S: T, nHeads: 8, nKvHeads: 4, headDim, offset: 0 });
  it('16 KiB: the forward\'s key tiles; query tiles leave room for the statistics', () => {
    assert.deepEqual([16, 64, 128].map((hd) => tiledTiles(shape(hd), 16384)), [{ keys: 64, queries: 64 }, { keys: 32, queries: 31 }, { keys: 16, queries: 15 }]);
    assert.deepEqual(tiledTiles(shape(128), 65536), { keys: 16, queries: 15 }, 'never above 16 KiB');
  });
  it('smaller tiles on an 8 KiB adapter; the reference where one row does not fit or the grid is too large', () => {
    assert.deepEqual(tiledTiles(shape(128), 8192), { keys: 8, queries: 7 });
    assert.deepEqual(tiledTiles(shape(2047), 16384), { keys: 1, queries: 0 });
    assert.deepEqual(tiledTiles(shape(4096), 16384), { keys: 0, queries: 0 });
    assert.deepEqual(tiledTiles(shape(64, 65536 * 64), 16384), { keys: 0, queries: 0 });
  });
});
