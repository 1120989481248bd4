/**
 * Varlen batching on the plain Backend ops: the rows of several sequences are concatenated into one [R, D] block so
 * the row-wise ops (rmsnorm, linear, siluMul, add, RoPE with per-row cos/sin) run once over all of them, while
 * attention runs per sequence segment (a `rows` slice of q/k/v, keys/values after the segment's own cache) and the
 * segments' outputs are concatenated back in order. No kernel and no Backend method is added.
 */
import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from './checkpoint.js';
import type { KvState } from './block.js';
import type { LlamaConfig } from './config.js';
import { ropeInvFreq } from './rope.js';
import type { BlockWeights } from './weights.js';

/** One sequence's rows in a packed batch: rows start..start+count-1, at positions offset..offset+count-1. */
export interface BatchSegment {
  readonly start: number;
  readonly count: number;
  /** position of the segment's first row (= its cache length) */
  readonly offset: number;
}

/** cos/sin tables [positions.length, headDim/2] for arbitrary per-row positions (float32 angles, as ropeTables). */
export function ropeTablesAt(invFreq: Float32Array, positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const n = positions.length;
  const cos = new Float32Array(n * half), sin = new Float32Array(n * half);
  for (let t = 0; t < n; t++) {
    const pos = positions[t]!;
    for (let i = 0; i < half; i++) {
      const a = Math.fround(pos * invFreq[i]!);
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** Per-row positions of packed segments (segment s: offset_s .. offset_s+count_s-1), in row order. */
export function segmentPositions(segs: readonly BatchSegment[]): Int32Array {
  const total = segs.reduce((n, s) => n + s.count, 0);
  const pos = new Int32Array(total);
  for (const s of segs) for (let t = 0; t < s.count; t++) pos[s.start + t] = s.offset + t;
  return pos;
}

/** RoPE tables for packed segments, uploaded to the backend. */
export function ropeForSegments(ckpt: ModelCheckpoint, be: Backend, segs: readonly BatchSegment[]): { cos: BTensor; sin: BTensor } {
  const hd = ckpt.config.headDim;
  const pos = segmentPositions(segs);
  const { cos, sin } = ropeTablesAt(ropeInvFreq(ckpt.config), pos);
  return { cos: be.upload(cos, [pos.length, hd / 2]), sin: be.upload(sin, [pos.length, hd / 2]) };
}

/** Concatenates tensors along rows in order (balanced pairwise, so each row is copied O(log n) times). */
export function concatAllRows(be: Backend, xs: readonly BTensor[]): BTensor {
  if (xs.length === 0) throw new RangeError('concatAllRows: nothing to concatenate');
  let level = [...xs];
  while (level.length > 1) {
    const next: BTensor[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? be.concatRows(level[i]!, level[i + 1]!) : level[i]!);
    level = next;
  }
  return level[0]!;
}

/**
 * blockForward over packed segments: x[R, D] holds the rows of every segment (segment order = row order, contiguous);
 * `past[s]` is segment s's cached keys/values (its length must equal segs[s].offset). Returns out[R, D] and each
 * segment's keys/values over positions 0..offset+count-1. Equals blockForward on each segment alone.
 */
export function blockForwardBatch(
  be: Backend, cfg: LlamaConfig, w: BlockWeights, x: BTensor,
  rope: { cos: BTensor; sin: BTensor }, segs: readonly BatchSegment[], past: readonly (KvState | undefined)[],
): { out: BTensor; kvs: KvState[] } {
  const { numHeads: H, numKvHeads: KVH, headDim: hd, rmsNormEps: eps } = cfg;
  const n1 = be.rmsnorm(x, w.inputNorm, eps);
  const q = be.rope(be.linear(n1, w.q), H, hd, rope.cos, rope.sin);
  const k = be.rope(be.linear(n1, w.k), KVH, hd, rope.cos, rope.sin);
  const v = be.linear(n1, w.v);
  const kvs: KvState[] = [];
  const parts: BTensor[] = [];
  const whole = segs.length === 1 && segs[0]!.start === 0;
  for (const [s, seg] of segs.entries()) {
    let ks = whole ? k : be.rows(k, seg.start, seg.count);
    let vs = whole ? v : be.rows(v, seg.start, seg.count);
    const qs = whole ? q : be.rows(q, seg.start, seg.count);
    const p = past[s];
    if (p) { ks = be.concatRows(p.k, ks); vs = be.concatRows(p.v, vs); }
    kvs.push({ k: ks, v: vs });
    parts.push(be.attention(qs, ks, vs, { nHeads: H, nKvHeads: KVH, headDim: hd, offset: seg.offset }));
  }
  const a = concatAllRows(be, parts);
  const h = be.add(x, be.linear(a, w.o));
  const n2 = be.rmsnorm(h, w.postNorm, eps);
  const m = be.siluMul(be.linear(n2, w.gate), be.linear(n2, w.up));
  const out = be.add(h, be.linear(m, w.down));
  return { out, kvs };
}
