import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { ModelScorer, logSoftmaxAt } from '../../src/eval/modelScorer.js';
import type { LoglikelihoodRequest } from '../../src/eval/scorer.js';
import { encodePair } from '../../src/eval/tasks/score.js';
import { openModel } from '../../src/io/open.js';
import { LlamaModel } from '../../src/model/llama.js';
import { TINY656K } from '../helpers/paths.js';
import { randomCheckpoint, rng, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';
import { referenceLogits } from '../helpers/referenceForward.js';

const be = new CpuBackend();
const randomCk = randomCheckpoint(SMALL_GQA_LLAMA3, 7);
const randomModel = LlamaModel.load(randomCk, be);
const V = SMALL_GQA_LLAMA3.vocabSize;

function randomIds(r: () => number, n: number): number[] {
  return Array.from({ length: n }, () => 3 + Math.floor(((r() + 1) / 2) * (V - 3)));
}

function assertClose(got: readonly number[], want: readonly number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: lengths`);
  for (let i = 0; i < got.length; i++) {
    assert.ok(Number.isFinite(got[i]!), `${what}[${i}] = ${got[i]} is not finite`);
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`);
  }
}

/** Float64 log-softmax of the last row of the engine's plain forward of `ids`. */
async function lastRowLogSoftmax(model: LlamaModel, ids: number[]): Promise<number[]> {
  const Vm = model.config.vocabSize;
  const all = await be.read(model.forward(Int32Array.from(ids)).logits);
  return logSoftmaxAt(all.subarray(all.length - Vm), Array.from({ length: Vm }, (_, i) => i));
}

test('random GQA model: KV-reuse log-likelihoods equal scoring each request from scratch (1e-4)', async () => {
  const r = rng(11);
  const contexts = [randomIds(r, 1), randomIds(r, 7), randomIds(r, 23)];
  const reqs: LoglikelihoodRequest[] = [];
  // continuations of 1, 2, 5 and 12 tokens per context, plus a repeated context later in the list (not consecutive)
  for (const context of contexts) for (const n of [1, 2, 5, 12]) reqs.push({ context, continuation: randomIds(r, n) });
  reqs.push({ context: contexts[1]!, continuation: randomIds(r, 3) });
  const reuse = await new ModelScorer(randomModel).loglikelihood(reqs);
  const scratch = await new ModelScorer(randomModel, { kvReuse: false }).loglikelihood(reqs);
  assertClose(reuse, scratch, 1e-4, 'll');
  for (const ll of reuse) assert.ok(ll < 0, `a log-likelihood must be negative, got ${ll}`);
  // longer continuations of random tokens are less likely: the 12-token ll is far below the 1-token one
  assert.ok(reuse[3]! < reuse[0]! - 5);
});

test('loglikelihood of a one-token continuation is −nll of the last row of a plain forward (and the float64 reference)', async () => {
  const r = rng(5);
  const context = randomIds(r, 9);
  const target = randomIds(r, 1)[0]!;
  // a second continuation of the same context, so that the KV-reuse path scores it
  const [ll] = await new ModelScorer(randomModel).loglikelihood([{ context, continuation: [target] }, { context, continuation: [target, 4] }]);
  const logits = randomModel.forward(Int32Array.from(context)).logits;
  const [nll] = await be.nll(be.rows(logits, context.length - 1, 1), Int32Array.of(target));
  assert.ok(Math.abs(ll! + nll!) < 1e-5, `ll ${ll} vs −nll ${-nll!}`);
  // the same number from the float64 reference forward (test/helpers/referenceForward.ts)
  const ref = referenceLogits(randomCk, context);
  const row = Float32Array.from(ref.subarray(ref.length - V));
  const [refLl] = logSoftmaxAt(row, [target]);
  assert.ok(Math.abs(ll! - refLl!) < 1e-3, `ll ${ll} vs reference ${refLl}`);
});

