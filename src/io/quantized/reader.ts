import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import type { ModelCheckpoint } from '../../model/checkpoint.js';
import { Tensor } from '../../tensor/tensor.js';
import { dequantizeGptq, type QuantWeight } from '../../quant/pack/gptqPack.js';
import { checkTokenizerFits, checkWeights } from '../checkpointChecks.js';
import { FiniteSource } from '../finite.js';
import { readHfConfig } from '../hfConfig.js';
import { openSafetensorsDir } from '../safetensors.js';
import { fileOf, type TensorInfo, type TensorSource } from '../source.js';
import { checkRowRange, readRows, sliceRows } from '../rows.js';
import { loadTokenizer, tokenizerInDir } from '../tokenizers/load.js';
import { QUANT_CONFIG, SPM_TOKENIZER } from './layout.js';

export { QUANT_CONFIG };

const PART = /^(.*)\.(qweight|qzeros|scales|g_idx)$/;
/** Stored dtypes of the packed parts (AutoGPTQ v1). */
const PART_DTYPES: Readonly<Record<'qweight' | 'qzeros' | 'scales' | 'g_idx', readonly string[]>> = Object.freeze({
  qweight: ['i32'], qzeros: ['i32'], scales: ['f16', 'f32'], g_idx: ['i32'],
});

const words = (n: number, bits: number): number => Math.ceil((n * bits) / 32);

/**
 * The packed parts of `<base>.weight`, checked against each other from the header alone (no data
 * read): qweight [ceil(cols·bits/32), rows], qzeros [groups, ceil(rows·bits/32)], scales
 * [groups, rows], g_idx [cols], with their dtypes. Returns the weight's [rows, cols].
 */
function packedShape(inner: TensorSource, infos: ReadonlyMap<string, TensorInfo>, base: string, bits: number): [number, number] {
  const part = (p: keyof typeof PART_DTYPES): TensorInfo => {
    const name = `${base}.${p}`;
    const t = infos.get(name);
    if (!t) throw new FormatError(fileOf(inner, `${base}.qweight`), `${base} has a qweight but no ${p}`);
    if (!PART_DTYPES[p].includes(t.dtype)) throw new FormatError(fileOf(inner, name), `tensor "${name}" is ${t.storedAs}, a GPTQ ${p} is ${PART_DTYPES[p].join(' or ').toUpperCase()}`);
    return t;
  };
  const qweight = part('qweight'), qzeros = part('qzeros'), scales = part('scales'), gIdx = part('g_idx');
  const bad = (t: TensorInfo, want: string): never => {
    throw new FormatError(fileOf(inner, t.name), `tensor "${t.name}" has shape [${t.shape.join(', ')}]; for ${bits}-bit GPTQ it must be ${want}`);
  };
  if (qweight.shape.length !== 2 || qweight.shape[1] === 0) bad(qweight, '[ceil(in·bits/32), out]');
  if (gIdx.shape.length !== 1) bad(gIdx, '[in]');
  const rows = qweight.shape[1]!, cols = gIdx.shape[0]!;
  if (qweight.shape[0] !== words(cols, bits)) bad(qweight, `[${words(cols, bits)}, ${rows}] (g_idx has ${cols} columns)`);
  if (scales.shape.length !== 2 || scales.shape[1] !== rows || scales.shape[0] === 0) bad(scales, `[groups, ${rows}]`);
  const groups = scales.shape[0]!;
  if (qzeros.shape.length !== 2 || qzeros.shape[0] !== groups || qzeros.shape[1] !== words(rows, bits)) bad(qzeros, `[${groups}, ${words(rows, bits)}]`);
  return [rows, cols];
}

/**
 * A GPTQ-layout checkpoint seen as ordinary weights: `<layer>.weight` is dequantized from
 * qweight/qzeros/scales/g_idx when it is read (one layer at a time), everything else passes through.
 * The packed parts are checked against each other when the source is built; `path` and every error
 * name the safetensors file (the shard) that holds the tensor.
 */
