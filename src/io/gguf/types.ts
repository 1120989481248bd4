/** GGUF enums: metadata value types and ggml tensor types (ggml.h), named, never bare numbers. */

export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

export enum GgmlType {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}

/** Elements per block and bytes per block of the types lowbit decodes. */
export const GGML_LAYOUT: Readonly<Partial<Record<GgmlType, { readonly block: number; readonly bytes: number }>>> = Object.freeze({
  [GgmlType.F32]: { block: 1, bytes: 4 },
  [GgmlType.F16]: { block: 1, bytes: 2 },
  [GgmlType.BF16]: { block: 1, bytes: 2 },
  [GgmlType.Q8_0]: { block: 32, bytes: 2 + 32 },
  [GgmlType.Q4_0]: { block: 32, bytes: 2 + 16 },
  [GgmlType.Q4_1]: { block: 32, bytes: 2 + 2 + 16 },
});

export function ggmlTypeName(t: number): string {
  return GgmlType[t] ?? `type ${t}`;
}

/** A metadata value: numbers (u64/i64 as bigint when beyond 2^53), strings, booleans, arrays of these. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: ne[0] is the fastest-varying (columns) */
  readonly ne: readonly number[];
  readonly type: number;
  /** offset relative to the data section */
  readonly offset: number;
}

export interface GgufHeader {
  readonly path: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** absolute offset of the data section */
  readonly dataStart: number;
  readonly fileSize: number;
}
