// QuIP (quant/methods/quip.ts, ldlq.ts; tensor/quipTransform.ts, quipPack.ts): the seeded butterflies are
// orthogonal, Haar and what method.py's mul_ortho_butterfly computes; LDLQ is nearest rounding for a
// diagonal H and GPTQ on the reversed columns otherwise; the stored kind round-trips bit for bit through
// write → read → dequantize and through the packed kernel; the fp16 casts; the summed error beats RTN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../../src/io/open.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { quantizeBlocks } from '../../src/quant/pipeline.js';
import { calibrationSet } from '../../src/data/calibration.js';
import { HessianAccumulator } from '../../src/quant/core/hessian.js';
import { cholesky } from '../../src/quant/core/linalg.js';
import { gptq } from '../../src/quant/methods/gptq.js';
import { ldlq } from '../../src/quant/methods/ldlq.js';
import { QUIP, quip } from '../../src/quant/methods/quip.js';
import {
  applyButterfly, butterflyFactors, butterflyMatrix, butterflyProblem, detLog, haarSpecialOrthogonal, quipLayerSeed, QuipRng, randomButterfly,
} from '../../src/tensor/quipTransform.js';
import { half, packQuipCodes, QUIP_KIND, quipGridValues, quipTensors, rebuildQuipWeight, unpackQuipCodes } from '../../src/tensor/quipPack.js';
import { FORMATS } from '../../src/io/quantized/formats.js';
import { openSafetensorsDir, writeSafetensors } from '../../src/io/safetensors.js';
import { bitsPerWeight } from '../../src/io/storage.js';
import { isKindLayer, materializeKind, type KindLayer } from '../../src/tensor/packed.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/codecs.js';
import { FormatError, UsageError } from '../../src/errors.js';
import { NAMES } from '../../src/io/source.js';
import { LINEARS } from '../../src/model/block.js';
import { LINEAR_PART } from '../../src/model/layout.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { Rng, correlatedInputs, layer } from './rand.js';

const { kernels, note } = selectKernels('auto', 2);
const be = new CpuBackend(kernels, note);
const linalg = be.hostKernels;
const ck = openModel(TINY656K);
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-quip-'));
const calib = { calib: 'c4', nsamples: 8, seed: 0, dataDir: DATA } as const;

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

test('butterfly factors: method.py\'s alternating split of the ascending primes; unfactorable dimensions named', () => {
  const table: [number, [number, number]][] = [
    [64, [8, 8]], [128, [16, 8]], [172, [86, 2]], [768, [48, 16]], [1024, [32, 32]], [3072, [96, 32]], [4096, [64, 64]], [5120, [160, 32]],
    [8192, [128, 64]], [11008, [688, 16]], [13824, [96, 144]], [14336, [64, 224]], [28672, [448, 64]], [6, [2, 3]], [86, [2, 43]],
    [384, [16, 24]], [7, [7, 1]], [1, [1, 1]],
  ];
  for (const [n, ab] of table) assert.deepEqual(butterflyFactors(n), ab, String(n));
  assert.equal(butterflyProblem(4096), undefined);
  assert.equal(butterflyProblem(4093), undefined, 'a prime up to 4096: one dense rotation');
  assert.match(butterflyProblem(4099)!, /4099 is a prime above 4096/);
  assert.match(butterflyProblem(2 * 4111)!, /8222 = 2·4111 needs random 4111×4111 rotation blocks/);
});