class GptqSource implements TensorSource {
  private readonly infos: TensorInfo[];
  private readonly packed = new Set<string>();
  constructor(private readonly inner: TensorSource, private readonly bits: number) {
    const all = new Map(inner.list().map((t) => [t.name, t]));
    const out: TensorInfo[] = [];
    for (const t of all.values()) {
      const m = PART.exec(t.name);
      if (!m) { out.push(t); continue; }
      const base = m[1]!;
      if (!all.has(`${base}.qweight`)) throw new FormatError(fileOf(inner, t.name), `tensor "${t.name}" has no ${base}.qweight beside it`);
      if (m[2] !== 'qweight') continue;
      if (all.has(`${base}.weight`)) throw new FormatError(fileOf(inner, t.name), `${base} is stored both packed (qweight) and as ${base}.weight`);
      const [rows, cols] = packedShape(inner, all, base, bits);
      this.packed.add(`${base}.weight`);
      out.push({ name: `${base}.weight`, dtype: 'f32', shape: [rows, cols], storedAs: `GPTQ-INT${bits}` });
    }
    this.infos = out;
  }
  get path(): string { return this.inner.path; }
  list(): readonly TensorInfo[] { return this.infos; }
  has(name: string): boolean { return this.packed.has(name) || (this.inner.has(name) && !PART.test(name)); }
  fileOf(name: string): string {
    return fileOf(this.inner, this.packed.has(name) ? `${name.slice(0, -'.weight'.length)}.qweight` : name);
  }
  read(name: string): Tensor {
    const q = this.readQuantized(name);
    if (!q) return this.inner.read(name);
    return new Tensor('f32', [q.rows, q.cols], dequantizeGptq(q));
  }
  /** Rows of a float tensor (embedding, LM head) through the inner source; packed weights are read whole. */
  readRows(name: string, start: number, count: number): Tensor {
    if (!this.packed.has(name)) return readRows(this.inner, name, start, count);
    const t = this.read(name);
    checkRowRange(this.path, name, t.shape, start, count);
    return sliceRows(t, start, count);
  }
  /** qweight/qzeros/scales/g_idx of `<layer>.weight`, checked; undefined for a tensor stored as floats. */
  readQuantized(name: string): QuantWeight | undefined {
    if (!this.packed.has(name)) return undefined;
    const base = name.slice(0, -'.weight'.length);
    const file = this.fileOf(name);
    const qweight = this.inner.read(`${base}.qweight`), qzeros = this.inner.read(`${base}.qzeros`);
    const scales = this.inner.read(`${base}.scales`), gIdx = this.inner.read(`${base}.g_idx`);
    const rows = qweight.shape[1]!, cols = gIdx.shape[0]!, groups = scales.shape[0]!;
    const t: QuantWeight = {
      bits: this.bits, rows, cols, groups,
      qweight: qweight.data as Int32Array, qzeros: qzeros.data as Int32Array, scales: scales.toF32(), gIdx: gIdx.data as Int32Array,
    };
    for (let i = 0; i < cols; i++) {
      const g = t.gIdx[i]!;
      if (g < 0 || g >= groups) throw new FormatError(fileOf(this.inner, `${base}.g_idx`), `${base}.g_idx[${i}] = ${g} is outside the ${groups} groups`);
    }
    if (qweight.data.length !== words(cols, this.bits) * rows || qzeros.data.length !== groups * words(rows, this.bits) || scales.data.length !== groups * rows) {
      throw new FormatError(file, `${base}: qweight/qzeros/scales sizes do not match ${rows}x${cols}, ${groups} group(s), ${this.bits} bits`);
    }
    return t;
  }
}

export function readJsonObject(file: string): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new FormatError(file, `cannot read JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, 'not a JSON object');
  return v as Record<string, unknown>;
}

export interface OpenQuantizedOptions {
  /** a tokenizer to use instead of the one in the folder (see tokenizers/load.ts) */
  readonly tokenizer?: string;
}

/**
 * Opens a folder written by `lowbit quantize` (or any GPTQ v1 checkpoint of a LLaMA model), with
 * the shape checks of every other format; errors name the file at fault.
 */
export function openQuantized(dir: string, opts: OpenQuantizedOptions = {}): ModelCheckpoint {
  const qFile = join(dir, QUANT_CONFIG);
  const q = readJsonObject(qFile);
  if (q.quant_method !== undefined && q.quant_method !== 'gptq') throw new FormatError(qFile, `quant_method ${JSON.stringify(q.quant_method)} is not supported (only "gptq")`);
  const bits = q.bits;
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 1 || bits > 8) throw new FormatError(qFile, `bits must be an integer 1–8, got ${JSON.stringify(bits ?? null)}`);
  const config = readHfConfig(join(dir, 'config.json'));
  const weights = new GptqSource(openSafetensorsDir(dir), bits);
  checkWeights(weights, config);
  const tok = opts.tokenizer ? loadTokenizer(opts.tokenizer, config.vocabSize) : tokenizerInDir(dir, config.vocabSize);
  if (!tok) throw new FormatError(dir, `quantized checkpoint has no tokenizer (tokenizer.json, ${SPM_TOKENIZER} or tok*.bin)`);
  checkTokenizerFits(tok.file, tok.tokenizer, config);
  return { path: dir, format: 'lowbit-gptq', config, tokenizer: tok.tokenizer, weights: new FiniteSource(weights), tokenizerPath: opts.tokenizer ? tok.path : dir };
}
