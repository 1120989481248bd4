/**
 * What a checkpoint costs on disk: the bytes of its files, and its bits per weight as stored and as the
 * method's nominal figure. Reads directory listings, file sizes and headers only, never tensor data.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../errors.js';
import type { ModelCheckpoint } from './checkpoint.js';
import { DTYPE_BYTES, SAFETENSORS_DTYPES } from '../tensor/dtype.js';
import { GGML_LAYOUT, GgmlType } from './gguf/types.js';
import { FORMATS, type FormatName } from './quantized/formats.js';
import { readQuantConfig } from './quantized/reader.js';
import { openSafetensorsDir } from './safetensors.js';
import { LAYER_PARTS, type TensorInfo } from './source.js';

export interface FileSize { readonly path: string; readonly bytes: number }

export interface CheckpointFiles {
  /** the files that hold the tensors: safetensors file(s) (and shard index), the .gguf, the llama2.c .bin */
  readonly weightFiles: readonly FileSize[];
  readonly weightBytes: number;
  /**
   * every file of the checkpoint: a folder's top-level files (config, tokenizer, reports; sub-folders are
   * not part of a HF or lowbit checkpoint), or a single file plus its tokenizer file when that lies apart
   */
  readonly files: readonly FileSize[];
  readonly totalBytes: number;
}

/** Bits per weight, as stored and as the method's nominal figure. */
export interface BitsPerWeight {
  /** weights of the decoder blocks' linear layers (q/k/v/o, gate/up/down): what quantization methods quantize */
  readonly linearWeights: number;
  /** every parameter of the model (a tied embedding once) */
  readonly parameters: number;
  /** bytes of the linear layers' stored tensors (quantized: qweight + qzeros + scales + g_idx) */
  readonly linearStoredBytes: number;
  /** bytes of every stored tensor (file headers and alignment padding excluded) */
  readonly storedBytes: number;
  /** linearStoredBytes · 8 / linearWeights */
  readonly storedLinear: number;
  /** storedBytes · 8 / parameters */
  readonly storedModel: number;
  /** the method's figure over the linear layers: code bits (4 for W4), or the float width (16 for BF16) */
  readonly nominal: number;
  /** nominal plus each group's parameters (GPTQ: its scale and its packed zero; GGUF: the block's fp16 scale) */
  readonly nominalWithGroups: number;
  /** what the linear layers are stored as, e.g. "BF16", "Q8_0", "GPTQ 4-bit g32 (rtn)" */
  readonly label: string;
}

/** storedAs of a packed layer: `<FORMAT>-INT<bits>` (the format's name upper-cased; bits may be fractional, e.g. 1.7) */
const PACKED_STORED = /^([A-Z0-9]+)-INT([0-9.]+)$/;
/** Q8_0 and Q4_0 blocks: `d` (one fp16 scale) then the codes (ggml-common.h block_q8_0, block_q4_0). */
const GGML_BLOCK_SCALE_BYTES = 2;
const LINEAR_PARTS = LAYER_PARTS.filter((p) => p.endsWith('_proj'));
const LINEAR = new RegExp(`^model\\.layers\\.\\d+\\.(${LINEAR_PARTS.map((p) => p.replace('.', '\\.')).join('|')})\\.weight$`);

export function isLinearWeight(name: string): boolean { return LINEAR.test(name); }

function fileSize(path: string): FileSize { return { path, bytes: statSync(path).size }; }
const sum = (files: readonly FileSize[]) => files.reduce((a, f) => a + f.bytes, 0);
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The files of `ckpt` and their sizes. */
export function checkpointFiles(ckpt: ModelCheckpoint): CheckpointFiles {
  let weightFiles: FileSize[], files: FileSize[];
  if (ckpt.format === 'hf' || ckpt.format.startsWith('lowbit-')) {
    const st = openSafetensorsDir(ckpt.path);
    weightFiles = 'shards' in st ? [st.path, ...st.shards.map((s) => s.path)].map(fileSize) : [fileSize(st.path)];
    files = readdirSync(ckpt.path, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => fileSize(join(ckpt.path, e.name)));
  } else {
    weightFiles = [fileSize(ckpt.path)];
    files = [...weightFiles];
    const tok = ckpt.tokenizerPath;
    if (tok && tok !== ckpt.path && existsSync(tok) && statSync(tok).isFile()) files.push(fileSize(tok));
  }
  files.sort((a, b) => a.path.localeCompare(b.path));
  return { weightFiles, weightBytes: sum(weightFiles), files, totalBytes: sum(files) };
}

/** Stored bytes, nominal bits and nominal bits with group parameters (totals over one tensor). */
interface TensorCost { readonly bytes: number; readonly nominalBits: number; readonly groupBits: number }

function floatCost(t: TensorInfo): TensorCost | undefined {
  const dtype = Object.hasOwn(SAFETENSORS_DTYPES, t.storedAs) ? SAFETENSORS_DTYPES[t.storedAs] : undefined;
  if (!dtype) return undefined;
  const bytes = numel(t.shape) * DTYPE_BYTES[dtype];
  return { bytes, nominalBits: 8 * bytes, groupBits: 8 * bytes };
}

