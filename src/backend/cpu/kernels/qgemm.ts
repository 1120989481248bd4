/**
 * The fused dequantize-and-multiply for GPTQ-packed weights (GptqPacked), js reference:
 * output rows of the weight are decoded a panel at a time from codes to float32, exactly as
 * dequantizeGptq does (Math.fround(scale · (q − zero)), float32 scales), then multiplied with
 * the provider's f32 gemm. With the js gemm (one float64 accumulation per output element, in k
 * order, whatever the tiling) the result equals gemm(x, dequantizeGptq(q)) bit for bit.
 */
import { packedWords } from '../../../tensor/gptqPack.js';
import type { GptqPacked, KindLayer } from '../../../tensor/packed.js';

type Gemm = (x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number) => void;

/** Throws a RangeError (naming `op`) unless q's arrays match its shape and every g_idx is a group. */
export function checkQuantWeight(q: GptqPacked, op = 'gemmQ'): void {
  const { bits, rows, cols, groups } = q;
  for (const [k, v] of Object.entries({ rows, cols, groups })) {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`${op}: ${k} = ${v} is not a non-negative int32`);
  }
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new RangeError(`${op}: bits = ${bits} is not in 1..8`);
  if (groups < 1 && cols > 0) throw new RangeError(`${op}: ${groups} groups for ${cols} columns`);
  const want: [string, ArrayLike<number>, number][] = [
    ['qweight', q.qweight, packedWords(cols, bits) * rows], ['qzeros', q.qzeros, groups * packedWords(rows, bits)],
    ['scales', q.scales, groups * rows], ['g_idx', q.gIdx, cols], ...(q.zerosF ? [['zerosF', q.zerosF, groups * rows] as [string, ArrayLike<number>, number]] : []),
  ];
  for (const [what, a, n] of want) if (a.length !== n) throw new RangeError(`${op}: ${what} has ${a.length} elements, expected ${n}`);
  const g = q.gIdx;
  for (let c = 0; c < cols; c++) {
    const v = g[c]!;
    if (!(v >= 0 && v < groups)) throw new RangeError(`${op}: g_idx[${c}] = ${v} is outside 0..${groups - 1}`);
  }
}

/**
 * Weight rows [r0, r0 + nr) of q as float32 into out[nr, cols] (row-major), the same values as the
 * corresponding rows of dequantizeGptq(q) (float zero points zerosF included). Assumes checkQuantWeight(q) passed.
 */
export function decodeQuantRows(q: GptqPacked, r0: number, nr: number, out: Float32Array): void {
  const { bits, rows: N, cols: K, groups, qweight, qzeros } = q;
  const mask = (1 << bits) - 1, zw = packedWords(N, bits);
  // per (row, group): scale in f32 and zero = the float zero point zerosF when the layer has one, else (stored + 1) mod 2^bits
  const sc = new Float32Array(nr * groups), ze = new Float32Array(nr * groups), zerosF = q.zerosF;
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i < nr; i++) {
      const r = r0 + i, pos = r * bits, w = pos >>> 5, off = pos & 31;
      if (zerosF) ze[i * groups + g] = zerosF[g * N + r]!;
      else {
        let v = qzeros[g * zw + w]! >>> off;
        if (off + bits > 32) v |= qzeros[g * zw + w + 1]! << (32 - off);
        ze[i * groups + g] = ((v & mask) + 1) & mask;
      }
      sc[i * groups + g] = q.scales[g * N + r]!;
    }
  }
  const gIdx = q.gIdx;
  for (let c = 0; c < K; c++) {
    const pos = c * bits, w = pos >>> 5, off = pos & 31, g = gIdx[c]!, split = off + bits > 32;
    const base = w * N + r0, next = base + N;
    for (let i = 0; i < nr; i++) {
      let v = qweight[base + i]! >>> off;
      if (split) v |= qweight[next + i]! << (32 - off);
      const p = i * groups + g;
      out[i * K + c] = Math.fround(sc[p]! * ((v & mask) - ze[p]!));
    }
  }
}

/**
 * y[M, rows] for a method-specific kind (tensor/kinds.ts): x through the kind's input transform, times
 * the core matrix decoded Q_PANEL rows at a time (never whole) with `gemm`, then the output transform.
 */
export function gemmKindPanels(gemm: Gemm, x: Float32Array, k: KindLayer, M: number, panelRows = Q_PANEL): Float32Array {
  const xin = k.transformInput ? k.transformInput(x, M) : x;
  const N = k.coreRows, K = k.coreCols;
  const y = new Float32Array(M * N);
  if (M > 0 && N > 0) {
    const rows = Math.max(1, Math.min(panelRows, N));
    const panel = new Float32Array(rows * K), yp = new Float32Array(M * rows);
    for (let n0 = 0; n0 < N; n0 += rows) {
      const nr = Math.min(rows, N - n0);
      k.decodeRows(n0, nr, panel.subarray(0, nr * K));
      gemm(xin, panel.subarray(0, nr * K), yp.subarray(0, M * nr), M, nr, K);
      for (let m = 0; m < M; m++) y.set(yp.subarray(m * nr, m * nr + nr), m * N + n0);
    }
  }
  return k.transformOutput ? k.transformOutput(y, M) : y;
}

/** Output rows decoded per panel in the js path and in CpuBackend's fallback for providers without gemmQ. */
const Q_PANEL = 64;

/**
 * y[M, rows] = x[M, cols] · W'ᵀ with W' decoded Q_PANEL rows at a time (never the whole matrix),
 * each panel through `gemm`. Assumes the shapes were checked.
 */
export function gemmQPanels(gemm: Gemm, x: Float32Array, q: GptqPacked, y: Float32Array, M: number, panelRows = Q_PANEL): void {
  const N = q.rows, K = q.cols;
  if (M === 0 || N === 0) return;
  const rows = Math.max(1, Math.min(panelRows, N));
  const panel = new Float32Array(rows * K);
  const yp = new Float32Array(M * rows);
  for (let n0 = 0; n0 < N; n0 += rows) {
    const nr = Math.min(rows, N - n0);
    decodeQuantRows(q, n0, nr, panel);
    gemm(x, panel.subarray(0, nr * K), yp.subarray(0, M * nr), M, nr, K);
    for (let m = 0; m < M; m++) y.set(yp.subarray(m * nr, m * nr + nr), m * N + n0);
  }
}
