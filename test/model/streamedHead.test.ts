import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import type { CpuKernels } from '../../src/backend/cpu/kernels/kernels.js';
import { LlamaModel } from '../../src/model/llama.js';
import { embedAll, streamBlocks, streamedNll } from '../../src/model/stream.js';
import { NAMES, type TensorSource } from '../../src/io/source.js';
import type { ModelCheckpoint } from '../../src/io/checkpoint.js';
import { randomCheckpoint, rng, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';
import { PROVIDERS, availability, kernelsOf } from '../backend/kernelCases.js';

const be = new CpuBackend();
const V = SMALL_GQA_LLAMA3.vocabSize;
const r = rng(5);
const window = (n: number) => Int32Array.from({ length: n }, () => Math.floor(((r() + 1) / 2) * V) % V);
const seqs = [window(24), window(24), window(24)];
// every id of the vocabulary's ends appears, so chunk boundaries are crossed by targets
seqs[0]![3] = 0; seqs[1]![5] = V - 1; seqs[2]![23] = 6; seqs[2]![22] = 7;

const tiedCfg = { ...SMALL_GQA_LLAMA3, tieWordEmbeddings: true };
const CASES: [string, ModelCheckpoint][] = [
  ['untied f32', randomCheckpoint(SMALL_GQA_LLAMA3, 21)],
  ['tied f32', randomCheckpoint(tiedCfg, 22)],
  ['untied bf16', randomCheckpoint(SMALL_GQA_LLAMA3, 23, 'bf16')],
  ['tied bf16', randomCheckpoint(tiedCfg, 24, 'bf16')],
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A view of a checkpoint whose source logs every read/readRows (name, rows) and can hide readRows. */
function spy(ck: ModelCheckpoint, opts: { partial: boolean }) {
  const log: { name: string; start: number; count: number; whole: boolean }[] = [];
  const w = ck.weights;
  const weights: TensorSource = {
    path: w.path, list: () => w.list(), has: (n) => w.has(n),
    read: (n) => { log.push({ name: n, start: 0, count: w.list().find((t) => t.name === n)!.shape[0]!, whole: true }); return w.read(n); },
    ...(opts.partial ? { readRows: (n: string, s: number, c: number) => { log.push({ name: n, start: s, count: c, whole: false }); return w.readRows!(n, s, c); } } : {}),
  };
  return { ck: { ...ck, weights }, log };
}

for (const [label, ck] of CASES) {
  test(`streamed NLL (${label}): head chunks of 7 vocabulary rows equal one chunk within 1e-6, and the resident model`, async () => {
    const one = await streamedNll(ck, be, seqs, { headChunk: V });
    const model = LlamaModel.load(ck, be);
    for (const [s, ids] of seqs.entries()) {
      const logits = model.forward(ids).logits;
      const ref = await be.nll(be.rows(logits, 0, ids.length - 1), ids.subarray(1));
      assert.ok(maxAbsDiff(one[s]!, ref) < 1e-6, `one chunk vs resident model: ${maxAbsDiff(one[s]!, ref)}`);
    }
    for (const headChunk of [7, 1, 2, 60, 1000]) {
      const got = await streamedNll(ck, be, seqs, { headChunk, embedChunk: 3 });
      for (const s of seqs.keys()) {
        const d = maxAbsDiff(got[s]!, one[s]!);
        assert.ok(d < 1e-6, `headChunk ${headChunk}, sequence ${s}: max |chunked − one chunk| = ${d}`);
      }
    }
  });

  test(`streamed NLL (${label}): the embedding table and the head are read only in chunks, never whole`, async () => {
    const { ck: spied, log } = spy(ck, { partial: true });
    const headName = ck.weights.has(NAMES.lmHead) ? NAMES.lmHead : NAMES.embed;
    await streamedNll(spied, be, seqs, { headChunk: 7, embedChunk: 4 });
    const edge = log.filter((e) => e.name === NAMES.embed || e.name === NAMES.lmHead);
    assert.ok(edge.length > 0);
    for (const e of edge) {
      assert.equal(e.whole, false, `${e.name} was read whole`);
      assert.ok(e.count <= 7, `${e.name}: ${e.count} rows read at once`);
    }
    // the head (the reads after the final norm's): every vocabulary row exactly once, in chunks of 7
    const after = log.slice(log.findIndex((e) => e.name === NAMES.finalNorm) + 1);
    assert.ok(after.every((e) => e.name === headName));
    assert.deepEqual(after.map((e) => [e.start, e.count]), Array.from({ length: Math.ceil(V / 7) }, (_, i) => [7 * i, Math.min(7, V - 7 * i)]));
    // the embedding (the reads before block 0's): only the rows the tokens use, for a sparse window
    log.length = 0;
    await streamedNll(spied, be, [Int32Array.of(3, 58, 3, 57)], { embedChunk: 8 });
    const before = log.slice(0, log.findIndex((e) => e.name.startsWith('model.layers.0.')));
    assert.deepEqual(before.map((e) => [e.name, e.start, e.count, e.whole]), [[NAMES.embed, 3, 1, false], [NAMES.embed, 57, 2, false]]);
  });

  test(`streamed NLL (${label}): a source without readRows gives the same values (one whole read per table)`, async () => {
    const want = await streamedNll(ck, be, seqs, { headChunk: 7 });
    const { ck: plain, log } = spy(ck, { partial: false });
    const got = await streamedNll(plain, be, seqs, { headChunk: 7, embedChunk: 5 });
    assert.deepEqual(got, want);
    const edge = log.filter((e) => e.name === NAMES.embed || e.name === NAMES.lmHead);
    assert.ok(edge.length <= 2, `embedding/head read ${edge.length} times`);
  });
}

test('embedAll gathers rows exactly as Backend.embedding of the whole table, for any span size', async () => {
  for (const [, ck] of CASES) {
    const table = be.uploadWeight(ck.weights.read(NAMES.embed));
    for (const chunkRows of [1, 2, 7, 1000, undefined]) {
      const { hidden } = embedAll(ck, be, seqs, { chunkRows });
      for (const [s, ids] of seqs.entries()) assert.deepEqual(await be.read(hidden[s]!), await be.read(be.embedding(table, ids)));
    }
  }
});

test('streamed NLL: out-of-vocabulary ids are a RangeError; T < 2 gives empty NLLs; streamBlocks consumes its array', async () => {
  const ck = CASES[0]![1];
  await assert.rejects(streamedNll(ck, be, [Int32Array.of(1, V)]), /outside the vocabulary of 61/);
  await assert.rejects(streamedNll(ck, be, [Int32Array.of(-1, 2)]), /outside the vocabulary of 61/);
  await assert.rejects(streamedNll(ck, be, [Int32Array.of(1, 2)], { headChunk: 0 }), /headChunk/);
  assert.deepEqual(await streamedNll(ck, be, [Int32Array.of(5)]), [new Float64Array(0)]);
  const { hidden } = embedAll(ck, be, [seqs[0]!]);
  const first = hidden[0];
  const out = await streamBlocks(ck, be, hidden, async (_i, _w, xs) => xs.map((x) => be.add(x, x)));
  assert.equal(out, hidden);
  assert.notEqual(hidden[0], first, 'the caller\'s array holds the last block\'s outputs');
});

/** float64 reference of logSoftmaxParts. */
function reference(logits: Float32Array, T: number, C: number, targets: Int32Array, offset: number) {
  const lse = new Float64Array(T), picked = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let mx = -Infinity;
    for (let j = 0; j < C; j++) mx = Math.max(mx, logits[t * C + j]!);
    let sum = 0;
    for (let j = 0; j < C; j++) sum += Math.exp(logits[t * C + j]! - mx);
    lse[t] = mx + Math.log(sum);
    const k = targets[t]! - offset;
    picked[t] = k >= 0 && k < C ? logits[t * C + k]! : NaN;
  }
  return { lse, picked };
}

const kernelSets: [string, () => CpuKernels, { skip: string | false }][] = [
  ['js', () => jsKernels, { skip: false }],
  ...PROVIDERS.map((p) => [p.name, () => kernelsOf(p), availability(p)] as [string, () => CpuKernels, { skip: string | false }]),
];

for (const [name, kernels, avail] of kernelSets) {
  test(`logSoftmaxParts (${name} kernels) equals a float64 reference, targets inside and outside the chunk`, avail, async () => {
    const b = new CpuBackend(kernels());
    const rr = rng(9);
    for (const [T, C, offset] of [[5, 7, 14], [9, 1, 3], [3, 300, 1000], [1, 4, 0]] as const) {
      const x = Float32Array.from({ length: T * C }, () => rr() * 12);
      // targets: below, inside (first, last, middle) and above the chunk [offset, offset + C)
      const targets = Int32Array.from({ length: T }, (_, t) => [offset - 1, offset, offset + C - 1, offset + (t % C), offset + C, 0][t % 6]!);
      const got = await b.logSoftmaxParts(b.upload(x, [T, C]), targets, offset);
      const want = reference(x, T, C, targets, offset);
      for (let t = 0; t < T; t++) {
        assert.ok(Math.abs(got.lse[t]! - want.lse[t]!) <= 1e-12 * Math.max(1, Math.abs(want.lse[t]!)), `lse row ${t}: ${got.lse[t]} vs ${want.lse[t]}`);
        if (Number.isNaN(want.picked[t]!)) assert.ok(Number.isNaN(got.picked[t]!), `row ${t}: target ${targets[t]} is outside the chunk, picked must be NaN`);
        else assert.equal(got.picked[t], want.picked[t]);
      }
    }
    // chunks combine to the whole row's nll
    const T = 4, Vv = 23, full = Float32Array.from({ length: T * Vv }, () => rr() * 8);
    const targets = Int32Array.of(0, 22, 11, 5);
    const whole = await b.nll(b.upload(full, [T, Vv]), targets);
    const lse = new Float64Array(T).fill(-Infinity), picked = new Float64Array(T);
    for (let v0 = 0; v0 < Vv; v0 += 6) {
      const c = Math.min(6, Vv - v0), part = new Float32Array(T * c);
      for (let t = 0; t < T; t++) part.set(full.subarray(t * Vv + v0, t * Vv + v0 + c), t * c);
      const p = await b.logSoftmaxParts(b.upload(part, [T, c]), targets, v0);
      for (let t = 0; t < T; t++) {
        const m = Math.max(lse[t]!, p.lse[t]!);
        lse[t] = m + Math.log(Math.exp(lse[t]! - m) + Math.exp(p.lse[t]! - m));
        if (!Number.isNaN(p.picked[t]!)) picked[t] = p.picked[t]!;
      }
    }
    for (let t = 0; t < T; t++) assert.ok(Math.abs(lse[t]! - picked[t]! - whole[t]!) < 1e-12, `row ${t}`);
  });
}

test('logSoftmaxParts: shape errors and −∞ logits', async () => {
  const x = be.upload(Float32Array.of(0, -Infinity, 1, -Infinity, -Infinity, 2), [2, 3]);
  await assert.rejects(be.logSoftmaxParts(x, Int32Array.of(0), 0), /targets has shape \[1\], expected \[2\]/);
  const p = await be.logSoftmaxParts(x, Int32Array.of(1, 10), 0);
  assert.ok(Math.abs(p.lse[0]! - Math.log(1 + Math.E)) < 1e-12);
  assert.equal(p.picked[0], -Infinity);
  assert.ok(Math.abs(p.lse[1]! - 2) < 1e-12);
  assert.ok(Number.isNaN(p.picked[1]!));
});