function ggmlCost(t: TensorInfo): TensorCost | undefined {
  const type = GgmlType[t.storedAs as keyof typeof GgmlType];
  const layout = type === undefined ? undefined : GGML_LAYOUT[type];
  if (!layout || layout.block === 1) return undefined;
  const blocks = numel(t.shape) / layout.block;
  return { bytes: blocks * layout.bytes, nominalBits: blocks * 8 * (layout.bytes - GGML_BLOCK_SCALE_BYTES), groupBits: blocks * 8 * layout.bytes };
}

/** A packed layer: its parts (GPTQ: qweight/qzeros/scales/g_idx; AWQ: qweight/qzeros/scales) as the safetensors header lists them. */
function packedCost(path: string, t: TensorInfo, format: FormatName, bits: number, raw: ReadonlyMap<string, TensorInfo>): TensorCost {
  const base = t.name.slice(0, -'.weight'.length);
  const fmt = FORMATS[format];
  if (!fmt) throw new FormatError(path, `${base}: unknown packed format ${format}`);
  let bytes = 0, optionalBits = 0;
  for (const part of fmt.parts) {
    const p = raw.get(`${base}.${part}`);
    if (!p) throw new FormatError(path, `${base} has no ${part}`);
    bytes += numel(p.shape) * DTYPE_BYTES[p.dtype];
  }
  // parts only some checkpoints hold (GPTQ's qzeros_float) count when they are there
  for (const part of fmt.optionalParts ?? []) {
    const p = raw.get(`${base}.${part}`);
    if (p) { bytes += numel(p.shape) * DTYPE_BYTES[p.dtype]; optionalBits += 8 * numel(p.shape) * DTYPE_BYTES[p.dtype]; }
  }
  const n = numel(t.shape), scales = raw.get(`${base}.scales`);
  // a uniform grid: its codes plus each group's scale and packed zero (and float zero); a method-specific kind: everything it stores
  const groupBits = format === 'gptq' || format === 'awq'
    ? n * bits + numel(scales!.shape) * (8 * DTYPE_BYTES[scales!.dtype] + bits) + optionalBits : 8 * bytes;
  return { bytes, nominalBits: n * bits, groupBits };
}

/** "GPTQ 4-bit g32 (rtn)", "AWQ 4-bit g128 (awq)" from the checkpoint's quantization config. */
function packedLabel(dir: string): string {
  const q = readQuantConfig(dir);
  const groups = q.groupSize === -1 ? ' per channel' : ` g${q.groupSize}`;
  return `${q.format.toUpperCase()} ${q.bits}-bit${groups} (${q.method})`;
}

/** One tensor as stored: its parameters, bytes, nominal bits and nominal bits with group parameters (totals). */
export interface StoredTensor extends TensorCost {
  readonly info: TensorInfo;
  readonly params: number;
  /** packed as codes (then `bytes` counts every stored part: qweight, qzeros, scales, and g_idx for GPTQ) */
  readonly packed: boolean;
  readonly label: string;
}

/** Every tensor of `ckpt` as stored; exact (from the headers' dtypes and shapes). */
export function storedTensors(ckpt: ModelCheckpoint): StoredTensor[] {
  const path = ckpt.weights.path;
  let raw: Map<string, TensorInfo> | undefined;
  return ckpt.weights.list().map((t) => {
    const m = PACKED_STORED.exec(t.storedAs);
    let cost: TensorCost | undefined;
    if (m) {
      raw ??= new Map(openSafetensorsDir(ckpt.path).list().map((i) => [i.name, i]));
      cost = packedCost(path, t, m[1]!.toLowerCase() as FormatName, Number(m[2]), raw);
    } else cost = floatCost(t) ?? ggmlCost(t);
    if (!cost) throw new FormatError(path, `tensor "${t.name}": no storage size known for ${t.storedAs}`);
    return { ...cost, info: t, params: numel(t.shape), packed: !!m, label: m ? packedLabel(ckpt.path) : t.storedAs };
  });
}

/** Bits per weight of `ckpt` as stored and nominal; exact. */
export function bitsPerWeight(ckpt: ModelCheckpoint, tensors: readonly StoredTensor[] = storedTensors(ckpt)): BitsPerWeight {
  const labels = new Set<string>();
  let linearWeights = 0, parameters = 0, linearStoredBytes = 0, storedBytes = 0, nominalBits = 0, groupBits = 0;
  for (const t of tensors) {
    parameters += t.params;
    storedBytes += t.bytes;
    if (!isLinearWeight(t.info.name)) continue;
    linearWeights += t.params;
    linearStoredBytes += t.bytes;
    nominalBits += t.nominalBits;
    groupBits += t.groupBits;
    labels.add(t.label);
  }
  if (linearWeights === 0) throw new FormatError(ckpt.weights.path, 'no linear-layer weights (model.layers.N.*_proj.weight)');
  return {
    linearWeights, parameters, linearStoredBytes, storedBytes,
    storedLinear: (8 * linearStoredBytes) / linearWeights, storedModel: (8 * storedBytes) / parameters,
    nominal: nominalBits / linearWeights, nominalWithGroups: groupBits / linearWeights, label: [...labels].sort().join(' + '),
  };
}
