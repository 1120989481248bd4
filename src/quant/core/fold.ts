/**
 * Folding a per-channel scale s into a block (model/layout.ts SCALE_FOLDS): the producer's output is
 * divided by s (a norm's weight, or a linear's rows) and the consumers' input columns multiplied by s,
 * so the block computes the same function in exact arithmetic while the consumers' weights, which are
 * what gets quantized, change. AWQ folds the scales its search chose, SmoothQuant its smoothing scales.
 */
import type { ScaleFold } from '../../model/layout.js';
import type { HostBlock } from '../blockJob.js';

export function foldScale(w: HostBlock, fold: ScaleFold, s: Float32Array): void {
  const p = fold.producer;
  if ('norm' in p) {
    const g = w[p.norm];
    if (g.length !== s.length) throw new RangeError(`foldScale: ${p.norm} has ${g.length} channels, the scale ${s.length}`);
    for (let c = 0; c < g.length; c++) g[c] = Math.fround(g[c]! / s[c]!);
  } else {
    const m = w[p.linear];
    if (m.rows !== s.length) throw new RangeError(`foldScale: ${p.linear} has ${m.rows} outputs, the scale ${s.length}`);
    for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) m.data[r * m.cols + c] = Math.fround(m.data[r * m.cols + c]! / s[r]!);
  }
  for (const l of fold.consumers) {
    const m = w[l];
    if (m.cols !== s.length) throw new RangeError(`foldScale: ${l} has ${m.cols} inputs, the scale ${s.length}`);
    for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) m.data[r * m.cols + c] = Math.fround(m.data[r * m.cols + c]! * s[c]!);
  }
}
