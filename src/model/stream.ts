import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { blockForward } from './block.js';
import { checkpointLinear } from './activation.js';
import { ropeInvFreq, ropeTables } from './rope.js';
import { freeBlock, headTensorName, loadBlock, type BlockWeights } from './weights.js';
import { NAMES } from '../io/source.js';
import { rowReader, type RowReader } from '../io/rows.js';
import { FormatError } from '../errors.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import { decodeHalf } from '../tensor/codecs.js';

export interface StreamProgress { phase: 'embed' | 'block' | 'head'; block: number; numBlocks: number }

/** RoPE tables for positions 0..count-1 uploaded to the backend. */
export function ropeFor(ckpt: ModelCheckpoint, be: Backend, start: number, count: number): { cos: BTensor; sin: BTensor } {
  const hd = ckpt.config.headDim;
  const { cos, sin } = ropeTables(ropeInvFreq(ckpt.config), start, count);
  return { cos: be.upload(cos, [count, hd / 2]), sin: be.upload(sin, [count, hd / 2]) };
}

/**
 * Block streaming, as GPTQ's own evaluation and calibration do: every sequence goes through
 * decoder block k before any goes through block k+1, so that only one block's weights are
 * resident. `perBlock` maps the hidden states of all sequences through block i (it may also
 * change the block's weights first: that is how quantization plugs in). `hidden` is consumed: its
 * elements are replaced in place by each block's outputs (and the array returned), so that no
 * reference to it keeps the inputs of earlier blocks alive. Each block's weights are freed when
 * `perBlock` returns, and so are the inputs it did not pass on; `perBlock` frees its own
 * temporaries (a Backend.scope around each sequence's forward).
 */
export async function streamBlocks(
  ckpt: ModelCheckpoint, be: Backend, hidden: BTensor[],
  perBlock: (i: number, w: BlockWeights, xs: BTensor[]) => Promise<BTensor[]>,
  onProgress?: (p: StreamProgress) => void,
): Promise<BTensor[]> {
  const L = ckpt.config.numLayers;
  for (let i = 0; i < L; i++) {
    onProgress?.({ phase: 'block', block: i, numBlocks: L });
    const next = await runBlock(ckpt, be, i, hidden, perBlock);
    if (next !== hidden) { // in place: no caller's reference pins a block's inputs
      hidden.length = next.length;
      for (let s = 0; s < next.length; s++) hidden[s] = next[s]!;
    }
    // block i is unreachable now; collecting it before block i+1 is read keeps one block resident
    be.reclaim?.();
  }
  return hidden;
}

/**
 * Loads block i, maps `hidden` through it and frees it. A function of its own: a suspended async
 * frame keeps its locals (and call temporaries) alive, so the block's weights must live in a frame
 * that has finished before the next block is read, or two blocks would be resident at once.
 */
async function runBlock(
  ckpt: ModelCheckpoint, be: Backend, i: number, hidden: BTensor[],
  perBlock: (i: number, w: BlockWeights, xs: BTensor[]) => Promise<BTensor[]>,
): Promise<BTensor[]> {
  const w = loadBlock(ckpt, be, i);
  const next = await perBlock(i, w, hidden);
  for (const x of hidden) if (!next.includes(x)) be.free(x);
  freeBlock(be, w);
  return next;
}

/** Bytes of stored rows read at once when embedding tokens and when evaluating the LM head. */
const ROW_CHUNK_BYTES = 64 * 1024 * 1024;
/** Largest logits block [positions, vocabulary chunk] of the LM head, in float32 bytes. */
const LOGITS_CHUNK_BYTES = 64 * 1024 * 1024;
/** Smallest default LM-head chunk, in stored bytes. */
const MIN_CHUNK_BYTES = 1024 * 1024;
/** Stored bytes of decoder block 0's tensors, as listed (0 when the checkpoint has no blocks). */
function blockBytes(ckpt: ModelCheckpoint): number {
  let n = 0;
  for (const t of ckpt.weights.list()) if (t.name.startsWith('model.layers.0.')) n += t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
  return n;
}
/** Unused rows between two used ones that an embedding read still spans (cheaper than another read). */
const GAP_BYTES = 64 * 1024;

function rowsFor(r: RowReader, bytes: number): number {
  return Math.max(1, Math.floor(bytes / Math.max(1, r.rowElements * DTYPE_BYTES[r.info.dtype])));
}

/**
 * Embeds each sequence of token ids (the input of block 0) without the whole embedding table:
 * only the rows the sequences use are read, in spans of at most `chunkRows` rows (default about
 * 64 MB of stored rows), and gathered on the host into each sequence's [T, D] hidden states.
 * Values equal `Backend.embedding` of the whole table (the same exact f16/bf16 decode).
 */
