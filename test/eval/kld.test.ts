// KL-divergence (eval/kld.ts, eval/kldStats.ts): the chunked float64 fold against the formula on hand-made logits, a
// model against itself (KL 0, top-1 agreement 1, equal perplexities), the bundled model against an RTN W3 checkpoint
// against a naive implementation (full logits of both, softmax in float64), and the bad-input contract.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { UsageError } from '../../src/errors.js';
import { evaluateKld } from '../../src/eval/kld.js';
import { KlAccumulator, percentile, summarizeKl } from '../../src/eval/kldStats.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { openModel } from '../../src/io/open.js';
import type { ModelCheckpoint } from '../../src/io/checkpoint.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { pplStream } from '../../src/data/pplData.js';
import { LlamaModel } from '../../src/model/llama.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { DATA, STORIES260K, TINY656K } from '../helpers/paths.js';
import { assertBadInput, runCli, cleanup } from '../cli/helpers.js';

const { kernels, note } = selectKernels('js');
const be = new CpuBackend(kernels, note);
const ck = openModel(TINY656K);
const dir = mkdtempSync(join(tmpdir(), 'lowbit-kld-'));
after(() => { rmSync(dir, { recursive: true, force: true }); cleanup(); });

/** log-softmax of a row in float64 */
function logSoftmax(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i]! - m);
  const lse = m + Math.log(z);
  return Float64Array.from({ length: row.length }, (_, i) => row[i]! - lse);
}

test('fold in chunks = KL by the formula on two small logit sets', () => {
  // two positions, vocabulary 5; base a, quantized b
  const a = [[1, 2, 3, 0.5, -1], [4, -2, 0, 0, 1]];
  const b = [[1, 1, 1, 1, 1], [3.5, -1, 0.25, 0, 2]];
  const want = a.map((row, t) => {
    const lp = logSoftmax(row), lq = logSoftmax(b[t]!);
    let kl = 0;
    for (let v = 0; v < row.length; v++) kl += Math.exp(lp[v]!) * (lp[v]! - lq[v]!);
    return kl;
  });
  // by hand for position 0: q uniform, so KL = log 5 − H(p)
  const p0 = logSoftmax(a[0]!).map(Math.exp);
  assert.ok(Math.abs(want[0]! - (Math.log(5) + p0.reduce((s, p) => s + p * Math.log(p), 0))) < 1e-12);
  for (const chunk of [1, 2, 3, 5]) {
    const acc = new KlAccumulator(2, Int32Array.of(2, 4));
    for (let v0 = 0; v0 < 5; v0 += chunk) {
      const c = Math.min(chunk, 5 - v0);
      const slice = (m: number[][]) => Float32Array.from(m.flatMap((row) => row.slice(v0, v0 + c)));
      acc.fold(slice(a), slice(b), v0, c);
    }
    const r = acc.finish();
    for (let t = 0; t < 2; t++) assert.ok(Math.abs(r.kl[t]! - want[t]!) < 1e-12, `chunk ${chunk}, position ${t}: ${r.kl[t]} vs ${want[t]}`);
    // arg-max of a: 2, 0; of b: 0 (the first of five ties), 0
    assert.deepEqual([...r.sameTop], [0, 1]);
    assert.ok(Math.abs(r.nllBase[0]! + logSoftmax(a[0]!)[2]!) < 1e-12 && Math.abs(r.nllQuant[1]! + logSoftmax(b[1]!)[4]!) < 1e-12);
  }
});

test('summary: mean, sample standard error, interpolated percentiles, top-1 agreement', () => {
  const kl = Float64Array.of(0.4, 0.1, 0.3, 0.2, 0);
  const s = summarizeKl(kl, 3);
  assert.ok(Math.abs(s.mean - 0.2) < 1e-15);
  assert.ok(Math.abs(s.stderr - Math.sqrt(0.025 / 5)) < 1e-15); // sample variance (0.04+0.01+0+0.01+0.04)/4
  assert.equal(s.median, 0.2); assert.equal(s.min, 0); assert.equal(s.max, 0.4);
  assert.ok(Math.abs(s.p99 - 0.396) < 1e-12); // rank 0.99·4 = 3.96 between 0.3 and 0.4
  assert.ok(Math.abs(percentile(Float64Array.of(1, 2), 0.25) - 1.25) < 1e-15);
  assert.equal(s.sameTop, 0.6);
  assert.ok(Math.abs(s.sameTopStderr - Math.sqrt(0.6 * 0.4 / 4)) < 1e-15);
});

