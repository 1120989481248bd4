/**
 * SentencePiece-BPE encoding from a vocabulary of pieces and scores, as llama2.c `run.c: encode`
 * and llama.cpp's SPM tokenizer (`llm_tokenizer_spm`) do it:
 *   1. spaces become '▁' and one '▁' is prepended (the "dummy prefix"), unless the text is empty;
 *   2. start from the UTF-8 characters (code points); a character that is not a piece becomes its
 *      UTF-8 bytes as <0xNN> byte tokens, which never merge; when the vocabulary lacks one of those
 *      byte tokens, the character becomes the unknown token, a run of such characters one unknown
 *      token (SentencePiece's rule; HF's byte_fallback with fuse_unk gives the same ids). llama.cpp
 *      has no such fallback: its byte_to_token throws std::out_of_range there;
 *   3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
 *      the leftmost pair on ties.
 * Step 3 is merge.ts: a priority queue of candidate pairs over a linked list of symbols (llama.cpp's
 * scheme), O(n log n), so a 1M-character text tokenizes in about a second.
 *
 * Decoding concatenates the pieces with '▁' → ' ' and byte tokens turned back into bytes (then read
 * as UTF-8). Control tokens (BOS, EOS, unknown/control types) are skipped. The leading space the
 * dummy prefix produces is kept (run.c and llama.cpp strip it right after BOS; we do not).
 */
import { FormatError, UsageError } from '../../errors.js';
import type { Tokenizer } from '../tokenizer.js';
import { mergeSymbols } from './merge.js';

/** llama.cpp's token types (GGUF tokenizer.ggml.token_type). */
export enum SpmTokenType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export interface SpmVocab {
  /** Pieces with '▁' for a space (llama2.c vocabularies are normalized by their reader). */
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  /** SpmTokenType per token; when absent, <0xNN> pieces are bytes, BOS/EOS/"<unk>" control, the rest normal. */
  readonly types?: readonly number[];
  readonly bosId?: number;
  readonly eosId?: number;
  /** the unknown token (GGUF tokenizer.ggml.unknown_token_id); default: the first token of type Unknown */
  readonly unkId?: number;
  /** a path or name recorded in `description` */
  readonly source: string;
  /** prepend '▁' to non-empty text (SentencePiece add_dummy_prefix); default true */
  readonly addSpacePrefix?: boolean;
  /** `kind` reported by the tokenizer; default 'gguf-spm' */
  readonly kind?: string;
}

const SPACE = '\u2581';
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

export function spmTokenizer(v: SpmVocab): Tokenizer {
  const { tokens, scores } = v;
  if (scores.length !== tokens.length) throw new FormatError(v.source, `${tokens.length} tokens but ${scores.length} scores`);
  if (v.types && v.types.length !== tokens.length) throw new FormatError(v.source, `${tokens.length} tokens but ${v.types.length} token types`);
  for (const [what, id] of [['BOS', v.bosId], ['EOS', v.eosId], ['unknown', v.unkId]] as const) {
    if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0 && id < tokens.length)) {
      throw new FormatError(v.source, `${what} token id ${id} is outside the vocabulary of ${tokens.length} tokens`);
    }
  }
  const types = tokens.map((t, id) => v.types?.[id] ?? defaultType(t, id, v));
  // Pieces that text can be merged into: normal and user-defined ones (never control or byte tokens).
  const pieceId = new Map<string, number>();
  const byteId = new Int32Array(256).fill(-1);
  const byteOf = new Int16Array(tokens.length).fill(-1);
  tokens.forEach((t, id) => {
    const type = types[id]!;
    const m = BYTE_PIECE.exec(t);
    if (type === SpmTokenType.Byte && m) {
      const b = parseInt(m[1]!, 16);
      byteId[b] = id;
      byteOf[id] = b;
    } else if ((type === SpmTokenType.Normal || type === SpmTokenType.UserDefined) && !pieceId.has(t)) {
      pieceId.set(t, id);
    }
  });
  const unkId = v.unkId ?? types.indexOf(SpmTokenType.Unknown);
  const addPrefix = v.addSpacePrefix ?? true;
  const utf8 = new TextEncoder();

  function encodeText(text: string, out: number[]): void {
    if (text.length === 0) return;
    const s = (addPrefix ? SPACE : '') + text.replaceAll(' ', SPACE);
    // Two adjacent symbols merge when their concatenation is a piece; the best piece score first.
    const symbols = mergeSymbols(s, (start, leftLen, rightLen) => {
      const id = pieceId.get(s.substr(start, leftLen + rightLen));
      return id === undefined ? undefined : scores[id]!;
    });
    let prevUnk = false;
    for (const piece of symbols) {
      const id = pieceId.get(piece);
      if (id !== undefined) { out.push(id); prevUnk = false; continue; }
      // Only single characters can be unknown (merges always produce pieces): fall back to bytes.
      const bytes = utf8.encode(piece);
      if (bytes.every((b) => byteId[b]! >= 0)) {
        for (const b of bytes) out.push(byteId[b]!);
        prevUnk = false;
        continue;
      }
      if (unkId < 0) {
        const b = bytes.find((x) => byteId[x]! < 0)!;
        throw new FormatError(v.source, `cannot encode ${JSON.stringify(piece)}: no <0x${b.toString(16).toUpperCase().padStart(2, '0')}> byte token and no unknown token`);
      }
      if (!prevUnk) out.push(unkId);
      prevUnk = true;
    }
  }

  const skip = (id: number): boolean => {
    const t = types[id];
    return t === SpmTokenType.Control || t === SpmTokenType.Unknown || t === SpmTokenType.Unused;
  };

  return Object.freeze({
    kind: v.kind ?? 'gguf-spm',
    description: `${v.kind ?? 'gguf-spm'} (SentencePiece BPE, ${tokens.length} tokens, ${v.source})`,
    vocabSize: tokens.length,
    bosId: v.bosId,
    eosId: v.eosId,
    encode(text: string, opts: { bos: boolean }): number[] {
      const out: number[] = [];
      if (opts.bos) {
        if (v.bosId === undefined) throw new UsageError(`${v.source}: the tokenizer has no BOS token; encode with BOS off`);
        out.push(v.bosId);
      }
      encodeText(text, out);
      return out;
    },
    decode(ids: readonly number[]): string {
      const bytes: number[] = [];
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= tokens.length) throw new UsageError(`${v.source}: token id ${id} is outside the vocabulary (${tokens.length} tokens)`);
        if (byteOf[id]! >= 0) { bytes.push(byteOf[id]!); continue; }
        if (skip(id)) continue;
        for (const b of utf8.encode(tokens[id]!.replaceAll(SPACE, ' '))) bytes.push(b);
      }
      return new TextDecoder().decode(Uint8Array.from(bytes));
    },
  });
}

function defaultType(piece: string, id: number, v: SpmVocab): SpmTokenType {
  if (BYTE_PIECE.test(piece)) return SpmTokenType.Byte;
  if (id === v.bosId || id === v.eosId) return SpmTokenType.Control;
  if (piece === '<unk>') return SpmTokenType.Unknown;
  return SpmTokenType.Normal;
}
