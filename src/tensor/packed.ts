/**
 * Quantized weights as data: integer codes on a uniform grid with their group parameters, and the
 * packed layouts they are stored and multiplied in. No arithmetic beyond decoding lives here; the
 * quantizers (quant/) produce these, the checkpoint formats (io/quantized/) store them, and a
 * backend multiplies by them without materialising float weights.
 */

/** The dtype grid scales are computed and stored in: float32 (the reference code) or rounded through fp16. */
export type ScaleDtype = 'f32' | 'f16';

/** A quantized [rows = out, cols = in] matrix: integer codes and per-(row, group) parameters. */
export interface QuantizedMatrix {
  codes: Uint8Array;    // [rows, cols]
  scales: Float32Array; // [rows, nGroups]
  zeros: Uint8Array;    // [rows, nGroups], integers in 0..maxq
  gIdx: Int32Array;     // [cols]: group of each (original) input column
}

/** The value of code q: scale · (q − zero), one float32 rounding (the grid's only dequantization). */
export function dequantCode(q: number, scale: number, zero: number): number {
  return Math.fround(scale * (q - zero));
}

/** Fake-quantized weights [rows, cols] of a quantized matrix: W'[r, c] = dequantCode(code, the (r, g_idx[c]) scale and zero). */
export function dequantizeMatrix(m: QuantizedMatrix, rows: number, cols: number): Float32Array {
  const nGroups = m.scales.length / rows;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const p = r * nGroups + m.gIdx[c]!;
      out[r * cols + c] = dequantCode(m.codes[r * cols + c]!, m.scales[p]!, m.zeros[p]!);
    }
  }
  return out;
}

/**
 * GPTQ / AutoGPTQ "v1" tensors of one linear layer (see gptqPack.ts): qweight int32
 * [ceil(in·bits/32), out] packed along the input, qzeros int32 [groups, ceil(out·bits/32)] holding
 * zero − 1, scales [groups, out] (float32 in memory whatever their stored dtype), g_idx int32 [in].
 * zerosF [groups, out], when present, are float zero points that replace the packed qzeros in every
 * decoder: W[o, j] = fround(scale · (q − zF)). QA-LoRA's merge (tensor/gptqZeroShift.ts) makes them;
 * qzeros then hold the rounded zeros, for readers that do not know zerosF.
 */
export interface GptqPacked {
  readonly kind: 'gptq';
  readonly bits: number;
  readonly rows: number;   // out_features
  readonly cols: number;   // in_features
  readonly groups: number;
  readonly qweight: Int32Array;
  readonly qzeros: Int32Array;
  readonly scales: Float32Array;
  readonly gIdx: Int32Array;
  readonly zerosF?: Float32Array;
}

/**
 * AutoAWQ "GEMM" tensors of one linear layer (see awqPack.ts): qweight int32 [in, out/8] packed
 * along the output in the order [0, 2, 4, 6, 1, 3, 5, 7], qzeros int32 [in/g, out/8] holding the
 * zero points themselves, scales [in/g, out] (float32 in memory). 4 bits only, as AutoAWQ.
 */
export interface AwqPacked {
  readonly kind: 'awq';
  readonly bits: 4;
  readonly rows: number;   // out_features
  readonly cols: number;   // in_features
  readonly groupSize: number;
  readonly qweight: Int32Array;
  readonly qzeros: Int32Array;
  readonly scales: Float32Array;
}

/**
 * A layer of a method-specific stored kind (tensor/kinds.ts: QuIP, PB-LLM, BiLLM), opened from its
 * stored parts and ready to multiply by: y = out( in(x) · Coreᵀ ), where Core [coreRows, coreCols] is
 * decoded a panel of rows at a time and `in` / `out` are the kind's input and output transforms
 * (QuIP's incoherence rotations; identity when absent). Never materialised whole.
 */
