/**
 * The ops that keep AWQ's captured inputs on the backend (Backend.columnAbsMean, Backend.divColumns, and
 * `embedding` as the clip search's row gather): on WebGPU the float64 sums behind the mean equal the host's
 * sequential float64 loop bit for bit (per-column exponent spreads from subnormals to 2¹²⁷, ties to even,
 * ∞ and NaN), so the means do; the quotients equal Math.fround(x / s); a gathered row is the row. And AWQ
 * with its inputs kept on the backend reads none of them back and makes the same choices (losses included)
 * and the same checkpoint as with them read back and handled on the host, on the CPU and on WebGPU, leaving
 * no tensor alive. Without an adapter the WebGPU cases are skipped with the reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, BTensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { withoutOps } from './withoutOps.js';
import { sampledRows } from '../../src/quant/methods/awqClip.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const gpu = made.ok ? made.backend : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# columnOps: WebGPU cases skipped: ${made.reason}`);

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Exponent ranges (biased) of the column families: narrow, every binade, near 1, subnormal, wide, powers of two, integers. */
const SPREADS: readonly [number, number, boolean][] = [
  [120, 130, false], [1, 254, false], [100, 140, false], [0, 10, false], [0, 160, false], [110, 150, true], [150, 175, false],
];

/** x [T, C] as float32 bits: each column drawn from one spread, a sign and some zeros and −0. */
function rows(T: number, C: number, seed: number): Float32Array {
  const r = rng(seed), x = new Float32Array(T * C), bits = new Uint32Array(x.buffer);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      const [lo, hi, pow2] = SPREADS[c % SPREADS.length]!;
      const u = r();
      if (u < 0.05) { bits[t * C + c] = u < 0.025 ? 0x80000000 : 0; continue; }
      const e = lo + Math.floor(r() * (hi - lo + 1));
      const m = pow2 ? 0 : c % SPREADS.length === 6 ? (Math.floor(r() * 64) << 17) : Math.floor(r() * 0x800000);
      bits[t * C + c] = ((r() < 0.5 ? 1 : 0) << 31 | e << 23 | m) >>> 0;
    }
  }
  return x;
}

/** Sequences for the sums, with special columns: ties to even after 2⁵³, +∞, NaN after ∞, −∞. */
function sequences(C: number): Float32Array[] {
  const xs = [37, 1, 130].map((T, i) => rows(T, C, 7 + i));
  const first = xs[0]!, T0 = 37;
  for (let t = 0; t < T0; t++) first[t * C + C - 1] = t === 0 ? 2 ** 53 : [1, 1, 3, 1, 5, 7, 2][t % 7]!;
  first[5 * C + C - 2] = Infinity;
  first[3 * C + C - 3] = Infinity; xs[2]![9 * C + C - 3] = NaN;
  first[20 * C + C - 4] = -Infinity;
  return xs;
}

/** The host's loop (awq.ts meanAbs before the op): float64, tensor after tensor, row after row. */
function hostSums(xs: readonly Float32Array[], C: number): Float64Array {
  const s = new Float64Array(C);
  for (const x of xs) for (let i = 0; i < x.length; i++) s[i % C]! += Math.abs(x[i]!);
  return s;
}

/** The exact sum per column (finite columns), to show that the float64 loop rounds in the cases above. */
function exactSums(xs: readonly Float32Array[], C: number): (bigint | undefined)[] {
  const out: (bigint | undefined)[] = new Array(C).fill(0n);
  const f = new Float32Array(1), b = new Uint32Array(f.buffer);
  for (const x of xs) {
    for (let i = 0; i < x.length; i++) {
      const c = i % C;
      f[0] = Math.abs(x[i]!);
      const e = b[0]! >>> 23, m = BigInt((b[0]! & 0x7fffff) | (e ? 0x800000 : 0));
      if (e === 255) { out[c] = undefined; continue; }
      if (out[c] !== undefined) out[c] = out[c]! + (m << BigInt(Math.max(e, 1) - 1)); // units of 2⁻¹⁴⁹
    }
  }
  return out;
}

function upload(be: Backend, xs: readonly Float32Array[], C: number) {
  return xs.map((x) => be.upload(x, [x.length / C, C]));
}

