/**
 * A GPTQ checkpoint rewritten with float zero points (QA-LoRA's merge, tensor/gptqZeroShift.ts):
 * the same folder as `src`, with the given layers replaced and every GPTQ layer storing
 * `<layer>.qzeros_float` (float32 [groups, out]) beside its AutoGPTQ v1 tensors; qzeros keep the
 * rounded zeros, so AutoGPTQ-style readers still load something close. quantization_config (in
 * config.json and quantize_config.json) gains `"lowbit_float_zeros": true`, which tells lowbit's
 * reader (reader.ts) to require and use the float zeros.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, UsageError } from '../../errors.js';
import { gptqZeroPoints } from '../../tensor/gptqPack.js';
import { isGptqPacked, type GptqPacked } from '../../tensor/packed.js';
import type { Tensor } from '../../tensor/tensor.js';
import { openSafetensorsDir } from '../safetensors.js';
import { rewriteGptqFolder } from './export.js';
import { fileOf } from '../source.js';
import { FLOAT_ZEROS_PART, FORMATS, gptqTensors } from './formats.js';
import { QUANT_CONFIG, QUANT_REPORT } from './layout.js';
import { openQuantized, readJsonObject, readQuantConfig } from './reader.js';
import { QuantizedCheckpointWriter } from './writer.js';

/**
 * Writes `out` from the GPTQ checkpoint folder `src` with `layers` (`<layer>.weight` → its merged
 * packed weight, same shape and codes) in place of the stored ones. Layers not given keep their
 * zeros (written as float zeros too). `out` follows the writer's rules (QuantizedCheckpointWriter.prepare).
 */
export function writeGptqFloatZeros(src: string, out: string, layers: ReadonlyMap<string, GptqPacked>, force = false): void {
  const q = readQuantConfig(src);
  if (q.format !== 'gptq') throw new UsageError(`${src} is a ${q.format} checkpoint; float zero points are stored in the GPTQ layout only`);
  const ckpt = openQuantized(src), raw = openSafetensorsDir(src), weights = ckpt.weights;
  const readQuantized = (name: string): GptqPacked | undefined => {
    const p = weights.readQuantized?.(name);
    if (p && !isGptqPacked(p)) throw new FormatError(fileOf(weights, name), `${name} is not a GPTQ layer`);
    return p;
  };
  const rawInfo = new Map(raw.list().map((t) => [t.name, t]));
  const packed = new Set(FORMATS.gptq!.parts.concat(FORMATS.gptq!.optionalParts ?? []).map((p) => `.${p}`));
  const isPart = (name: string): boolean => [...packed].some((p) => name.endsWith(p) && rawInfo.has(`${name.slice(0, -p.length)}.qweight`));
  for (const name of layers.keys()) {
    if (!readQuantized(name)) throw new UsageError(`${name} is not a GPTQ layer of ${src}`);
  }
  const tensors: { name: string; tensor: Tensor }[] = [];
  for (const { name } of raw.list()) if (!isPart(name)) tensors.push({ name, tensor: raw.read(name) });
  for (const info of weights.list()) {
    const base = info.name.slice(0, -'.weight'.length);
    if (!rawInfo.has(`${base}.qweight`)) continue;
    const stored = readQuantized(info.name);
    if (!stored) throw new FormatError(fileOf(weights, info.name), `${base} has a qweight but reads as no packed layer`);
    const given = layers.get(info.name);
    if (given && (given.rows !== stored.rows || given.cols !== stored.cols || given.bits !== stored.bits || given.groups !== stored.groups)) {
      throw new UsageError(`${info.name}: the merged layer is ${given.bits}-bit [${given.rows}, ${given.cols}] in ${given.groups} group(s); ${src} stores ${stored.bits}-bit [${stored.rows}, ${stored.cols}] in ${stored.groups}`);
    }
    const layer = given ?? stored;
    const scaleDtype = rawInfo.get(`${base}.scales`)!.dtype === 'f16' ? 'f16' : 'f32';
    tensors.push(...gptqTensors(base, { ...layer, zerosF: gptqZeroPoints(layer) }, scaleDtype));
  }
  QuantizedCheckpointWriter.prepare(out, force);
  const from = readJsonObject(q.file);
  const qc = { ...(q.file.endsWith(QUANT_CONFIG) ? from : from.quantization_config as Record<string, unknown>), lowbit_float_zeros: true };
  const report = existsSync(join(src, QUANT_REPORT)) ? readJsonObject(join(src, QUANT_REPORT)) : { tool: 'lowbit' };
  rewriteGptqFolder(src, out, tensors, qc, { ...report, floatZeros: { from: src, layersMerged: layers.size, part: FLOAT_ZEROS_PART } });
}
