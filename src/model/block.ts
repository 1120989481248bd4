import type { Backend, BTensor } from '../backend/backend.js';
import type { LlamaConfig } from '../io/config.js';
import type { BlockWeights } from './weights.js';

/** Keys and values of one block for positions 0..S-1 (after RoPE). */
export interface KvState { k: BTensor; v: BTensor }

/** LLaMA's seven linear layers of a decoder block, by short name. */
export type LinearName = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const LINEARS: readonly LinearName[] = Object.freeze(['q', 'k', 'v', 'o', 'gate', 'up', 'down']);

/**
 * Runs one linear layer of a block: `x[M, in] · wᵀ → [M, out]`. The default is `be.linear(x, w)`;
 * an interceptor sees every linear call of a block and returns its output: calibration capture
 * records x, activation fake-quantization quantizes x first, a LoRA branch adds B·A·x.
 */
export type LinearFn = (name: LinearName, x: BTensor, w: BTensor) => BTensor;

/** One sequence's rows in a packed batch: rows start..start+count-1, at positions offset..offset+count-1. */
export interface BatchSegment {
  readonly start: number;
  readonly count: number;
  /** position of the segment's first row (= its cache length) */
  readonly offset: number;
}

export interface BlockRun {
  /**
   * The sequences whose rows x holds, in row order (contiguous); default one sequence of all rows at
   * position `offset`. Row-wise ops run once over all rows, attention per segment.
   */
  readonly segments?: readonly BatchSegment[];
  /** position of the first row when `segments` is not given (default 0) */
  readonly offset?: number;
  /** each segment's cached keys/values (its length must equal the segment's offset) */
  readonly past?: readonly (KvState | undefined)[];
  readonly linear?: LinearFn | undefined;
}

const plainLinear = (be: Backend): LinearFn => (_name, x, w) => be.linear(x, w);

function segmentsOf(x: BTensor, r: BlockRun): readonly BatchSegment[] {
  return r.segments ?? [{ start: 0, count: x.shape[0]!, offset: r.offset ?? 0 }];
}

/**
 * The attention half of a block without its residual: o( attn( rope(q(n)), rope(k(n)), v(n) ) ) for
 * normed rows n[R, D]; returns it with each segment's keys/values over positions 0..offset+count-1.
 */
export function attentionPart(be: Backend, cfg: LlamaConfig, w: BlockWeights, n: BTensor, rope: { cos: BTensor; sin: BTensor }, r: BlockRun = {}): { out: BTensor; kvs: KvState[] } {
  const { numHeads: H, numKvHeads: KVH, headDim: hd } = cfg;
  const lin = r.linear ?? plainLinear(be);
  const segs = segmentsOf(n, r);
  const q = be.rope(lin('q', n, w.q), H, hd, rope.cos, rope.sin);
  const k = be.rope(lin('k', n, w.k), KVH, hd, rope.cos, rope.sin);
  const v = lin('v', n, w.v);
  const kvs: KvState[] = [];
  const parts: BTensor[] = [];
  const whole = segs.length === 1 && segs[0]!.start === 0 && segs[0]!.count === n.shape[0];
  for (const [s, seg] of segs.entries()) {
    let ks = whole ? k : be.rows(k, seg.start, seg.count);
    let vs = whole ? v : be.rows(v, seg.start, seg.count);
    const qs = whole ? q : be.rows(q, seg.start, seg.count);
    const p = r.past?.[s];
    if (p) { ks = be.concatRows(p.k, ks); vs = be.concatRows(p.v, vs); }
    kvs.push({ k: ks, v: vs });
    parts.push(be.attention(qs, ks, vs, { nHeads: H, nKvHeads: KVH, headDim: hd, offset: seg.offset }));
  }
  return { out: lin('o', concatAllRows(be, parts), w.o), kvs };
}

/** The MLP half of a block without its residual: down( silu(gate(n)) · up(n) ) for normed rows n. */
export function mlpPart(be: Backend, w: BlockWeights, n: BTensor, linear?: LinearFn): BTensor {
  const lin = linear ?? plainLinear(be);
  return lin('down', be.siluMul(lin('gate', n, w.gate), lin('up', n, w.up)), w.down);
}

/**
 * One LLaMA decoder block on rows x[R, D] (one or several sequences, see BlockRun):
 *   h   = x + attentionPart(rmsnorm(x))
 *   out = h + mlpPart(rmsnorm(h))
 * Returns out and each segment's keys/values.
 */
export function blockForward(be: Backend, cfg: LlamaConfig, w: BlockWeights, x: BTensor, rope: { cos: BTensor; sin: BTensor }, r: BlockRun = {}): { out: BTensor; kvs: KvState[] } {
  const eps = cfg.rmsNormEps;
  const a = attentionPart(be, cfg, w, be.rmsnorm(x, w.inputNorm, eps), rope, r);
  const h = be.add(x, a.out);
  const out = be.add(h, mlpPart(be, w, be.rmsnorm(h, w.postNorm, eps), r.linear));
  return { out, kvs: a.kvs };
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