export function embedAll(ckpt: ModelCheckpoint, be: Backend, seqs: Int32Array[], opts: { chunkRows?: number } = {}): { hidden: BTensor[] } {
  const table = rowReader(ckpt.weights, NAMES.embed);
  if (table.info.shape.length !== 2) throw new FormatError(ckpt.weights.path, `tensor ${NAMES.embed} has shape [${table.info.shape.join(', ')}], expected [vocab, hidden]`);
  const V = table.rows, D = table.rowElements;
  // positions grouped by token id (a counting sort): first[id]..first[id+1]-1 index posSeq/posRow
  const first = new Int32Array(V + 1);
  let total = 0;
  for (const ids of seqs) {
    for (const id of ids) {
      if (!(id >= 0 && id < V)) throw new RangeError(`embedding: token id ${id} outside the vocabulary of ${V}`);
      first[id + 1]!++;
    }
    total += ids.length;
  }
  for (let id = 0; id < V; id++) first[id + 1]! += first[id]!;
  const posSeq = new Int32Array(total), posRow = new Int32Array(total), fill = first.slice(0, V);
  seqs.forEach((ids, s) => ids.forEach((id, t) => { const p = fill[id]!++; posSeq[p] = s; posRow[p] = t; }));
  const outs = seqs.map((ids) => new Float32Array(ids.length * D));
  const chunkRows = opts.chunkRows ?? rowsFor(table, ROW_CHUNK_BYTES);
  if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new RangeError(`embedAll: chunkRows must be a positive integer (got ${chunkRows})`);
  const gap = rowsFor(table, GAP_BYTES);
  const row = new Float32Array(D);
  const gather = (a: number, b: number): void => {
    const t = table.read(a, b - a + 1);
    const half = t.dtype === 'bf16' || t.dtype === 'f16' ? t.dtype : undefined;
    const f = half ? undefined : t.dtype === 'f32' ? (t.data as Float32Array) : t.toF32();
    for (let id = a; id <= b; id++) {
      if (first[id] === first[id + 1]) continue;
      const o = (id - a) * D;
      const src = half ? decodeHalf(half, (t.data as Uint16Array).subarray(o, o + D), row) : f!.subarray(o, o + D);
      for (let p = first[id]!; p < first[id + 1]!; p++) outs[posSeq[p]!]!.set(src, posRow[p]! * D);
    }
  };
  // spans of used ids: a span grows while it stays within chunkRows rows and gaps stay small
  let a = -1, b = -1;
  for (let id = 0; id < V; id++) {
    if (first[id] === first[id + 1]) continue;
    if (a >= 0 && id - a < chunkRows && id - b - 1 <= gap) { b = id; continue; }
    if (a >= 0) gather(a, b);
    a = b = id;
  }
  if (a >= 0) gather(a, b);
  return { hidden: seqs.map((ids, s) => be.upload(outs[s]!, [ids.length, D])) };
}

/** Plain forward of all blocks over equal-length sequences starting at position 0. */
function forwardBlock(ckpt: ModelCheckpoint, be: Backend, rope: { cos: BTensor; sin: BTensor }) {
  // one scope per sequence: the block's temporaries (normed rows, q/k/v, attention, MLP) are freed as
  // soon as its output exists, not when the runtime collects them
  return async (i: number, w: BlockWeights, xs: BTensor[]) => {
    const linear = checkpointLinear(ckpt, be, i);
    return xs.map((x) => be.scope(() => blockForward(be, ckpt.config, w, x, rope, { linear }).out));
  };
}

/** log(e^a + e^b) in float64 (max trick). */
function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = a > b ? a : b;
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

export interface StreamedNllOptions {
  onProgress?: (p: StreamProgress) => void;
  /** LM-head rows (vocabulary entries) per chunk; default: about 64 MB of stored rows and of logits */
  headChunk?: number;
  /** embedding-table rows per read; default about 64 MB of stored rows */
  embedChunk?: number;
}

/**
 * Per-position negative log-likelihoods of each sequence (positions 1..T-1 predicted from 0..T-2),
 * block-streamed: the embedding table is read only in the rows the tokens use, then one decoder
 * block at a time is resident, then the LM head (lm_head, or the embedding when tied) is read in
 * vocabulary chunks, each once: every sequence's chunk logits fold into a running float64
 * log-sum-exp per position plus the target's logit, NLL = lse − target logit. Neither the whole
 * head nor [T, vocab] logits ever exist; the hidden states of all sequences stay resident.
 */
export async function streamedNll(
  ckpt: ModelCheckpoint, be: Backend, seqs: Int32Array[], opts: StreamedNllOptions = {},
): Promise<Float64Array[]> {
  if (seqs.length === 0) return [];
  const xs = await streamedFinalRows(ckpt, be, seqs, opts);
  return headNll(ckpt, be, xs, seqs, opts.headChunk);
}

