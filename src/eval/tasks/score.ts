/**
 * Scoring of multiple-choice requests (PROTOCOLS.md §2): tokenization of context + continuation, log-likelihoods
 * through a Scorer, and the acc / acc_norm metrics with their standard errors.
 */
import { UsageError } from '../../errors.js';
import type { Tokenizer } from '../../io/tokenizer.js';
import type { LoglikelihoodRequest, Scorer } from '../scorer.js';
import { choicePairs, type TaskRequest } from './requests.js';

/**
 * 'joint' (lm-eval ≥ 0.4): encode(context + continuation) whole and cut it at the length of encode(context); the
 * context keeps its own tokens. 'separate' (lm-eval v0.3, the paper's harness): encode(context), encode(continuation).
 */
export type PairEncoding = 'joint' | 'separate';

export interface EncodeOptions {
  readonly encoding: PairEncoding;
  /** prepend one BOS to every context (lm-eval v0.3 and the paper: off) */
  readonly bos: boolean;
}

/** The text scored after a context: the continuation with lm-eval's target delimiter " ". */
const TARGET_DELIMITER = ' ';

/** Tokens of one (context, continuation) pair; `continuation` is the text to score, leading space included. */
export function encodePair(tok: Tokenizer, context: string, continuation: string, opts: EncodeOptions): LoglikelihoodRequest {
  if (context === '') {
    // lm-eval: an empty context is replaced by the BOS token (else EOS) as its only token
    const start = tok.bosId ?? tok.eosId;
    if (start === undefined) throw new UsageError(`tokenizer ${tok.description} has neither BOS nor EOS for an empty context`);
    return { context: [start], continuation: tok.encode(continuation, { bos: false }) };
  }
  let ctxIds: number[];
  let contIds: number[];
  if (opts.encoding === 'joint') {
    // lm-eval 0.4 `_encode_pair`: trailing spaces of the context move to the front of the continuation
    const trimmed = context.trimEnd();
    const ctx = context.slice(0, trimmed.length);
    const cont = context.slice(trimmed.length) + continuation;
    const whole = tok.encode(ctx + cont, { bos: false });
    ctxIds = tok.encode(ctx, { bos: false });
    contIds = whole.slice(ctxIds.length);
  } else {
    ctxIds = tok.encode(context, { bos: false });
    contIds = tok.encode(continuation, { bos: false });
  }
  if (opts.bos) {
    if (tok.bosId === undefined) throw new UsageError(`tokenizer ${tok.description} has no BOS token; run with BOS off`);
    ctxIds = [tok.bosId, ...ctxIds];
  }
  return { context: ctxIds, continuation: contIds };
}

/** Left-truncates the context so that the model input `(context + continuation)[:-1]` fits `maxContext` tokens. */
export function fitToContext(req: LoglikelihoodRequest, maxContext: number): LoglikelihoodRequest {
  const over = req.context.length + req.continuation.length - 1 - maxContext;
  if (over <= 0) return req;
  if (over >= req.context.length) {
    throw new UsageError(`a continuation of ${req.continuation.length} tokens does not fit the model's context of ${maxContext}`);
  }
  return { context: req.context.slice(over), continuation: req.continuation };
}

/** Index of the first maximum (numpy argmax). */
export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** Length in characters (code points, as Python's len), not UTF-16 units. */
function charLength(s: string): number {
  return [...s].length;
}

export interface ExampleScore {
  /** log-likelihood of each choice */
  readonly ll: number[];
  readonly acc: 0 | 1;
  /** absent for partial scoring (Winogrande: one shared continuation, so normalising changes nothing meaningful) */
  readonly accNorm?: 0 | 1;
}

/** The metrics of one example from its log-likelihoods. */
function metricsOf(req: TaskRequest, ll: number[]): ExampleScore {
  const acc = argmax(ll) === req.gold ? 1 : 0;
  if ('contexts' in req) return { ll, acc };
  const norm = ll.map((v, i) => v / charLength(req.continuations[i]!));
  return { ll, acc, accNorm: argmax(norm) === req.gold ? 1 : 0 };
}

/**
 * Scores several examples through one loglikelihood call holding all their choices (each example's choices stay
 * consecutive, so choices sharing a context are together); one metrics record per example, in order.
 */
export async function scoreRequests(reqs: readonly TaskRequest[], scorer: Scorer, tok: Tokenizer, opts: EncodeOptions): Promise<ExampleScore[]> {
  const pairs = reqs.map((req) => choicePairs(req).map(({ context, continuation }) =>
    fitToContext(encodePair(tok, context, TARGET_DELIMITER + continuation, opts), scorer.maxContext)));
  const flat = pairs.flat();
  const ll = await scorer.loglikelihood(flat);
  if (ll.length !== flat.length) throw new Error(`scorer returned ${ll.length} log-likelihoods for ${flat.length} requests`);
  let at = 0;
  return reqs.map((req, i) => {
    const n = pairs[i]!.length;
    const s = metricsOf(req, ll.slice(at, at + n));
    at += n;
    return s;
  });
}

/** Mean and its standard error (sample standard deviation / sqrt(n), as lm-eval's `mean_stderr`). */
export function meanStderr(xs: readonly number[]): { mean: number; stderr: number } {
  const n = xs.length;
  if (n === 0) return { mean: NaN, stderr: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, stderr: NaN };
  const ss = xs.reduce((a, x) => a + (x - mean) ** 2, 0);
  return { mean, stderr: Math.sqrt(ss / (n - 1)) / Math.sqrt(n) };
}
