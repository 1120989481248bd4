import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../src/errors.js';
import { evaluateTask } from '../../src/eval/tasks/registry.js';
import type { Scorer } from '../../src/eval/scorer.js';
import type { TaskRequest } from '../../src/eval/tasks/requests.js';
import { encodePair, fitToContext, meanStderr, scoreRequests, type EncodeOptions, type ExampleScore } from '../../src/eval/tasks/score.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { HAS_TASK_DATA, NO_TASK_DATA_REASON, DATA, TINY656K } from '../helpers/paths.js';
import { CHAR_BOS, CHAR_EOS, TableScorer, charTokenizer, tinyStoriesTokenizer } from './fakes.js';

const tok = charTokenizer();
const enc = (s: string) => tok.encode(s, { bos: false });
const JOINT = { encoding: 'joint', bos: false } as const;

/** One example through scoreRequests, the path evaluateTask takes (a batch of one). */
async function scoreRequest(req: TaskRequest, scorer: Scorer, t: Tokenizer, opts: EncodeOptions): Promise<ExampleScore> {
  const scores = await scoreRequests([req], scorer, t, opts);
  assert.equal(scores.length, 1);
  return scores[0]!;
}

test('acc and acc_norm differ: argmax(ll) vs argmax(ll / characters)', async () => {
  const lls: Record<string, number> = { ' a': -2, ' bbbb': -4, ' cc': -3 };
  const scorer = new TableScorer(tok, (_ctx, cont) => lls[cont] ?? assert.fail(`no log-likelihood for ${JSON.stringify(cont)}`));
  const req = { context: 'Question: q\nAnswer:', continuations: ['a', 'bbbb', 'cc'], gold: 1 };
  const s = await scoreRequest(req, scorer, tok, JOINT);
  assert.deepEqual(s.ll, [-2, -4, -3]);
  assert.equal(s.acc, 0); // argmax ll = 0 ("a")
  assert.equal(s.accNorm, 1); // -2/1, -4/4, -3/2 → "bbbb"
  // one call, the shared context first in every request, " " + continuation scored
  assert.equal(scorer.calls.length, 1);
  assert.deepEqual(scorer.calls[0], ['a', 'bbbb', 'cc'].map((c) => ({ context: enc('Question: q\nAnswer:'), continuation: enc(` ${c}`) })));
});

test('acc_norm counts characters (code points) without the leading space', async () => {
  // "é𝔸" is 2 code points (3 UTF-16 units): -2.2/2 = -1.1 < -3/3 = -1, so "abc" wins by norm (by UTF-16 length it would not: -0.73)
  const scorer = new TableScorer(tok, (_c, cont) => (cont === ' é𝔸' ? -2.2 : -3));
  const s = await scoreRequest({ context: 'c', continuations: ['é𝔸', 'abc'], gold: 1 }, scorer, tok, JOINT);
  assert.equal(s.acc, 0);
  assert.equal(s.accNorm, 1);
});

test('Winogrande partial scoring: two contexts, one continuation, acc only', async () => {
  const scorer = new TableScorer(tok, (ctx) => (ctx.endsWith('Maria') ? -1 : -5));
  const req = { contexts: ['so Sarah', 'so Maria'], continuation: 'always got the easier cases.', gold: 1 };
  const s = await scoreRequest(req, scorer, tok, JOINT);
  assert.equal(s.acc, 1);
  assert.equal(s.accNorm, undefined);
  assert.deepEqual(scorer.calls[0]!.map((r) => tok.decode(r.continuation)), [' always got the easier cases.', ' always got the easier cases.']);
});

test('BOS option and the empty context', () => {
  assert.deepEqual(encodePair(tok, 'ab', ' c', { encoding: 'joint', bos: true }), { context: [CHAR_BOS, ...enc('ab')], continuation: enc(' c') });
  assert.deepEqual(encodePair(tok, 'ab', ' c', { encoding: 'separate', bos: false }), { context: enc('ab'), continuation: enc(' c') });
  // empty context: BOS (else EOS) as its only token, with or without the bos option
  assert.deepEqual(encodePair(tok, '', ' c', { encoding: 'joint', bos: true }), { context: [CHAR_BOS], continuation: enc(' c') });
  const noBos = { ...tok, bosId: undefined };
  assert.deepEqual(encodePair(noBos, '', ' c', JOINT), { context: [CHAR_EOS], continuation: enc(' c') });
  assert.throws(() => encodePair(noBos, 'a', ' c', { encoding: 'joint', bos: true }), UsageError);
  // joint mode moves a context's trailing spaces to the continuation (lm-eval 0.4)
  assert.deepEqual(encodePair(tok, 'ab ', 'c', JOINT), { context: enc('ab'), continuation: enc(' c') });
});

