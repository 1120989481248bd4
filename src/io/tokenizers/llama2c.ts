/**
 * llama2.c tokenizer files (`tok*.bin`, written by llama2.c `tokenizer.py: export`):
 *   int32 max_token_length, then per token: float32 score, int32 byte length, UTF-8 bytes.
 * All little-endian. Pieces use ' ' where SentencePiece uses '▁'; we turn them back into '▁' so
 * the shared SentencePiece-BPE encoder (spm.ts) applies. BOS is 1 and EOS 2, whose pieces the
 * exporter writes as "\n<s>\n" / "\n</s>\n".
 */
import { readFileSync } from 'node:fs';
import { FormatError } from '../../errors.js';
import { fileSize } from '../fileBytes.js';
import type { Tokenizer } from '../tokenizer.js';
import { spmTokenizer, SpmTokenType } from './spm.js';

const LLAMA2C_BOS = 1;
const LLAMA2C_EOS = 2;
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

export interface Llama2cVocab {
  readonly maxTokenLength: number;
  /** pieces as stored (with ' ', not '▁') */
  readonly pieces: string[];
  readonly scores: number[];
}

/** Parses a tok*.bin file; every length is checked against the file size. */
function readLlama2cVocab(file: string, vocabSize: number): Llama2cVocab {
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new FormatError(file, `vocabulary size must be a positive integer (got ${vocabSize})`);
  const size = fileSize(file);
  const bytes = readFileSync(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number, what: string): void => {
    if (at + n > size) throw new FormatError(file, `${what}: needs bytes [${at}, ${at + n}) but the file has ${size} (truncated, or not a tok*.bin for ${vocabSize} tokens)`);
  };
  need(0, 4, 'header');
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) throw new FormatError(file, `max_token_length ${maxTokenLength} is not plausible (not a llama2.c tokenizer?)`);
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const pieces: string[] = [];
  const scores: number[] = [];
  let at = 4;
  for (let i = 0; i < vocabSize; i++) {
    need(at, 8, `token ${i}`);
    scores.push(view.getFloat32(at, true));
    const len = view.getInt32(at + 4, true);
    if (len < 0 || len > maxTokenLength) throw new FormatError(file, `token ${i}: length ${len} is outside [0, max_token_length ${maxTokenLength}]`);
    at += 8;
    need(at, len, `token ${i}`);
    pieces.push(decoder.decode(bytes.subarray(at, at + len)));
    at += len;
  }
  if (at !== size) throw new FormatError(file, `${size - at} bytes left after ${vocabSize} tokens (does the vocabulary size match the checkpoint?)`);
  return { maxTokenLength, pieces, scores };
}

/** A Tokenizer over a llama2.c tok*.bin: llama2.c `run.c` encode/decode semantics (see spm.ts). */
export function readLlama2cTokenizer(file: string, vocabSize: number): Tokenizer {
  const { pieces, scores } = readLlama2cVocab(file, vocabSize);
  const types = pieces.map((p, id) => {
    if (id === LLAMA2C_BOS || id === LLAMA2C_EOS) return SpmTokenType.Control;
    if (p === '<unk>') return SpmTokenType.Unknown;
    return BYTE_PIECE.test(p) ? SpmTokenType.Byte : SpmTokenType.Normal;
  });
  return spmTokenizer({
    tokens: pieces.map((p) => p.replaceAll(' ', '\u2581')),
    scores,
    types,
    bosId: vocabSize > LLAMA2C_BOS ? LLAMA2C_BOS : undefined,
    eosId: vocabSize > LLAMA2C_EOS ? LLAMA2C_EOS : undefined,
    source: file,
    kind: 'llama2c-spm',
  });
}