test('a model against itself: KL 0 at every token, top-1 agreement 1, both perplexities the protocol\'s', async () => {
  const r = await evaluateKld(ck, ck, be, 'tinystories', { seqlen: 128, limit: 2, dataDir: DATA });
  assert.equal(r.kl.tokens, 2 * 127);
  assert.equal(r.kl.max, 0); assert.equal(r.kl.min, 0); assert.equal(r.kl.mean, 0);
  assert.equal(r.kl.sameTop, 1);
  assert.equal(r.pplBase, r.pplQuant); assert.equal(r.deltaPpl, 0);
  const p = await evaluatePpl(ck, be, 'tinystories', { seqlen: 128, limit: 2, dataDir: DATA });
  assert.ok(Math.abs(r.pplBase / p.ppl - 1) < 1e-9, `${r.pplBase} vs evaluatePpl ${p.ppl}`);
});

test('bundled model vs RTN W3: streamed KLD equals a naive one (full logits of both, float64 softmax)', async () => {
  const out = join(dir, 'rtn3');
  await quantizeModel(ck, be, { method: 'rtn', bits: 3, group: 128, nsamples: 1, seed: 0, dataDir: DATA, out });
  const q = openModel(out);
  const seqlen = 96, limit = 2;
  // headChunk 300: the 2,048-token vocabulary in 7 chunks, the last one short
  const r = await evaluateKld(q, ck, be, 'tinystories', { seqlen, limit, dataDir: DATA, headChunk: 300 });

  const ids = pplStream('tinystories', ck.tokenizer, { seqlen, dataDir: DATA, bos: true }).ids;
  const mb = LlamaModel.load(ck, be), mq = LlamaModel.load(q, be);
  const V = ck.config.vocabSize, P = seqlen - 1;
  const kl: number[] = [];
  let same = 0, nllB = 0, nllQ = 0;
  for (let w = 0; w < limit; w++) {
    const win = ids.subarray(w * seqlen, (w + 1) * seqlen);
    const la = await be.read(mb.forward(win.subarray(0, P)).logits), lb = await be.read(mq.forward(win.subarray(0, P)).logits);
    let sb = 0, sq = 0;
    for (let t = 0; t < P; t++) {
      const lp = logSoftmax(la.subarray(t * V, (t + 1) * V)), lq = logSoftmax(lb.subarray(t * V, (t + 1) * V));
      let s = 0, ia = 0, ib = 0;
      for (let v = 0; v < V; v++) {
        s += Math.exp(lp[v]!) * (lp[v]! - lq[v]!);
        if (lp[v]! > lp[ia]!) ia = v;
        if (lq[v]! > lq[ib]!) ib = v;
      }
      kl.push(s);
      if (ia === ib) same++;
      sb -= lp[win[t + 1]!]!; sq -= lq[win[t + 1]!]!;
    }
    nllB += sb / P; nllQ += sq / P;
  }
  mb.free(); mq.free();
  const n = kl.length;
  const mean = kl.reduce((a, b) => a + b, 0) / n;
  const sorted = [...kl].sort((a, b) => a - b);
  assert.equal(r.kl.tokens, n);
  const close = (got: number, want: number, what: string) =>
    assert.ok(Math.abs(got - want) <= 1e-5 * Math.abs(want) + 1e-9, `${what}: streamed ${got} vs naive ${want}`);
  close(r.kl.mean, mean, 'mean KL');
  close(r.kl.max, sorted[n - 1]!, 'max KL');
  close(r.kl.median, (sorted[(n - 1) / 2 | 0]! + sorted[Math.ceil((n - 1) / 2)]!) / 2, 'median KL');
  assert.equal(r.kl.sameTop, same / n);
  close(r.pplBase, Math.exp(nllB / limit), 'PPL base');
  close(r.pplQuant, Math.exp(nllQ / limit), 'PPL quant');
  // a real quantization error, not a degenerate one
  assert.ok(mean > 0.01 && r.kl.min >= -1e-9 && r.kl.sameTop < 1 && r.kl.sameTop > 0.3, `mean ${mean}, top-1 ${r.kl.sameTop}`);
});

