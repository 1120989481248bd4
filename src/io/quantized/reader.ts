import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import type { ModelCheckpoint } from '../../model/checkpoint.js';
import { Tensor } from '../../tensor/tensor.js';
import { dequantizeGptq, type QuantWeight } from '../../quant/pack/gptqPack.js';
import { readHfConfig } from '../hfConfig.js';
import { openSafetensorsDir } from '../safetensors.js';
import type { TensorInfo, TensorSource } from '../source.js';
import { checkRowRange, readRows, sliceRows } from '../rows.js';
import type { Tokenizer } from '../tokenizer.js';
import { loadHfTokenizer } from '../tokenizers/hf.js';
import { readLlama2cTokenizer } from '../tokenizers/llama2c.js';
import { spmTokenizer } from '../tokenizers/spm.js';
import { QUANT_CONFIG, SPM_TOKENIZER } from './layout.js';

export { QUANT_CONFIG };

/**
 * A GPTQ-layout checkpoint seen as ordinary weights: `<layer>.weight` is dequantized from
 * qweight/qzeros/scales/g_idx when it is read (one layer at a time), everything else passes through.
 */
class GptqSource implements TensorSource {
  private readonly infos: TensorInfo[];
  constructor(readonly path: string, private readonly inner: TensorSource, private readonly bits: number) {
    const out: TensorInfo[] = [];
    for (const t of inner.list()) {
      if (t.name.endsWith('.qweight')) {
        const base = t.name.slice(0, -'.qweight'.length);
        const gIdx = inner.list().find((i) => i.name === `${base}.g_idx`);
        if (!gIdx) throw new FormatError(path, `${base} has a qweight but no g_idx`);
        out.push({ name: `${base}.weight`, dtype: 'f32', shape: [t.shape[1]!, gIdx.shape[0]!], storedAs: `GPTQ-INT${bits}` });
      } else if (!/\.(qzeros|scales|g_idx)$/.test(t.name)) out.push(t);
    }
    this.infos = out;
  }
  list(): readonly TensorInfo[] { return this.infos; }
  has(name: string): boolean { return this.infos.some((i) => i.name === name); }
  read(name: string): Tensor {
    const q = this.readQuantized(name);
    if (!q) return this.inner.read(name);
    return new Tensor('f32', [q.rows, q.cols], dequantizeGptq(q));
  }
  /** Rows of a float tensor (embedding, LM head) through the inner source; packed weights are read whole. */
  readRows(name: string, start: number, count: number): Tensor {
    if (this.inner.has(name)) return readRows(this.inner, name, start, count);
    const t = this.read(name);
    checkRowRange(this.path, name, t.shape, start, count);
    return sliceRows(t, start, count);
  }
  /** qweight/qzeros/scales/g_idx of `<layer>.weight`, checked; undefined for a tensor stored as floats. */
  readQuantized(name: string): QuantWeight | undefined {
    const base = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : '';
    if (!base || !this.inner.has(`${base}.qweight`)) return undefined;
    const qweight = this.inner.read(`${base}.qweight`), qzeros = this.inner.read(`${base}.qzeros`);
    const scales = this.inner.read(`${base}.scales`), gIdx = this.inner.read(`${base}.g_idx`);
    if (qweight.dtype !== 'i32' || qzeros.dtype !== 'i32' || (scales.dtype !== 'f16' && scales.dtype !== 'f32') || gIdx.dtype !== 'i32') {
      throw new FormatError(this.path, `${base}: expected int32 qweight/qzeros/g_idx and fp16 or float32 scales`);
    }
    const rows = qweight.shape[1]!, cols = gIdx.shape[0]!, groups = scales.shape[0]!;
    const t: QuantWeight = {
      bits: this.bits, rows, cols, groups,
      qweight: qweight.data as Int32Array, qzeros: qzeros.data as Int32Array, scales: scales.toF32(), gIdx: gIdx.data as Int32Array,
    };
    for (let i = 0; i < cols; i++) {
      const g = t.gIdx[i]!;
      if (g < 0 || g >= groups) throw new FormatError(this.path, `${base}.g_idx[${i}] = ${g} is outside the ${groups} groups`);
    }
    const words = (n: number) => Math.ceil((n * this.bits) / 32);
    if (qweight.data.length !== words(cols) * rows || qzeros.data.length !== groups * words(rows) || scales.data.length !== groups * rows) {
      throw new FormatError(this.path, `${base}: qweight/qzeros/scales sizes do not match ${rows}x${cols}, ${groups} group(s), ${this.bits} bits`);
    }
    return t;
  }
}

export function readJson(file: string): any {
  try { return JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new FormatError(file, `cannot read JSON: ${(e as Error).message}`);
  }
}

function quantizedTokenizer(dir: string, vocabSize: number): Tokenizer {
  if (existsSync(join(dir, 'tokenizer.json'))) return loadHfTokenizer(dir);
  if (existsSync(join(dir, SPM_TOKENIZER))) {
    const v = readJson(join(dir, SPM_TOKENIZER));
    return spmTokenizer({ tokens: v.tokens, scores: v.scores, types: v.types, bosId: v.bosId, eosId: v.eosId, source: join(dir, SPM_TOKENIZER), ...(v.addSpacePrefix === undefined || v.addSpacePrefix === null ? {} : { addSpacePrefix: v.addSpacePrefix }) });
  }
  const tok = readdirSync(dir).find((f) => /^tok.*\.bin$/.test(f));
  if (tok) return readLlama2cTokenizer(join(dir, tok), vocabSize);
  throw new FormatError(dir, `quantized checkpoint has no tokenizer (tokenizer.json, ${SPM_TOKENIZER} or tok*.bin)`);
}

/** Opens a folder written by `lowbit quantize` (or any GPTQ v1 checkpoint of a LLaMA model). */
export function openQuantized(dir: string): ModelCheckpoint {
  const q = readJson(join(dir, QUANT_CONFIG));
  if (q.quant_method !== undefined && q.quant_method !== 'gptq') throw new FormatError(join(dir, QUANT_CONFIG), `quant_method "${q.quant_method}" is not supported (only "gptq")`);
  const bits = Number(q.bits);
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new FormatError(join(dir, QUANT_CONFIG), `bits must be 1–8, got ${JSON.stringify(q.bits)}`);
  const config = readHfConfig(join(dir, 'config.json'));
  const weights = new GptqSource(dir, openSafetensorsDir(dir), bits);
  return { path: dir, format: 'lowbit-gptq', config, tokenizer: quantizedTokenizer(dir, config.vocabSize), weights, tokenizerPath: dir };
}