test('the seeded generator: detLog agrees with Math.log, the stream is fixed by (seed, stream), Haar blocks are special orthogonal and unbiased', () => {
  const rng = new Rng(3);
  for (let i = 0; i < 2000; i++) {
    const x = i < 1000 ? rng.next() + 1e-300 : Math.exp(60 * (rng.next() - 0.5));
    assert.ok(Math.abs(detLog(x) - Math.log(x)) <= 4e-16 * Math.max(1, Math.abs(Math.log(x))), `detLog(${x})`);
  }
  // the first draws of a fixed stream (a change of generator changes every stored checkpoint's transforms)
  assert.deepEqual(r2(1234, 1), [2061670033, 2057476897, 552576308]);
  const z = new QuipRng(0, 2);
  assert.deepEqual([z.normal(), z.normal(), z.normal()], [0.9645014899586258, 0.33443477029245383, -0.7501655767259416]);
  assert.equal(quipLayerSeed(0, 'model.layers.0.self_attn.q_proj'), 2360870791);
  assert.notDeepEqual(r2(1234, 1), r2(1234, 2));
  assert.notDeepEqual(r2(1234, 1), r2(1235, 1));
  assert.notEqual(quipLayerSeed(0, 'model.layers.0.self_attn.q_proj'), quipLayerSeed(0, 'model.layers.0.self_attn.k_proj'));
  assert.notEqual(quipLayerSeed(0, 'model.layers.0.self_attn.q_proj'), quipLayerSeed(1, 'model.layers.0.self_attn.q_proj'));
  // SO(p): QᵀQ = I, det = +1 (the sign of an LU determinant), and Haar: E[Q00] = 0, E[Q00²] = 1/p
  const g = new QuipRng(9, 1);
  let m1 = 0, m2 = 0;
  const N = 3000, p = 3;
  for (let t = 0; t < N; t++) {
    const Q = haarSpecialOrthogonal(p, g);
    assert.ok(maxAbsDiff(gram(Q, p), identity(p)) < 1e-14);
    assert.ok(det(Q, p) > 0.999999);
    m1 += Q[0]!; m2 += Q[0]! * Q[0]!;
  }
  assert.ok(Math.abs(m1 / N) < 0.04, `E[Q00] = ${m1 / N} (QR without the sign fix gives about −0.6)`);
  assert.ok(Math.abs(m2 / N - 1 / p) < 0.03, `E[Q00²] = ${m2 / N}`);
  for (const q of [1, 2, 5, 64]) {
    const Q = haarSpecialOrthogonal(q, g);
    assert.ok(maxAbsDiff(gram(Q, q), identity(q)) < 1e-13, `p = ${q}`);
    assert.ok(det(Q, q) > 0.999, `det of SO(${q})`);
  }
});

function r2(seed: number, stream: number): number[] {
  const r = new QuipRng(seed, stream);
  return [r.nextU32(), r.nextU32(), r.nextU32()];
}
function identity(n: number): Float64Array { const I = new Float64Array(n * n); for (let i = 0; i < n; i++) I[i * n + i] = 1; return I; }
/** MᵀM */
function gram(M: Float64Array, n: number): Float64Array {
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = 0; for (let k = 0; k < n; k++) s += M[k * n + i]! * M[k * n + j]!; G[i * n + j] = s; }
  return G;
}
/** M·Mᵀ */
function gramRows(M: Float64Array, n: number): Float64Array {
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = 0; for (let k = 0; k < n; k++) s += M[i * n + k]! * M[j * n + k]!; G[i * n + j] = s; }
  return G;
}
function det(M: Float64Array, n: number): number {
  const A = Float64Array.from(M);
  let d = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]!) > Math.abs(A[p * n + c]!)) p = r;
    if (p !== c) { for (let k = 0; k < n; k++) { const t = A[c * n + k]!; A[c * n + k] = A[p * n + k]!; A[p * n + k] = t; } d = -d; }
    d *= A[c * n + c]!;
    for (let r = c + 1; r < n; r++) { const f = A[r * n + c]! / A[c * n + c]!; for (let k = c; k < n; k++) A[r * n + k]! -= f * A[c * n + k]!; }
  }
  return d;
}

