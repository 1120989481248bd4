/** One interface over tokenizer.json (HF) and the SentencePiece-style vocabularies of GGUF and llama2.c. */
export interface Tokenizer {
  /** 'tokenizer.json' | 'gguf-spm' | 'llama2c-spm', plus a short identity used in result records */
  readonly kind: string;
  /** e.g. "tokenizer.json (BPE, 2048 tokens, sha256 9a7917d4…)" */
  readonly description: string;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** BOS is explicit: `bos: true` prepends exactly one BOS id, `bos: false` none. Never adds EOS. */
  encode(text: string, opts: { bos: boolean }): number[];
  decode(ids: readonly number[]): string;
}