describe('column ops (AWQ\'s captured inputs on the backend)', () => {
  const C = 7 * 37 + 4;
  const xs = sequences(C);

  it('columnAbsMean on the CPU is the host\'s float64 loop / rows, rounded to float32', async () => {
    const ts = upload(cpu, xs, C);
    const n = xs.reduce((a, x) => a + x.length / C, 0);
    assert.deepEqual(await cpu.columnAbsMean(ts), Float32Array.from(hostSums(xs, C), (v) => v / n));
    assert.throws(() => cpu.divColumns(ts[0]!, cpu.upload(new Float32Array(3), [3])), /divColumns: scales has shape \[3\], expected \[263\]/);
  });

  it('columnAbsMean on WebGPU: the float64 sums and the means equal the CPU\'s bit for bit', { skip }, async () => {
    const want = hostSums(xs, C);
    // the loop does round: its sums differ from the exact ones in many columns (and agree in others)
    const exact = exactSums(xs, C);
    const rounded = exact.filter((v, c) => v !== undefined && v !== 0n && BigInt(want[c]! / 2 ** -149) !== v && want[c]! < 2 ** 900).length;
    assert.ok(rounded > 20 && rounded < C - 10, `${rounded} of ${C} columns rounded`);
    assert.equal(want[C - 2], Infinity);
    assert.ok(Number.isNaN(want[C - 3]));
    const ts = upload(gpu!, xs, C);
    try {
      assert.deepEqual(await gpu!.columnAbsSums(ts), want);
      assert.deepEqual(await gpu!.columnAbsMean(ts), await cpu.columnAbsMean(upload(cpu, xs, C)));
    } finally {
      for (const x of ts) gpu!.free(x);
    }
  });

  it('divColumns on WebGPU equals the host\'s Math.fround(x / s) bit for bit', { skip }, async () => {
    const T = 50, x = rows(T, C, 99);
    x[3] = Infinity; x[4] = NaN; x[5] = -0;
    const r = rng(5), s = new Float32Array(C);
    for (let c = 0; c < C; c++) s[c] = Math.fround((r() < 0.1 ? -1 : 1) * 2 ** (Math.floor(r() * 60) - 30) * (c % 9 === 0 ? 1 : 1 + r()));
    // quotients that underflow (they stepped to NaN) and subnormal ties: 3·2⁻¹⁴⁹ / 2 → 2·2⁻¹⁴⁹, 5·2⁻¹⁴⁹ / 2 → 2·2⁻¹⁴⁹... to even
    s[0] = 2; s[1] = 2; s[2] = 1e30;
    x[C] = 3 * 2 ** -149; x[C + 1] = 5 * 2 ** -149; x[C + 2] = 1e-20; x[2 * C + 2] = -3e-16;
    const want = Float32Array.from(x, (v, i) => v / s[i % C]!);
    const xc = cpu.upload(x, [T, C]), sc = cpu.upload(s, [C]);
    assert.deepEqual(await cpu.read(cpu.divColumns(xc, sc)), want);
    const xg = gpu!.upload(x, [T, C]), sg = gpu!.upload(s, [C]);
    const y = gpu!.divColumns(xg, sg);
    try {
      assert.deepEqual(await gpu!.read(y), want);
    } finally {
      for (const v of [xg, sg, y]) gpu!.free(v);
    }
  });

  it('embedding of an activation gathers its rows exactly (the clip search\'s token sample)', { skip }, async () => {
    const T = 40, x = rows(T, C, 3), ids = Int32Array.of(0, 7, 39, 7, 12);
    const want = new Float32Array(ids.length * C);
    ids.forEach((id, i) => want.set(x.subarray(id * C, (id + 1) * C), i * C));
    for (const be of [cpu, gpu!]) {
      const t = be.upload(x, [T, C]), g = be.embedding(t, ids);
      assert.deepEqual(await be.read(g), want, be.name);
      be.free(t); be.free(g);
    }
  });

  it('sampledRows: every ⌊N/512⌋-th token counted across the sequences, as the host\'s loop picks them', () => {
    for (const lengths of [[3, 5, 2], [700, 300], [1100, 1000, 7], [513, 513, 513], [2048], [1, 1030, 0, 1029]]) {
      const total = lengths.reduce((a, b) => a + b, 0), step = Math.max(1, Math.floor(total / 512));
      const want: number[][] = lengths.map(() => []);
      let t = 0;
      lengths.forEach((T, s) => { for (let i = 0; i < T; i++, t++) if (t % step === 0) want[s]!.push(i); });
      assert.deepEqual(sampledRows(lengths).map((r) => [...r]), want, lengths.join(','));
    }
  });

  /** The backend with its reads counted by row count (a captured input has 128 rows here). */
  function counted(be: Backend, reads: number[]): Backend {
    return new Proxy(be, {
      get: (target, key) => {
        if (key === 'read') return (x: BTensor) => { reads.push(x.shape[0]!); return target.read(x); };
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
  const tmp = mkdtempSync(join(tmpdir(), 'lowbit-columns-'));
  /** AWQ W4 g32 with a short grid and the clip search; its records, checkpoint and reads of 128-row tensors. */
  async function awq(be: Backend, tag: string) {
    const out = join(tmp, tag), reads: number[] = [];
    const r = await quantizeModel(openModel(TINY656K), counted(be, reads), {
      method: 'awq', bits: 4, group: 32, options: { awqGrid: 5 },
      calib: 'c4', nsamples: 2, seqlen: 128, seed: 0, dataDir: DATA, out,
    });
    return { choices: r.blocks?.map((b) => b.awq), weights: readFileSync(join(out, 'model.safetensors')), rowReads: reads.filter((n) => n === 128).length };
  }
  const OPS = ['columnAbsMean', 'divColumns'] as const;

  it('AWQ on the CPU: inputs on the backend, the same records and checkpoint as on the host', async () => {
    const a = await awq(cpu, 'cpu-op'), b = await awq(withoutOps(cpu, OPS), 'cpu-host');
    assert.equal(a.rowReads, 0);
    assert.ok(b.rowReads > 0);
    assert.deepEqual(a.choices, b.choices);
    assert.ok(a.weights.equals(b.weights));
  });

  it('AWQ on WebGPU: no captured input read back, the same records and checkpoint as on the host, nothing left alive', { skip }, async () => {
    const live = gpu!.liveTensors;
    const a = await awq(gpu!, 'gpu-op');
    assert.equal(gpu!.liveTensors, live);
    const b = await awq(withoutOps(gpu!, OPS), 'gpu-host');
    assert.equal(a.rowReads, 0);
    assert.equal(b.rowReads, 2 * 2 * 4, 'the host path reads each input of each sequence once per block');
    assert.deepEqual(a.choices, b.choices);
    assert.ok(a.weights.equals(b.weights));
  });
});
