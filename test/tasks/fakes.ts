/** Test doubles for the task tests: a character tokenizer, the TinyStories BPE behind our Tokenizer interface, a table-driven Scorer. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import type { LoglikelihoodRequest, Scorer } from '../../src/eval/scorer.js';

export const CHAR_BOS = 0x110000;
export const CHAR_EOS = 0x110001;

/** One token per code point (id = code point); BOS/EOS just above the Unicode range. */
export function charTokenizer(): Tokenizer {
  return {
    kind: 'fake-chars',
    description: 'fake char tokenizer',
    vocabSize: CHAR_EOS + 1,
    bosId: CHAR_BOS,
    eosId: CHAR_EOS,
    encode: (text, { bos }) => [...(bos ? [CHAR_BOS] : []), ...[...text].map((c) => c.codePointAt(0)!)],
    decode: (ids) => ids.filter((i) => i < CHAR_BOS).map((i) => String.fromCodePoint(i)).join(''),
  };
}

/** The bundled TinyStories-656K tokenizer.json (a BPE without pre-tokenizer) through @huggingface/tokenizers. */
export function tinyStoriesTokenizer(dir: string): Tokenizer {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  const hf = new HfTokenizer(json, config);
  return {
    kind: 'tokenizer.json',
    description: 'TinyStories-656K tokenizer.json',
    vocabSize: json.model.vocab ? Object.keys(json.model.vocab).length : 0,
    bosId: 1,
    eosId: 2,
    encode: (text, { bos }) => [...(bos ? [1] : []), ...hf.encode(text, { add_special_tokens: false }).ids],
    decode: (ids) => (ids.length === 0 ? '' : hf.decode([...ids])),
  };
}

/**
 * A Scorer whose log-likelihoods are looked up by the decoded continuation text (and optionally the context text),
 * recording every call.
 */
export class TableScorer implements Scorer {
  readonly calls: LoglikelihoodRequest[][] = [];
  readonly nextCalls: { context: number[]; candidates: number[] }[] = [];
  constructor(
    private readonly tok: Tokenizer,
    private readonly table: (context: string, continuation: string) => number,
    readonly maxContext = 1 << 20,
    private readonly next: (context: string, candidates: number[]) => number[] = (_c, cands) => cands.map(() => 0),
  ) {}
  async loglikelihood(reqs: LoglikelihoodRequest[]): Promise<number[]> {
    this.calls.push(reqs);
    return reqs.map((r) => this.table(this.tok.decode(r.context), this.tok.decode(r.continuation)));
  }
  async nextTokenLogprobs(context: number[], candidates: number[]): Promise<number[]> {
    this.nextCalls.push({ context, candidates });
    return this.next(this.tok.decode(context), candidates);
  }
}
