/**
 * Resident arrays of the wasm provider: the allocator (ResidentHeap) on its own, the kernels given
 * resident arrays (same bits as copied ones, frames never touching them, use after release refused),
 * and CpuBackend keeping weights resident: a streamed model equals the js provider after many
 * upload/free cycles, and the memory stops growing once one block's worth has been laid out.
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ResidentHeap, RESIDENT_LIMIT, type WasmPool } from '../../src/backend/cpu/wasm/pool.js';
import { loadWasmKernels } from '../../src/backend/cpu/kernels/wasm.js';
import type { CpuKernels } from '../../src/backend/cpu/kernels/kernels.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import type { Backend } from '../../src/backend/backend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { decodeHalf, encodeHalf } from '../../src/tensor/codecs.js';
import { streamedNll, ropeFor } from '../../src/model/stream.js';
import { freeBlock, loadBlock } from '../../src/model/weights.js';
import { blockForward } from '../../src/model/block.js';
import { randomCheckpoint, rng as modelRng, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';
import { PROVIDERS, assertSameBits, availability, randF32 } from './kernelCases.js';

const wasm = PROVIDERS.find((p) => p.name === 'wasm')!;
const A = ResidentHeap.ALIGN;

// ---- the allocator alone (no wasm needed) -----------------------------------------------------------

describe('ResidentHeap', () => {
  it('first fit, reuse of released blocks, coalescing, top lowered by a free tail', () => {
    const grown: number[] = [];
    const h = new ResidentHeap(1024, 1024 + 100 * A, (b) => grown.push(b));
    const a = h.alloc(1), b = h.alloc(A), c = h.alloc(A + 1), d = h.alloc(0);
    assert.deepEqual([a, b, c, d], [1024, 1024 + A, 1024 + 2 * A, 1024 + 4 * A], 'sizes round up to 64 bytes, 0 bytes takes 64');
    assert.equal(h.top, 1024 + 5 * A);
    assert.deepEqual(grown, [1024 + A, 1024 + 2 * A, 1024 + 4 * A, 1024 + 5 * A], 'the memory grows only when top rises');
    h.release(b);
    assert.equal(h.alloc(10), b, 'a released block is reused');
    h.release(b);
    h.release(c);
    assert.deepEqual(h.holes, [[b, 3 * A]], 'b and c merged');
    assert.equal(h.alloc(3 * A), b, 'the merged hole fits a block as large as both');
    h.release(b);
    h.release(a);
    assert.deepEqual(h.holes, [[a, 4 * A]], 'a merged with the hole after it');
    h.release(d);
    assert.equal(h.top, 1024, 'freeing the last block returns the whole free tail');
    assert.deepEqual(h.holes, []);
    assert.equal(h.bytesInUse, 0);
    assert.equal(grown.length, 4, 'reallocating below the old top does not grow');
  });

  it('exhaustion is a RangeError that leaves the heap usable; double release is a RangeError', () => {
    const h = new ResidentHeap(0, 10 * A);
    const a = h.alloc(6 * A);
    assert.throws(() => h.alloc(5 * A), (e: unknown) => e instanceof RangeError && /resident memory exhausted: 320 bytes requested, 384 in use, 256 free/.test(e.message));
    assert.equal(h.top, 6 * A);
    const b = h.alloc(4 * A);
    assert.throws(() => h.alloc(1), RangeError);
    h.release(a);
    assert.throws(() => h.alloc(7 * A), /largest hole 384/, 'free space in pieces is not one block');
    h.release(b);
    assert.throws(() => h.release(b), (e: unknown) => e instanceof RangeError && /released twice/.test(e.message));
    assert.throws(() => h.release(12345), RangeError);
    assert.throws(() => h.alloc(-1), RangeError);
    assert.throws(() => new ResidentHeap(100, 1000), /aligned/);
    assert.equal(h.alloc(10 * A), 0, 'everything free again: the whole region is one block');
  });

  it('property: blocks are aligned, disjoint, inside [base, top) and within the limit; releasing all empties it', () => {
    const op = fc.oneof(
      fc.record({ alloc: fc.integer({ min: 0, max: 2000 }) }),
      fc.record({ release: fc.nat() }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const base = 4096, limit = base + 64 * 1024;
      let high = base;
      const h = new ResidentHeap(base, limit, (b) => { assert.ok(b <= limit); high = Math.max(high, b); });
      const live: [number, number][] = [];
      for (const o of ops) {
        if ('alloc' in o) {
          let addr: number;
          try { addr = h.alloc(o.alloc); } catch (e) {
            assert.ok(e instanceof RangeError);
            // first fit refused: neither a hole nor the space above top can hold the request
            const need = Math.max(A, Math.ceil(o.alloc / A) * A);
            assert.ok(h.holes.every(([, n]) => n < need) && h.top + need > limit);
            continue;
          }
          assert.equal(addr % A, 0);
          live.push([addr, o.alloc]);
        } else if (live.length) {
          const [addr] = live.splice(o.release % live.length, 1)[0]!;
          h.release(addr);
        }
        const sorted = [...live].sort((x, y) => x[0] - y[0]);
        for (let i = 0; i < sorted.length; i++) {
          const [addr, n] = sorted[i]!;
          assert.ok(addr >= base && addr + n <= h.top && h.top <= high, 'inside [base, top), top addressable');
          if (i + 1 < sorted.length) assert.ok(addr + Math.max(n, 1) <= sorted[i + 1]![0], 'disjoint');
        }
        if (sorted.length) assert.equal(h.top, Math.max(...sorted.map(([a2, n]) => a2 + Math.max(A, Math.ceil(n / A) * A))), 'top is the end of the highest live block');
        const holes = h.holes;
        for (let i = 0; i + 1 < holes.length; i++) assert.ok(holes[i]![0] + holes[i]![1] < holes[i + 1]![0], 'holes are coalesced');
      }
      for (const [addr] of live) h.release(addr);
      assert.equal(h.top, base);
      assert.deepEqual(h.holes, []);
      assert.equal(h.bytesInUse, 0);
    }), { numRuns: 200 });
  });
});

// ---- the wasm kernels with resident arrays ------------------------------------------------------------

function wasmPool(threads: number): WasmPool {
  const r = loadWasmKernels(threads);
  if (!r.ok) throw new Error(r.reason);
  return r.pool;
}
function wasmOf(threads: number): { k: CpuKernels; memory: { buffer: SharedArrayBuffer } } {
  const r = loadWasmKernels(threads);
  if (!r.ok) throw new Error(r.reason);
  return { k: r.kernels, memory: r.pool.memory };
}

describe('wasm resident arrays', availability(wasm), () => {
  it('alloc gives 64-byte aligned views of the shared memory; release checks what it is given', () => {
    const { k, memory } = wasmOf(1);
    const mem = k.resident!;
    assert.ok(mem, 'the wasm provider has resident memory');
    const a = mem.alloc('f32', 3), b = mem.alloc('u16', 129), c = mem.alloc('i32', 0), d = mem.alloc('f64', 5);
    for (const [x, Ctor] of [[a, Float32Array], [b, Uint16Array], [c, Int32Array], [d, Float64Array]] as const) {
      assert.ok(x instanceof Ctor);
      assert.ok(x.buffer instanceof SharedArrayBuffer);
      assert.equal(x.byteOffset % 64, 0);
    }
    assert.equal(b.length, 129);
    a.set([1, 2, 3]);
    assert.deepEqual([...new Float32Array(memory.buffer, a.byteOffset, 3)], [1, 2, 3], 'a view of the wasm memory itself');
    for (const x of [a, b, c, d]) mem.release(x);
    assert.throws(() => mem.release(a), /already released/);
    assert.throws(() => mem.release(new Float32Array(3)), /not an array from this wasm provider/);
    assert.throws(() => mem.alloc('f32', -1), RangeError);
    assert.throws(() => mem.alloc('x' as never, 1), RangeError);
    const before = memory.buffer.byteLength;
    assert.throws(() => mem.alloc('f32', RESIDENT_LIMIT / 4), (e: unknown) => e instanceof RangeError && /resident memory exhausted/.test(e.message));
    assert.equal(memory.buffer.byteLength, before, 'a refused alloc does not grow the memory');
    const { alloc, release } = mem; // bound: may be destructured
    release(alloc('f32', 1));
  });

  for (const threads of [1, 2]) {
    it(`gemm and gemmHalf: resident weights, inputs, outputs and views give the same bits as copied ones (${threads} thread${threads > 1 ? 's' : ''})`, () => {
      const { k } = wasmOf(threads);
      const mem = k.resident!;
      const shapes: [number, number, number][] = [[1, 1, 1], [1, 3, 127], [1, 129, 3], [3, 127, 129], [127, 1, 129], [129, 127, 3], [1, 257, 4097], [2, 64, 64]];
      for (const [M, N, K] of shapes) {
        const x = randF32(M * K, M + N), w = randF32(N * K, K + 3);
        const want = new Float32Array(M * N);
        k.gemm(x, w, want, M, N, K);
        const rw = mem.alloc('f32', N * K), rx = mem.alloc('f32', M * K), ry = mem.alloc('f32', M * N);
        rw.set(w); rx.set(x);
        const y = new Float32Array(M * N);
        k.gemm(x, rw, y, M, N, K);
        assertSameBits(y, want, `gemm ${M}x${N}x${K} resident w`);
        k.gemm(rx, rw, ry, M, N, K);
        assertSameBits(ry, want, `gemm ${M}x${N}x${K} all resident`);
        // a view inside a resident array (the last rows of a larger weight) is used in place too
        const big = mem.alloc('f32', (N + 2) * K);
        big.set(w, 2 * K);
        y.fill(0);
        k.gemm(x, big.subarray(2 * K), y, M, N, K);
        assertSameBits(y, want, `gemm ${M}x${N}x${K} view of a resident array`);
        for (const dtype of ['bf16', 'f16'] as const) {
          const w16 = encodeHalf(dtype, w), want16 = new Float32Array(M * N), got16 = new Float32Array(M * N);
          k.gemmHalf(x, w16, dtype, want16, M, N, K);
          const r16 = mem.alloc('u16', N * K);
          r16.set(w16);
          k.gemmHalf(x, r16, dtype, got16, M, N, K);
          assertSameBits(got16, want16, `gemmHalf ${dtype} ${M}x${N}x${K} resident w`);
          const viaF32 = new Float32Array(M * N);
          k.gemm(x, decodeHalf(dtype, w16), viaF32, M, N, K);
          assertSameBits(got16, viaF32, `gemmHalf ${dtype} ${M}x${N}x${K} resident vs decoded f32`);
          mem.release(r16);
        }
        for (const r of [rw, rx, ry, big]) mem.release(r);
      }
    });
  }

  it('in-place and row-wise ops on resident arrays match copied ones', () => {
    const { k } = wasmOf(1);
    const mem = k.resident!;
    const [T, H, hd] = [7, 3, 64];
    const x = randF32(T * H * hd, 1), c = randF32(T * hd / 2, 2), s = randF32(T * hd / 2, 3);
    const want = x.slice();
    k.rope(want, T, H, hd, c, s);
    const rx = mem.alloc('f32', x.length), rc = mem.alloc('f32', c.length);
    rx.set(x); rc.set(c);
    k.rope(rx, T, H, hd, rc, s);
    assertSameBits(rx, want, 'rope in place on a resident array');
    const g = randF32(H * hd, 4), rg = mem.alloc('f32', g.length), y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
    rg.set(g);
    k.rmsnorm(x, g, y1, T, H * hd, 1e-5);
    k.rmsnorm(x, rg, y2, T, H * hd, 1e-5);
    assertSameBits(y2, y1, 'rmsnorm with resident gamma');
    for (const r of [rx, rc, rg]) mem.release(r);
  });

  it('per-call arrays go above the resident region: a large copied call leaves resident data intact', () => {
    const { k } = wasmOf(2);
    const mem = k.resident!;
    const keep = mem.alloc('f32', 4096), pattern = randF32(4096, 9);
    keep.set(pattern);
    const M = 300, N = 500, K = 700, y = new Float32Array(M * N);
    k.gemm(randF32(M * K, 1), randF32(N * K, 2), y, M, N, K);
    k.gemmHalf(randF32(M * K, 1), encodeHalf('bf16', randF32(N * K, 2)), 'bf16', y, M, N, K);
    assertSameBits(keep, pattern, 'resident data after copied calls');
    mem.release(keep);
  });

  it('a released array passed to a kernel is an error, not a silent read of reused memory', () => {
    const { k } = wasmOf(1);
    const mem = k.resident!;
    const w = mem.alloc('f32', 12);
    mem.release(w);
    const other = mem.alloc('f32', 12); // the same address
    assert.equal(other.byteOffset, w.byteOffset);
    assert.throws(() => k.gemm(new Float32Array(3), w, new Float32Array(4), 1, 4, 3), /used after release/);
    mem.release(other);
    // a view of released memory is refused while no live array covers it (once reused, it cannot be told apart)
    assert.throws(() => k.gemm(new Float32Array(3), new Float32Array(12), w.subarray(0, 4), 1, 4, 3), /used after release/);
  });
});

// ---- CpuBackend with the wasm provider -----------------------------------------------------------------

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('CpuBackend keeps weights resident with the wasm provider', availability(wasm), () => {
  const cfg = { ...SMALL_GQA_LLAMA3, numLayers: 3 };
  const r = modelRng(5);
  const seqs = [0, 1, 2].map(() => Int32Array.from({ length: 24 }, () => Math.floor(((r() + 1) / 2) * 60)));

  for (const dtype of ['f32', 'bf16'] as const) {
    test(`streamed ${dtype} model: equals the js provider, identically on every one of many upload/free cycles`, async () => {
      const ck = randomCheckpoint(cfg, 11, dtype);
      const want = await streamedNll(ck, new CpuBackend(), seqs, { headChunk: 5 });
      const { kernels, note } = selectKernels('wasm', 2);
      const inner = new CpuBackend(kernels, note), heap = wasmPool(2).resident;
      let uploads = 0;
      const be: Backend = Object.create(inner, {
        uploadWeight: { value: (t: Tensor) => {
          const before = heap.bytesInUse, w = inner.uploadWeight(t);
          assert.ok(heap.bytesInUse >= before + t.byteLength, 'the weight went to resident memory');
          uploads++;
          return w;
        } },
      });
      let first: Float64Array[] | undefined;
      for (let cycle = 0; cycle < 8; cycle++) {
        const got = await streamedNll(ck, be, seqs, { headChunk: 5 });
        assert.ok(uploads > 0);
        for (const [i, g] of got.entries()) {
          const d = maxAbsDiff(g, want[i]!);
          assert.ok(d < 1e-4, `cycle ${cycle}, sequence ${i}: max |wasm − js| NLL = ${d}`);
          if (first) assertSameBits(g, first[i]!, `cycle ${cycle} vs cycle 0, sequence ${i}`);
        }
        first ??= got;
      }
    });
  }

  test('blocks of equal shape uploaded and freed repeatedly: the wasm memory stops growing after the first', () => {
    const r1 = loadWasmKernels(1);
    if (!r1.ok) throw new Error(r1.reason);
    const be = new CpuBackend(r1.kernels, 'wasm, 1 thread');
    const ck = randomCheckpoint({ ...cfg, hiddenSize: 256, intermediateSize: 704, numHeads: 8, numKvHeads: 2, headDim: 32 }, 3, 'bf16');
    const T = 16, rope = ropeFor(ck, be, 0, T);
    const heap = r1.pool.resident, inUse0 = heap.bytesInUse;
    const sizes: number[] = [];
    for (let cycle = 0; cycle < 12; cycle++) {
      const i = cycle % ck.config.numLayers;
      const w = loadBlock(ck, be, i);
      assert.ok(heap.bytesInUse > inUse0 + 700_000, 'the block lives in resident memory');
      const x = be.upload(randF32(T * 256, cycle), [T, 256]);
      blockForward(be, ck.config, w, x, rope);
      freeBlock(be, w);
      assert.equal(heap.bytesInUse, inUse0, 'everything of the block given back');
      sizes.push(r1.pool.memory.buffer.byteLength);
    }
    assert.ok(sizes.every((s) => s === sizes[0]), `memory sizes per cycle: ${sizes.join(', ')}`);
  });

  test('free twice and use after free are errors; read of a resident weight is a copy', async () => {
    const { kernels } = selectKernels('wasm', 1);
    const be = new CpuBackend(kernels);
    const data = randF32(6, 1);
    const w = be.uploadWeight(new Tensor('f32', [2, 3], data));
    const got = await be.read(w);
    assertSameBits(got, data, 'read');
    const x = be.upload(randF32(3, 2), [1, 3]);
    const before = await be.read(be.linear(x, w));
    const row = be.rows(w, 1, 1);
    be.free(w);
    be.uploadWeight(new Tensor('f32', [2, 3], new Float32Array(6).fill(7))); // reuses the memory
    assertSameBits(got, data, 'what read returned does not change after free');
    assertSameBits(await be.read(row), data.subarray(3), 'rows of a resident weight are a copy');
    assert.throws(() => be.free(w), /already freed/);
    assert.throws(() => be.linear(x, w), /use after free/);
    assert.throws(() => be.embedding(w, Int32Array.of(0)), /use after free/);
    const w2 = be.uploadWeight(new Tensor('bf16', [2, 3], encodeHalf('bf16', data)));
    assert.equal(maxAbsDiff(await be.read(be.linear(x, w2)), before) < 1e-2, true);
    be.free(w2);
    // activations and the js provider: free stays a no-op, as before
    be.free(x); be.free(x);
    await be.read(x);
    const js = new CpuBackend();
    const wj = js.uploadWeight(new Tensor('f32', [2, 3], data));
    js.free(wj); js.free(wj);
    await js.read(js.linear(js.upload(randF32(3, 2), [1, 3]), wj));
  });
});

test('CpuBackend: a full resident region is not an error (the weight stays an ordinary array); other alloc errors propagate', async () => {
  let released = 0;
  const full = new CpuBackend({ ...jsKernels, resident: { alloc: () => { throw new RangeError('full'); }, release: () => { released++; } } });
  const data = randF32(6, 3);
  const w = full.uploadWeight(new Tensor('f32', [2, 3], data));
  assert.equal(await full.read(w), data, 'the uploaded array itself, as without resident memory');
  full.free(w); full.free(w);
  assert.equal(released, 0);
  const broken = new CpuBackend({ ...jsKernels, resident: { alloc: () => { throw new TypeError('boom'); }, release: () => {} } });
  assert.throws(() => broken.uploadWeight(new Tensor('f32', [2, 3], data)), /boom/);
});