test('a tokenizer that encodes the set differently is refused, naming both models', async () => {
  const other: Tokenizer = Object.create(ck.tokenizer, {
    encode: { value: (text: string, o: { bos: boolean }) => ck.tokenizer.encode(text, o).map((id, i) => (i === 5 ? (id + 1) % 2048 : id)) },
  });
  const q: ModelCheckpoint = { ...ck, path: '/elsewhere/q', tokenizer: other };
  await assert.rejects(evaluateKld(q, ck, be, 'tinystories', { seqlen: 64, limit: 1, dataDir: DATA }),
    (e: unknown) => e instanceof UsageError && /tokenizer mismatch on tinystories: .*\/elsewhere\/q and base .* \(first at token 5:/.test(e.message));
});

test('CLI: --kld BASE missing, or of another vocabulary → one line, exit 2', () => {
  const missing = join(dir, 'no-such-model');
  assertBadInput(runCli(['eval', '--model', TINY656K, '--kld', missing, '--ppl', 'tinystories', '--limit', '1']), [missing], /does not exist/);
  assertBadInput(runCli(['eval', '--model', TINY656K, '--kld', join(STORIES260K, 'stories260K.bin'), '--ppl', 'tinystories', '--limit', '1', '--seqlen', '256']),
    ['stories260K.bin', TINY656K], /vocabulary mismatch: .* has 2048 tokens, base .* has 512/);
  assertBadInput(runCli(['eval', '--model', TINY656K, '--kld', TINY656K, '--tasks', 'piqa', '--limit', '1']), ['--kld', '--ppl']);
});

test('CLI: --kld prints the table and writes the record', () => {
  const outFile = join(dir, 'kld.json');
  const r = runCli(['eval', '--model', TINY656K, '--kld', TINY656K, '--ppl', 'tinystories', '--limit', '1', '--seqlen', '64', '--out', outFile], { timeoutMs: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| TinyStories \| [\d.]+ \| [\d.]+ \| \+0\.00 \| 0\.000000 ± 0\.000000 \| 0\.000000 \| 100\.00 ± 0\.00 \|/);
  assert.match(r.stdout, /Same top p 100\.000 ± 0\.000 %/);
});

test('--windows-per-pass: perplexity and KLD in passes of 1 or 2 windows equal one pass over all, bit for bit; 0 is refused', async () => {
  const out = join(dir, 'rtn3-passes');
  await quantizeModel(ck, be, { method: 'rtn', bits: 3, group: 128, nsamples: 1, seed: 0, dataDir: DATA, out });
  const q = openModel(out);
  const o = { seqlen: 64, limit: 3, dataDir: DATA, headChunk: 700 };
  const whole = await evaluateKld(q, ck, be, 'tinystories', o);
  for (const windowsPerPass of [1, 2]) {
    const r = await evaluateKld(q, ck, be, 'tinystories', { ...o, windowsPerPass });
    assert.deepEqual(r.kl, whole.kl);
    assert.equal(r.pplBase, whole.pplBase);
    assert.equal(r.pplQuant, whole.pplQuant);
    const p = await evaluatePpl(q, be, 'tinystories', { seqlen: 64, limit: 3, dataDir: DATA, windowsPerPass });
    assert.equal(p.ppl, whole.pplQuant);
    assert.equal(p.windowsEvaluated, 3);
  }
  await assert.rejects(evaluatePpl(q, be, 'tinystories', { seqlen: 64, limit: 3, dataDir: DATA, windowsPerPass: 0 }), UsageError);
  assertBadInput(runCli(['eval', '--model', TINY656K, '--ppl', 'tinystories', '--limit', '1', '--windows-per-pass', '0']), ['--windows-per-pass']);
});
