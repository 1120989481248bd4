/**
 * RoPE for varlen batches: the rows of several sequences are concatenated into one [R, D] block (see
 * BlockRun.segments in block.ts), each row at its own position, so cos/sin are per row.
 */
import type { Backend, BTensor } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import type { BatchSegment } from './block.js';
import { ropeInvFreq } from './rope.js';

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