/**
 * The final-normed hidden rows 0..T-2 of each sequence (the rows that predict a next token), [T-1, D] each,
 * block-streamed as streamedNll does (embedding rows the tokens use, one decoder block at a time); the input of
 * the LM head. Empty tensors are not made: with T = 1 the result is [].
 */
export async function streamedFinalRows(
  ckpt: ModelCheckpoint, be: Backend, seqs: Int32Array[], opts: Omit<StreamedNllOptions, 'headChunk'> = {},
): Promise<BTensor[]> {
  if (seqs.length === 0) return [];
  const T = seqs[0]!.length;
  if (seqs.some((s) => s.length !== T)) throw new RangeError('streamedNll: sequences must have equal length');
  const L = ckpt.config.numLayers;
  opts.onProgress?.({ phase: 'embed', block: 0, numBlocks: L });
  const { hidden } = embedAll(ckpt, be, seqs, { chunkRows: opts.embedChunk });
  const rope = ropeFor(ckpt, be, 0, T);
  const out = await streamBlocks(ckpt, be, hidden, forwardBlock(ckpt, be, rope), opts.onProgress);
  be.free(rope.cos); be.free(rope.sin);
  opts.onProgress?.({ phase: 'head', block: L, numBlocks: L });
  const P = T - 1;
  if (P <= 0) {
    for (const x of out) be.free(x);
    return [];
  }
  const norm = be.uploadWeight(ckpt.weights.read(NAMES.finalNorm));
  // replacing the hidden states one by one so that both are never resident whole
  const xs: BTensor[] = [];
  for (let s = 0; s < out.length; s++) {
    const x = out[s]!;
    out[s] = undefined as unknown as BTensor;
    const r = be.rows(x, 0, P);
    xs.push(be.rmsnorm(r, norm, ckpt.config.rmsNormEps));
    be.free(r); be.free(x);
  }
  be.free(norm);
  return xs;
}

/** The LM head, read in row chunks: its reader, and the chunk (vocabulary rows) a pass over `positions` rows uses. */
export function headChunks(ckpt: ModelCheckpoint, positions: number, headChunk?: number, logitBlocks = 1): { head: RowReader; chunk: number } {
  const head = rowReader(ckpt.weights, headTensorName(ckpt));
  const D = ckpt.config.hiddenSize;
  if (head.info.shape.length !== 2 || head.rowElements !== D) {
    throw new FormatError(ckpt.weights.path, `tensor ${head.info.name} has shape [${head.info.shape.join(', ')}], expected [vocab, ${D}]`);
  }
  // default: a chunk of at most 64 MB (and at most a quarter of a block's weights, but 1 MB at least), logits at most 64 MB
  const chunkBytes = Math.min(ROW_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, Math.floor(blockBytes(ckpt) / 4)));
  const chunk = headChunk ?? Math.min(rowsFor(head, chunkBytes), Math.max(1, Math.floor(LOGITS_CHUNK_BYTES / (4 * positions * logitBlocks))));
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`streamedNll: headChunk must be a positive integer (got ${chunk})`);
  return { head, chunk };
}

/** NLLs of positions 1..T-1 from the final-normed rows `xs` (freed here), the head read in vocabulary chunks. */
async function headNll(ckpt: ModelCheckpoint, be: Backend, xs: BTensor[], seqs: Int32Array[], headChunk?: number): Promise<Float64Array[]> {
  const P = seqs[0]!.length - 1;
  if (P <= 0) return seqs.map(() => new Float64Array(0));
  const { head, chunk } = headChunks(ckpt, P, headChunk);
  const V = head.rows;
  const targets = seqs.map((ids) => ids.subarray(1));
  for (const tg of targets) {
    for (const id of tg) if (!(id >= 0 && id < V)) throw new RangeError(`streamedNll: target ${id} outside the vocabulary of ${V}`);
  }
  const lse = seqs.map(() => new Float64Array(P).fill(-Infinity));
  const picked = seqs.map(() => new Float64Array(P).fill(NaN));
  for (let v0 = 0; v0 < V; v0 += chunk) {
    const c = Math.min(chunk, V - v0);
    const w = be.uploadWeight(head.read(v0, c));
    for (let s = 0; s < seqs.length; s++) {
      const logits = be.linear(xs[s]!, w);
      const parts = await be.logSoftmaxParts(logits, targets[s]!, v0);
      be.free(logits);
      const l = lse[s]!, pk = picked[s]!, tg = targets[s]!;
      for (let t = 0; t < P; t++) {
        l[t] = logAddExp(l[t]!, parts.lse[t]!);
        const k = tg[t]! - v0;
        if (k >= 0 && k < c) pk[t] = parts.picked[t]!;
      }
    }
    be.free(w);
  }
  for (const x of xs) be.free(x);
  return lse.map((l, s) => {
    const pk = picked[s]!;
    for (let t = 0; t < P; t++) l[t] = l[t]! - pk[t]!;
    return l;
  });
}
