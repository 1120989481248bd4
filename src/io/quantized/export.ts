/**
 * The explicit export from lowbit's checkpoint to the deployment convention of GPTQ files: scales
 * stored in fp16, as AutoGPTQ/GPTQModel and their kernels expect. A checkpoint solved with float32
 * scales (the paper's protocol, lowbit's default) changes when its scales are rounded: its integer
 * codes and zero points were chosen for the float32 scale, so every dequantized weight moves by
 * |Δscale|·|q − zero|. The export measures that change and records it beside the result; nothing
 * else ever narrows scales.
 */
import { copyFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../errors.js';
import { f16ToF32, f32ToF16 } from '../../tensor/codecs.js';
import { Tensor } from '../../tensor/tensor.js';
import { makeDirs, replaceDir, tempPathFor, writeFailure, writeJsonAtomic } from '../atomic.js';
import { openSafetensorsDir, writeSafetensors } from '../safetensors.js';
import { QUANT_CONFIG, QUANT_REPORT } from './layout.js';
import { readJsonObject } from './reader.js';
import { isCheckpointFile, QuantizedCheckpointWriter } from './writer.js';

/** What rounding the scales to fp16 changed. */
export interface ScaleExport {
  readonly from: string;
  readonly scaleDtype: 'f16';
  /** scales in the checkpoint, and how many of them fp16 could not hold exactly */
  readonly scales: number;
  readonly scalesChanged: number;
  /** max over scales of |s16 − s32| / |s32| */
  readonly maxRelativeScaleChange: number;
  /** layers whose scales were stored in float32 before (the others were already fp16) */
  readonly layersConverted: number;
  readonly note: string;
}

/**
 * Copies the lowbit/GPTQ checkpoint folder `src` to `out` with every float32 `.scales` tensor
 * rounded to fp16 (fp16 ones are copied as they are). `out` follows the writer's rules
 * (QuantizedCheckpointWriter.prepare): new, empty, or a lowbit checkpoint replaced with `force`.
 */
export function exportGptqFp16Scales(src: string, out: string, force: boolean): ScaleExport {
  const quantConfig = readJsonObject(join(src, QUANT_CONFIG));
  const weights = openSafetensorsDir(src);
  QuantizedCheckpointWriter.prepare(out, force);
  let scales = 0, changed = 0, maxRel = 0, layers = 0;
  const tensors = weights.list().map(({ name }) => {
    const t = weights.read(name);
    if (!name.endsWith('.scales') || t.dtype === 'f16') return { name, tensor: t };
    if (t.dtype !== 'f32') throw new FormatError(weights.path, `${name} has dtype ${t.dtype}; scales are fp16 or float32`);
    layers++;
    const s = t.data as Float32Array, h = new Uint16Array(s.length);
    for (let i = 0; i < s.length; i++) {
      h[i] = f32ToF16(s[i]!);
      const back = f16ToF32(h[i]!);
      scales++;
      if (back !== s[i]) {
        changed++;
        maxRel = Math.max(maxRel, Math.abs(back - s[i]!) / Math.abs(s[i]!));
      }
    }
    return { name, tensor: new Tensor('f16', t.shape, h) };
  });
  const result: ScaleExport = {
    from: src, scaleDtype: 'f16', scales, scalesChanged: changed, maxRelativeScaleChange: maxRel, layersConverted: layers,
    note: changed === 0
      ? 'every scale was already an fp16 value: the weights are unchanged'
      : `${changed.toLocaleString('en-US')} of ${scales.toLocaleString('en-US')} scales changed by rounding to fp16 (at most ${(100 * maxRel).toPrecision(3)}% relative); codes and zero points were ` +
        'chosen for the float32 scales, so the dequantized weights differ from the quantized model that was evaluated',
  };
  rewriteGptqFolder(src, out, tensors, { ...quantConfig, scale_dtype: 'float16' }, { ...readJsonObject(join(src, QUANT_REPORT)), export: result });
  return result;
}

/**
 * Writes `out` as a copy of the lowbit/GPTQ checkpoint folder `src` with `tensors` as its weights,
 * `quantConfig` as its quantization_config (quantize_config.json and config.json's) and `report` as its
 * report; the tokenizer files are copied. Built in a temporary sibling and swapped in (`out` prepared
 * by the caller with QuantizedCheckpointWriter.prepare).
 */
export function rewriteGptqFolder(src: string, out: string, tensors: readonly { name: string; tensor: Tensor }[], quantConfig: Record<string, unknown>, report: Record<string, unknown>): void {
  const tmp = tempPathFor(out);
  makeDirs(tmp, out);
  try {
    writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt', quantized_by: 'lowbit' });
    writeJsonAtomic(join(tmp, QUANT_CONFIG), quantConfig);
    const config = readJsonObject(join(src, 'config.json'));
    writeJsonAtomic(join(tmp, 'config.json'), { ...config, quantization_config: quantConfig });
    writeJsonAtomic(join(tmp, QUANT_REPORT), report);
    for (const f of readdirSync(src)) {
      // the tokenizer, as the writer put it there
      if (isCheckpointFile(f) && ![QUANT_CONFIG, QUANT_REPORT, 'config.json', 'model.safetensors'].includes(f)) copyFileSync(join(src, f), join(tmp, f));
    }
    replaceDir(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw writeFailure(e, out);
  }
}