test('chain rule: ll(ctx, [a, b]) = ll(ctx, [a]) + ll(ctx + [a], [b])', async () => {
  const r = rng(9);
  const ctx = randomIds(r, 6);
  const [a, b] = randomIds(r, 2) as [number, number];
  const s = new ModelScorer(randomModel);
  const [both, first, second] = await s.loglikelihood([
    { context: ctx, continuation: [a, b] }, { context: ctx, continuation: [a] }, { context: [...ctx, a], continuation: [b] },
  ]);
  assert.ok(Math.abs(both! - (first! + second!)) < 1e-4, `${both} vs ${first} + ${second}`);
});

test('nextTokenLogprobs is the log-softmax of the last row, gathered at the candidates', async () => {
  const context = randomIds(rng(3), 12);
  const candidates = [5, 40, 3, 60];
  const got = await new ModelScorer(randomModel).nextTokenLogprobs(context, candidates);
  const full = await lastRowLogSoftmax(randomModel, context);
  assertClose(got, candidates.map((c) => full[c]!), 1e-5, 'logprob');
  // over the whole vocabulary the probabilities sum to 1
  const all = await new ModelScorer(randomModel).nextTokenLogprobs(context, Array.from({ length: V }, (_, i) => i));
  assert.ok(Math.abs(all.reduce((s, x) => s + Math.exp(x), 0) - 1) < 1e-6);
  await assert.rejects(new ModelScorer(randomModel).nextTokenLogprobs(context, [V]), /outside the vocabulary/);
});

test('context longer than maxContext is cut on the left, for loglikelihood and nextTokenLogprobs', async () => {
  const r = rng(21);
  const context = randomIds(r, 30);
  const continuation = randomIds(r, 4);
  const maxContext = 10;
  const short = new ModelScorer(randomModel, { maxContext });
  assert.equal(short.maxContext, 10);
  assert.equal(new ModelScorer(randomModel).maxContext, SMALL_GQA_LLAMA3.maxPositionEmbeddings);
  // input (context + continuation)[:-1] must be 10 tokens: the last 7 context tokens stay
  const kept = { context: context.slice(-7), continuation };
  const want = await new ModelScorer(randomModel, { kvReuse: false }).loglikelihood([kept]);
  // two continuations of one length share the truncated context (the KV-reuse path)
  const other = randomIds(r, 4);
  const wantOther = await new ModelScorer(randomModel, { kvReuse: false }).loglikelihood([{ context: context.slice(-7), continuation: other }]);
  assertClose(await short.loglikelihood([{ context, continuation }, { context, continuation: other }]), [...want, ...wantOther], 1e-4, 'truncated reuse');
  assertClose(await new ModelScorer(randomModel, { kvReuse: false, maxContext }).loglikelihood([{ context, continuation }]), want, 1e-4, 'truncated scratch');
  const next = await short.nextTokenLogprobs(context, [4, 7]);
  assertClose(next, await new ModelScorer(randomModel).nextTokenLogprobs(context.slice(-10), [4, 7]), 1e-5, 'truncated next');
  await assert.rejects(short.loglikelihood([{ context, continuation: randomIds(r, 11) }]), /does not fit/);
});

test('empty continuation scores 0; an empty context is scored as [BOS]', async () => {
  const cont = randomIds(rng(2), 3);
  for (const kvReuse of [true, false]) {
    const s = new ModelScorer(randomModel, { kvReuse });
    const [zero, empty, bos] = await s.loglikelihood([
      { context: [5, 6], continuation: [] }, { context: [], continuation: cont }, { context: [SMALL_GQA_LLAMA3.bosTokenId!], continuation: cont },
    ]);
    assert.equal(zero, 0);
    assert.equal(empty, bos);
  }
});