test('context/continuation split with a BPE that merges across the boundary (TinyStories-656K)', { skip: existsSync(join(TINY656K, 'tokenizer.json')) ? false : `needs ${TINY656K}` }, async () => {
  const bpe = tinyStoriesTokenizer(TINY656K);
  const e = (s: string) => bpe.encode(s, { bos: false });
  const ctx = e('Lily');
  const whole = e('Lily said');
  const sep = e(' said');
  // the joint tokens are not enc(context) + enc(" said"): "Lily " merges with the space
  assert.notDeepEqual(whole, [...ctx, ...sep]);
  assert.notDeepEqual(whole.slice(0, ctx.length), ctx);
  const joint = encodePair(bpe, 'Lily', ' said', JOINT);
  assert.deepEqual(joint, { context: ctx, continuation: whole.slice(ctx.length) });
  assert.equal(bpe.decode(joint.continuation), 'said');
  assert.deepEqual(encodePair(bpe, 'Lily', ' said', { encoding: 'separate', bos: false }), { context: ctx, continuation: sep });
  // the scorer sees the context's own tokens and only the continuation's tokens
  const seen: number[][] = [];
  const scorer = new TableScorer(bpe, () => 0);
  await scoreRequest({ context: 'Lily', continuations: ['said', 'ran'], gold: 0 }, scorer, bpe, JOINT);
  for (const r of scorer.calls[0]!) { assert.deepEqual(r.context, ctx); seen.push(r.continuation); }
  assert.deepEqual(seen[0], whole.slice(ctx.length));
});

test('fitToContext keeps the end of the context so that (context + continuation)[:-1] fits', () => {
  const r = { context: [1, 2, 3, 4, 5], continuation: [6, 7] };
  assert.equal(fitToContext(r, 6), r);
  assert.deepEqual(fitToContext(r, 4), { context: [3, 4, 5], continuation: [6, 7] });
  assert.throws(() => fitToContext(r, 1), UsageError);
});

test('meanStderr: sample standard deviation / sqrt(n)', () => {
  const m = meanStderr([0, 1, 1]);
  assert.ok(Math.abs(m.mean - 2 / 3) < 1e-12);
  assert.ok(Math.abs(m.stderr - 1 / 3) < 1e-12);
});

function piqaDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-piqa-'));
  mkdirSync(join(dir, 'piqa'));
  const docs = [['g1', 'a', 'bbbb'], ['g2', 'cc', 'd'], ['g3', 'e', 'f']];
  writeFileSync(join(dir, 'piqa', 'valid.jsonl'), docs.map(([goal, sol1, sol2]) => JSON.stringify({ goal, sol1, sol2 }) + '\n').join(''));
  writeFileSync(join(dir, 'piqa', 'valid-labels.lst'), '1\n0\n1\n');
  return dir;
}

test('evaluateTask: PIQA on a hand-made data dir, record fields, limit', async () => {
  // log-likelihoods: ex1 " a" -2, " bbbb" -4 (acc 0, norm 1); ex2 " cc" -1, " d" -3 (acc 1, norm 1); ex3 " e" -1, " f" -1 (tie → 0; gold 1: 0, 0)
  const lls: Record<string, number> = { ' a': -2, ' bbbb': -4, ' cc': -1, ' d': -3, ' e': -1, ' f': -1 };
  const scorer = new TableScorer(tok, (_c, cont) => lls[cont] ?? assert.fail(`no log-likelihood for ${JSON.stringify(cont)}`), 64);
  const progress: number[] = [];
  const r = await evaluateTask('piqa', scorer, tok, { dataDir: piqaDir(), onProgress: (d) => progress.push(d) });
  assert.equal(r.task, 'piqa');
  assert.equal(r.split, 'validation');
  assert.equal(r.n, 3);
  assert.equal(r.shots, 0);
  assert.equal(r.bos, false);
  assert.equal(r.encoding, 'joint');
  assert.equal(r.protocol, 'lm-eval-v0.3-acc');
  assert.equal(r.maxContext, 64);
  assert.equal(r.tokenizer, 'fake char tokenizer');
  assert.ok(Math.abs(r.acc - 1 / 3) < 1e-12);
  assert.ok(Math.abs(r.acc_norm! - 2 / 3) < 1e-12);
  assert.ok(Math.abs(r.stderr.acc - 1 / 3) < 1e-12);
  assert.deepEqual(progress, [1, 2, 3]);
  assert.equal(tok.decode(scorer.calls[0]![0]!.context), 'Question: g1\nAnswer:');
  const lim = await evaluateTask('piqa', scorer, tok, { dataDir: piqaDir(), limit: 2, bos: true, encoding: 'separate' });
  assert.deepEqual([lim.n, lim.limit, lim.acc, lim.acc_norm, lim.bos, lim.encoding], [2, 2, 0.5, 1, true, 'separate']);
  assert.equal(scorer.calls.at(-1)![0]!.context[0], CHAR_BOS);
  await assert.rejects(evaluateTask('piqa', scorer, tok, { dataDir: piqaDir(), limit: 0 }), UsageError);
});

test('evaluateTask on the shared data: HellaSwag text layout is labelled llamacpp-txt; Winogrande has no acc_norm', { skip: HAS_TASK_DATA ? false : NO_TASK_DATA_REASON }, async () => {
  const scorer = new TableScorer(tok, (_c, cont) => -[...cont].length);
  const hs = await evaluateTask('hellaswag', scorer, tok, { dataDir: DATA, limit: 4 });
  assert.equal(hs.n, 4);
  assert.equal(hs.protocol, 'lm-eval-v0.3-acc:llamacpp-txt');
  assert.equal(hs.variant, 'llamacpp-txt');
  assert.equal(tok.decode(scorer.calls[0]![0]!.context), 'Roof shingle removal: A man is sitting on a roof. he');
  const wg = await evaluateTask('winogrande', scorer, tok, { dataDir: DATA, limit: 2 });
  assert.equal(wg.acc_norm, undefined);
  assert.equal(wg.protocol, 'lm-eval-v0.3-acc');
});