test('butterflies are orthogonal, are method.py\'s Pout·S2·S1·Pin, and U·W·Vᵀ round-trips', () => {
  for (const n of [1, 2, 6, 7, 64, 86, 128, 172, 384]) {
    const t = randomButterfly(n, 77, 1);
    const M = butterflyMatrix(t);
    assert.ok(maxAbsDiff(gramRows(M, n), identity(n)) < 1e-13, `U Uᵀ = I for n = ${n}`);
    assert.ok(maxAbsDiff(gram(M, n), identity(n)) < 1e-13, `Uᵀ U = I for n = ${n}`);
    // the spec's matrix, built entry by entry: S1[α·b+β, α'·b+β] = B0[β][α, α'], S2[α·b+β, α·b+β'] = B1[α][β, β']
    const { a, b } = t;
    const S1 = new Float64Array(n * n), S2 = new Float64Array(n * n);
    for (let al = 0; al < a; al++) for (let be2 = 0; be2 < b; be2++) {
      for (let al2 = 0; al2 < a; al2++) S1[(al * b + be2) * n + al2 * b + be2] = t.B0[be2 * a * a + al * a + al2]!;
      for (let be3 = 0; be3 < b; be3++) S2[(al * b + be2) * n + al * b + be3] = t.B1[al * b * b + be2 * b + be3]!;
    }
    const core = matmul(S2, S1, n);
    // M == core[p_out][:, argsort(p_in)]
    const inv = new Int32Array(n);
    for (let i = 0; i < n; i++) inv[t.pin[i]!] = i;
    const want = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) want[i * n + j] = core[t.pout[i]! * n + inv[j]!]!;
    assert.ok(maxAbsDiff(M, want) < 1e-14, `n = ${n}`);
  }
  // U·W·Vᵀ and back (Uᵀ·(U·W·Vᵀ)·V = W), as quip() and rebuildQuipWeight apply them
  const rows = 24, cols = 30, rng = new Rng(5);
  const W = Float64Array.from(rng.normals(rows * cols));
  const U = randomButterfly(rows, 1, 1), V = randomButterfly(cols, 1, 2);
  const X = W.slice();
  applyButterfly(V, X, rows);                       // W·Vᵀ
  const Xt = transpose(X, rows, cols);
  applyButterfly(U, Xt, cols);                      // U·W·Vᵀ (transposed)
  const dense = matmul3(butterflyMatrix(U), W, transpose(butterflyMatrix(V), cols, cols), rows, cols);
  assert.ok(maxAbsDiff(transpose(Xt, cols, rows), dense) < 1e-13, 'applyButterfly = the dense products');
  applyButterfly(U, Xt, cols, true);                // Uᵀ·(…)
  const Y = transpose(Xt, cols, rows);
  applyButterfly(V, Y, rows, true);                 // (…)·V
  assert.ok(maxAbsDiff(Y, W) < 1e-13);
  assert.ok(maxAbsDiff(X, W) > 0.1, 'the transform does change W');
});

function matmul(A: Float64Array, B: Float64Array, n: number): Float64Array {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) { const a = A[i * n + k]!; if (a !== 0) for (let j = 0; j < n; j++) C[i * n + j]! += a * B[k * n + j]!; }
  return C;
}
/** A [r, r] · W [r, c] · B [c, c] */
function matmul3(A: Float64Array, W: Float64Array, B: Float64Array, r: number, c: number): Float64Array {
  const T = new Float64Array(r * c), O = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let k = 0; k < r; k++) for (let j = 0; j < c; j++) T[i * c + j]! += A[i * r + k]! * W[k * c + j]!;
  for (let i = 0; i < r; i++) for (let k = 0; k < c; k++) for (let j = 0; j < c; j++) O[i * c + j]! += T[i * c + k]! * B[k * c + j]!;
  return O;
}
function transpose(A: Float64Array, r: number, c: number): Float64Array {
  const T = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) T[j * r + i] = A[i * c + j]!;
  return T;
}

/** round_ldl written plainly from vector_balance.py:171-180, column by column, float64. */
function plainLdlq(X: Float32Array, rows: number, d: number, H: Float64Array, maxq: number): Uint8Array {
  const L = H.slice();
  assert.ok(cholesky(L, d));
  const Lt = (j: number, i: number) => L[j * d + i]! / L[i * d + i]!;
  const what = new Float64Array(rows * d), codes = new Uint8Array(rows * d);
  for (let i = d - 1; i >= 0; i--) {
    for (let r = 0; r < rows; r++) {
      let acc = X[r * d + i]!;
      for (let j = i + 1; j < d; j++) acc += (X[r * d + j]! - what[r * d + j]!) * Lt(j, i);
      const q = Math.min(Math.max(Math.floor(acc + 0.5), 0), maxq);
      what[r * d + i] = q; codes[r * d + i] = q;
    }
  }
  return codes;
}