test('KV reuse runs each distinct context once: tokens through the model = context + Σ(continuation − 1)', async () => {
  const r = rng(4);
  const context = randomIds(r, 20);
  const conts = [3, 5, 2, 6].map((n) => randomIds(r, n));
  const count = async (kvReuse: boolean, batch: boolean) => {
    const model = LlamaModel.load(randomCk, be);
    let tokens = 0;
    // forward() goes through forwardHidden(), and forwardBatch() through forwardBatchPacked(): counting there sees every token once
    const hid = model.forwardHidden.bind(model);
    model.forwardHidden = (ids, cache) => { tokens += ids.length; return hid(ids, cache); };
    const packed = model.forwardBatchPacked.bind(model);
    model.forwardBatchPacked = (segs, opts) => { for (const s of segs) tokens += s.ids.length; return packed(segs, opts); };
    await new ModelScorer(model, { kvReuse, batch }).loglikelihood(conts.map((continuation) => ({ context, continuation })));
    return tokens;
  };
  assert.equal(await count(true, true), 20 + 2 + 4 + 1 + 5);
  assert.equal(await count(true, false), 20 + 2 + 4 + 1 + 5);
  assert.equal(await count(false, true), 4 * 20 + 2 + 4 + 1 + 5);
});

test('batched log-likelihoods equal unbatched and from-scratch (1e-4), whatever the row budget', async () => {
  const r = rng(31);
  const contexts = [randomIds(r, 1), randomIds(r, 7), randomIds(r, 23), randomIds(r, 40), randomIds(r, 3)];
  const reqs: LoglikelihoodRequest[] = [];
  for (const [c, context] of contexts.entries()) {
    const lens = c === 4 ? [6] : [1, 2, 5, 12]; // the last context has one request (scored from scratch)
    for (const n of lens) reqs.push({ context, continuation: randomIds(r, n) });
  }
  reqs.push({ context: [5, 6], continuation: [] }); // ll = 0
  reqs.push({ context: randomIds(r, 9), continuation: [7] }); // a single one-token continuation
  const unbatched = await new ModelScorer(randomModel, { batch: false }).loglikelihood(reqs);
  const scratch = await new ModelScorer(randomModel, { kvReuse: false }).loglikelihood(reqs);
  assertClose(unbatched, scratch, 1e-4, 'unbatched vs scratch');
  for (const maxBatchRows of [2048, 50, 8, 1]) {
    const batched = await new ModelScorer(randomModel, { maxBatchRows }).loglikelihood(reqs);
    assertClose(batched, unbatched, 1e-4, `batched (${maxBatchRows} rows) vs unbatched`);
    assertClose(batched, scratch, 1e-4, `batched (${maxBatchRows} rows) vs scratch`);
  }
  assert.equal(reqs.length, 19);
  assert.throws(() => new ModelScorer(randomModel, { maxBatchRows: 0 }), /maxBatchRows/);
});

test('TinyStories-656K with its tokenizer: KV-reuse log-likelihoods equal scoring from scratch (1e-4)', async () => {
  const ck = openModel(TINY656K);
  const model = LlamaModel.load(ck, be);
  const tok = ck.tokenizer;
  const cases: [string, string[]][] = [
    ['Question: How do you make a sandcastle?\nAnswer:', ['Pack wet sand into a bucket and turn it over.', 'Pour water on a dry towel.']],
    ['Once upon a time, there was a little girl named Lily. She', ['loved to play outside.', 'was a big red truck that', 'ran']],
    ['The cat sat on the', ['mat.', 'moon and sang a song about the stars.']],
  ];
  const reqs = cases.flatMap(([context, conts]) => conts.map((c) => encodePair(tok, context, ` ${c}`, { encoding: 'joint', bos: false })));
  const reuse = await new ModelScorer(model).loglikelihood(reqs);
  const scratch = await new ModelScorer(model, { kvReuse: false }).loglikelihood(reqs);
  assertClose(reuse, scratch, 1e-4, 'tiny ll');
  assertClose(await new ModelScorer(model, { batch: false }).loglikelihood(reqs), scratch, 1e-4, 'tiny unbatched ll');
  // a trained story model prefers the story continuation
  assert.ok(reuse[2]! > reuse[3]!, `"loved to play outside." ${reuse[2]} should beat "was a big red truck that" ${reuse[3]}`);
  const context = tok.encode('Once upon a time, there was a', { bos: true });
  const full = await lastRowLogSoftmax(model, context);
  assertClose(await new ModelScorer(model).nextTokenLogprobs(context, [10, 500, 2000]), [full[10]!, full[500]!, full[2000]!], 1e-5, 'tiny next');
});