export interface KindLayer {
  readonly kind: string;
  readonly rows: number;     // out_features
  readonly cols: number;     // in_features
  readonly coreRows: number;
  readonly coreCols: number;
  /** rows [r0, r0 + nr) of the core matrix, float32, into out [nr, coreCols] */
  decodeRows(r0: number, nr: number, out: Float32Array): void;
  /** x [M, cols] → [M, coreCols] */
  transformInput?(x: Float32Array, M: number): Float32Array;
  /** y [M, coreRows] → [M, rows] */
  transformOutput?(y: Float32Array, M: number): Float32Array;
  /** the stored scale-like values a NaN check should cover */
  readonly parameters: Float32Array;
  /** the stored parts the layer was opened from (tensor/kinds.ts sets them): what a backend may decode itself */
  readonly parts?: Readonly<Record<string, import('./tensor.js').Tensor>>;
  /** the dense weight [rows, cols], when the kind has a faster way than materializeKind's */
  materialize?(): Float32Array;
}

/** A linear weight kept quantized on a backend: the stored kind decides how it is decoded. */
export type PackedWeight = GptqPacked | AwqPacked | KindLayer;

export function isGptqPacked(q: PackedWeight): q is GptqPacked { return q.kind === 'gptq' && 'qweight' in q; }
export function isAwqPacked(q: PackedWeight): q is AwqPacked { return q.kind === 'awq' && 'qweight' in q; }
export function isKindLayer(q: PackedWeight): q is KindLayer { return 'decodeRows' in q; }

/** The stored scale-like values of a packed weight, for a NaN/Inf check. */
export function packedParameters(q: PackedWeight): Float32Array {
  return isKindLayer(q) ? q.parameters : q.scales;
}

/**
 * What a method stores for one linear layer: codes on a uniform grid (in GPTQ's or AWQ's layout), or
 * the named parts of a method-specific kind (tensor/kinds.ts), each stored as `<layer>.<part>`.
 */
export type StoredLayer =
  | { readonly kind: 'uniform'; readonly grid: QuantizedMatrix }
  | { readonly kind: string; readonly parts: Readonly<Record<string, import('./tensor.js').Tensor>> };

/** The dense float32 weight [rows, cols] of a kind layer: core rows decoded, then the transforms (tests, `read`). */
export function materializeKind(k: KindLayer): Float32Array {
  if (k.materialize) return k.materialize();
  if (!k.transformInput && !k.transformOutput) {
    const w = new Float32Array(k.rows * k.cols);
    k.decodeRows(0, k.rows, w);
    return w;
  }
  // W = out(in(I)·Coreᵀ)ᵀ: the linear map applied to the identity's rows gives Wᵀ
  const eye = new Float32Array(k.cols * k.cols);
  for (let i = 0; i < k.cols; i++) eye[i * k.cols + i] = 1;
  const xin = k.transformInput ? k.transformInput(eye, k.cols) : eye;
  const core = new Float32Array(k.coreRows * k.coreCols);
  k.decodeRows(0, k.coreRows, core);
  const y = new Float32Array(k.cols * k.coreRows);
  for (let m = 0; m < k.cols; m++) {
    for (let r = 0; r < k.coreRows; r++) {
      let acc = 0;
      for (let c = 0; c < k.coreCols; c++) acc += xin[m * k.coreCols + c]! * core[r * k.coreCols + c]!;
      y[m * k.coreRows + r] = acc;
    }
  }
  const yt = k.transformOutput ? k.transformOutput(y, k.cols) : y; // [cols, rows] = Wᵀ
  const w = new Float32Array(k.rows * k.cols);
  for (let m = 0; m < k.cols; m++) for (let r = 0; r < k.rows; r++) w[r * k.cols + m] = yt[m * k.rows + r]!;
  return w;
}

/** The dtype and shape of each named part of a stored kind's tensors (what a kind's `shape` check reads). */
export function partInfos(parts: Readonly<Record<string, import('./tensor.js').Tensor>>, names: readonly string[]): Record<string, { readonly dtype: import('./dtype.js').DType; readonly shape: readonly number[] }> {
  return Object.fromEntries(names.map((p) => [p, { dtype: parts[p]!.dtype, shape: parts[p]!.shape }]));
}