test('LDLQ: the blocked solver is round_ldl; with a diagonal H it is nearest rounding on QuIP\'s grid', () => {
  const rows = 37, d = 45, maxq = 3;
  const { H } = layer(2, rows, d);
  const rng = new Rng(8);
  const X = Float32Array.from({ length: rows * d }, () => Math.fround(rng.next() * maxq));
  const want = plainLdlq(X, rows, d, H, maxq);
  for (const [block, subBlock, la] of [[7, 3, undefined], [512, 32, undefined], [45, 1, undefined], [16, 5, linalg], [512, 8, linalg]] as const) {
    assert.deepEqual(ldlq(X, rows, d, H.slice(), maxq, { block, subBlock, linalg: la }), want, `block ${block}/${subBlock}${la ? ', provider' : ''}`);
  }
  // ties round up (floor(x + 0.5), vector_balance.py:180), not to even as torch.round: fp16 targets hit them
  const ties = Float32Array.of(0.5, 1.5, 2.5, -0.25, 3);
  assert.deepEqual([...ldlq(ties, 1, 5, identity(5), maxq)], [1, 2, 3, 0, 3]);
  // diagonal H: no feedback; the grid values g(q) = s·(2q/maxq − 1) are the nearest to each weight
  for (const bits of [2, 3, 4]) {
    const mq = 2 ** bits - 1, s = 0.37;
    const w = Float32Array.from({ length: rows * d }, () => 0.6 * rng.normal());
    const x = Float32Array.from(w, (v) => Math.min(Math.max(Math.fround(Math.fround(Math.fround(v / s) + 1) / 2 * mq), 0), mq));
    const Hd = new Float64Array(d * d);
    for (let i = 0; i < d; i++) Hd[i * d + i] = 0.1 + rng.next();
    const codes = ldlq(x, rows, d, Hd, mq, { block: 8, subBlock: 4 });
    const g = quipGridValues(bits, s, false);
    for (let i = 0; i < w.length; i++) {
      let best = 0;
      for (let q = 1; q <= mq; q++) if (Math.abs(w[i]! - g[q]!) < Math.abs(w[i]! - g[best]!)) best = q;
      assert.equal(codes[i], best, `${bits} bits: ${w[i]} → ${g[codes[i]!]}, nearest ${g[best]}`);
    }
  }
});

test('LDLQ with identity transforms on a uniform grid is GPTQ on the reversed columns (and not GPTQ in order)', () => {
  for (const bits of [2, 3]) {
    const rows = 40, d = 30, maxq = 2 ** bits - 1;
    const { H } = layer(10 + bits, rows, d);
    const rng = new Rng(20 + bits);
    // targets in grid units with each row's range exactly [0, maxq]: GPTQ's per-row grid is then scale 1, zero 0
    const X = Float32Array.from({ length: rows * d }, () => Math.fround(rng.next() * maxq));
    for (let r = 0; r < rows; r++) { X[r * d + (r % d)] = maxq; X[r * d + ((r + 7) % d)] = 0; }
    const codes = ldlq(X, rows, d, H.slice(), maxq, { block: 16, subBlock: 4, linalg });
    const rev = (A: Float32Array) => Float32Array.from(A, (_, i) => A[Math.floor(i / d) * d + (d - 1 - (i % d))]!);
    const Hrev = Float64Array.from(H, (_, i) => H[(d - 1 - Math.floor(i / d)) * d + (d - 1 - (i % d))]!);
    const g = gptq(rev(X), rows, d, Hrev, { spec: { bits, groupSize: -1, sym: false }, percdamp: 0, blocksize: 8 });
    assert.ok(g.scales.every((s) => s === 1) && g.zeros.every((z) => z === 0), 'GPTQ\'s grid is the integer grid');
    let diff = 0;
    for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) if (codes[r * d + i] !== g.codes[r * d + (d - 1 - i)]) diff++;
    assert.equal(diff, 0, `${bits} bits: ${diff} of ${rows * d} codes differ from GPTQ on the reversed columns`);
    const fwd = gptq(X, rows, d, H, { spec: { bits, groupSize: -1, sym: false }, percdamp: 0, blocksize: 8 });
    let fdiff = 0;
    for (let i = 0; i < codes.length; i++) if (codes[i] !== fwd.codes[i]) fdiff++;
    assert.ok(fdiff > rows, `GPTQ in the forward order differs (${fdiff} codes): the column order matters`);
  }
});

test('half() is the codecs\' float32 → fp16 → float32 round trip, edge cases included', () => {
  const rng = new Rng(12);
  const xs = [0, -0, 65504, 65519.99, 65520, -65520, 65535, 1e6, 2 ** -14, 2 ** -14 * (1 - 2 ** -12), 2 ** -24, 2 ** -25, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), NaN, Infinity, -Infinity];
  for (let i = 0; i < 20000; i++) xs.push((rng.next() - 0.5) * Math.exp(40 * (rng.next() - 0.5)));
  for (const x of xs) assert.ok(Object.is(half(x), f16ToF32(f32ToF16(x))), `half(${x}) = ${half(x)}`);
});

test('quip(): codes pack and unpack, Q is the rebuild of the stored parts, fp16 casts on by default, seeds decide the transforms', () => {
  const rows = 48, cols = 40;
  const { W, H } = layer(4, rows, cols);
  for (const bits of [2, 3, 4]) {
    const r = quip(W, rows, cols, H, { bits, seed: 11, linalg });
    assert.deepEqual(unpackQuipCodes(packQuipCodes(r.codes, rows, cols, bits), cols, bits, 0, rows), r.codes);
    assert.deepEqual(unpackQuipCodes(r.parts.qweight, cols, bits, 0, rows), r.codes);
    assert.deepEqual(rebuildQuipWeight(r.parts), r.Q, 'the rebuild from the seed alone');
    assert.ok(r.Q.every((v) => half(v) === v), 'fp16 casts: every weight is an fp16 value');
    assert.ok(r.codes.every((c) => c < 2 ** bits) && new Set(r.codes).size === 2 ** bits, `${bits} bits use the whole grid`);
    assert.equal(r.parts.scale, half(r.parts.scale), 'the qfn-b scale is computed in fp16');
  }
  const f32 = quip(W, rows, cols, H, { bits: 2, seed: 11, fp16: false, linalg });
  assert.ok(!f32.Q.every((v) => half(v) === v), '--no-quip-fp16 keeps float32');
  assert.deepEqual(rebuildQuipWeight(f32.parts), f32.Q);
  const f16s = quip(W, rows, cols, H, { bits: 2, seed: 11, fp16: false, scaleDtype: 'f16', linalg });
  assert.ok(f16s.parts.scale === half(f16s.parts.scale) && f32.parts.scale !== half(f32.parts.scale), '--scale-dtype f16 rounds s');
  const zero = quip(new Float32Array(rows * cols), rows, cols, H, { bits: 2, seed: 11, linalg });
  assert.ok(zero.Q.every((v) => Number.isFinite(v) && Math.abs(v) < 1e-6), 'an all-zero weight stays (nearly) zero, no NaN');
  assert.match(zero.notes.join(), /all-zero weight/);
  const a = quip(W, rows, cols, H, { bits: 2, seed: 11, linalg }), b = quip(W, rows, cols, H, { bits: 2, seed: 12, linalg });
  assert.notDeepEqual(a.Q, b.Q, 'another seed, other transforms');
  assert.deepEqual(quip(W, rows, cols, H, { bits: 2, seed: 11, linalg }).Q, a.Q, 'same seed, same bits');
  assert.throws(() => quip(W, rows, cols, H, { bits: 1, seed: 0 }), (e) => e instanceof UsageError && /2, 3, 4 bits/.test(e.message));
});

test('the quip kind: parts written and read back give Q bit for bit; the header is checked; the packed kernel multiplies by Q', async () => {
  const rows = 64, cols = 48;
  const { W, H } = layer(6, rows, cols);
  const r = quip(W, rows, cols, H, { bits: 3, seed: 5, linalg });
  const base = 'model.layers.0.mlp.up_proj';
  const fmt = FORMATS.quip!;
  const dir = join(tmp, 'kind');
  mkdirSync(dir);
  writeSafetensors(join(dir, 'model.safetensors'), fmt.pack(base, { kind: 'quip', parts: quipTensors(r.parts) }, rows, cols, 3, cols, 'f32'));
  const st = openSafetensorsDir(dir);
  const infos = new Map(st.list().map((t) => [t.name, t]));
  assert.deepEqual(fmt.shape(st, infos, base, 3, -1), [rows, cols]);
  const k = fmt.read(st, base, 3, -1) as KindLayer;
  assert.ok(isKindLayer(k));
  assert.deepEqual(materializeKind(k), r.Q);
  const rowsOut = new Float32Array(10 * cols);
  k.decodeRows(20, 10, rowsOut);
  assert.deepEqual(rowsOut, r.Q.subarray(20 * cols, 30 * cols));
  // the js provider: the kind's panels and the dense Q give the same outputs bit for bit
  const js = new CpuBackend(selectKernels('js').kernels, 'js');
  const rng = new Rng(1), M = 5;
  const x = js.upload(rng.normals(M * cols), [M, cols]);
  const y1 = await js.read(js.linear(x, js.uploadQuantized(k)));
  const y2 = await js.read(js.linear(x, js.uploadWeight(new Tensor('f32', [rows, cols], r.Q))));
  assert.deepEqual(y1, y2);
  // a damaged record or scale is a FormatError naming the file
  const parts = quipTensors(r.parts);
  const bad = (name: string, t: Tensor, re: RegExp) => {
    const d = mkdtempSync(join(tmp, `bad-${name}-`)), f = join(d, 'model.safetensors');
    writeSafetensors(f, fmt.pack(base, { kind: 'quip', parts: { ...parts, [name]: t } }, rows, cols, 3, cols, 'f32'));
    const s = openSafetensorsDir(d);
    assert.throws(() => { fmt.shape(s, new Map(s.list().map((i) => [i.name, i])), base, 3, -1); fmt.read(s, base, 3, -1); },
      (e) => e instanceof FormatError && e.message.includes(f) && re.test(e.message), name);
  };
  const rec = Int32Array.from(parts.g_idx!.data as Int32Array);
  rec[0] = 2;
  bad('g_idx', new Tensor('i32', [8], rec), /record version 2/);
  const rec2 = Int32Array.from(parts.g_idx!.data as Int32Array);
  rec2[4] = 4; rec2[5] = 16;
  bad('g_idx', new Tensor('i32', [8], rec2), /not the butterfly factors of 64/);
  const sc = Float32Array.from(parts.scales!.data as Float32Array);
  sc[3] = -1;
  bad('scales', new Tensor('f32', [cols + 1], sc), /D\[2\]/);
  bad('qweight', new Tensor('i32', [rows, 3], new Int32Array(rows * 3)), /does not hold 48 3-bit codes/);
  assert.throws(() => QUIP_KIND.shape({ qweight: { dtype: 'i32', shape: [rows, 5] }, scales: { dtype: 'f32', shape: [cols + 1] }, g_idx: { dtype: 'i32', shape: [8] } }, 8), /2, 3, 4-bit/);
});

test('quantize --method quip on the bundled model: read back = Q, bits per weight as stored, error below RTN at 2 bits', async () => {
  const out = join(tmp, 'quip2');
  const report = await quantizeModel(ck, be, { method: 'quip', bits: 2, ...calib, out });
  assert.equal(report.settings.format, 'quip');
  assert.equal(report.settings.trueSequential, false, 'all seven linears from one forward, as the reference');
  assert.equal(report.settings.quipFp16, true);
  assert.equal(report.settings.groupSize, -1);
  const back = openModel(out);
  assert.equal(back.format, 'lowbit-quip');
  const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
  assert.deepEqual([qc.quant_method, qc.kind, qc.bits, qc.group_size], ['lowbit', 'quip', 2, -1]);
  // the same run through the pipeline, keeping Q: what the reader gives back is Q, bit for bit
  const windows = calibrationSet('c4', ck.tokenizer, { nsamples: 8, seqlen: 512, seed: 0, dataDir: DATA }).windows;
  const Q = new Map<string, Float32Array>();
  await quantizeBlocks(ck, be, {
    method: QUIP, spec: { bits: 2, groupSize: -1, sym: true, scaleDtype: 'f32' }, options: { percdamp: 0.01, quipFp16: true }, seed: 0,
    calibration: windows, onLayer: (l) => Q.set(l.name, l.out.Q),
  });
  let bytes = 0, weights = 0;
  for (let i = 0; i < ck.config.numLayers; i++) {
    for (const l of LINEARS) {
      const name = NAMES.layer(i, LINEAR_PART[l]);
      const got = back.weights.read(name).toF32();
      assert.deepEqual(got, Q.get(name.replace(/\.weight$/, '')), name);
      const [rows, cols] = back.weights.read(name).shape as [number, number];
      bytes += rows * Math.ceil((cols * 2) / 32) * 4 + (cols + 1) * 4 + 8 * 4;
      weights += rows * cols;
    }
  }
  const bpw = bitsPerWeight(back);
  assert.equal(bpw.storedLinear, (8 * bytes) / weights, 'codes + s + D + the transform record, nothing else');
  assert.equal(bpw.nominal, 2);
  assert.ok(bpw.storedLinear > 2 && bpw.storedLinear < 2.3, `${bpw.storedLinear}`);
  assert.match(bpw.label, /QUIP 2-bit per channel \(quip\)/);
  // error below RTN's at 2 bits, per channel
  const rtn = await quantizeModel(ck, be, { method: 'rtn', bits: 2, group: -1, ...calib, out: join(tmp, 'rtn2') });
  assert.ok(report.totalError! < rtn.totalError!, `QuIP ${report.totalError} vs RTN ${rtn.totalError}`);
  // another seed, other transforms (stored with each layer)
  const other = await quantizeModel(ck, be, { method: 'quip', bits: 2, ...calib, seed: 1, out: join(tmp, 'quip2-seed1') });
  assert.notEqual(other.totalError, report.totalError);
  const rec = (dir: string) => openSafetensorsDir(dir).read('model.layers.0.self_attn.q_proj.g_idx').data as Int32Array;
  assert.equal(rec(out)[1], quipLayerSeed(0, 'model.layers.0.self_attn.q_proj') | 0);
  assert.equal(rec(join(tmp, 'quip2-seed1'))[1], quipLayerSeed(1, 'model.layers.0.self_attn.q_proj') | 0);
});

test('quip refuses settings it has no meaning for', () => {
  const v = (bits: number, groupSize: number) => () => QUIP.validate!({ bits, groupSize, sym: true }, { percdamp: 0.01, quipFp16: true });
  assert.throws(v(1, -1), (e) => e instanceof UsageError && /2, 3, 4 bits/.test(e.message));
  assert.throws(v(8, -1), (e) => e instanceof UsageError && /not 8/.test(e.message));
  assert.throws(v(4, 128), (e) => e instanceof UsageError && /--group 128/.test(e.message));
  assert.doesNotThrow(v(3, -1));
  // an unfactorable dimension: the layer and the reason
  const big = 4099;
  assert.throws(() => quip(new Float32Array(big * 2), big, 2, new Float64Array(4).fill(1), { bits: 2, seed: 0, where: 'model.layers.0.mlp.gate_proj' }),
    (e) => e instanceof UsageError && /model\.layers\.0\.mlp\.gate_proj: .*4099 output features: 4099 is a prime above 4096/.test(e.message));
});
