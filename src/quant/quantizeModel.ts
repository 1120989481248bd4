import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { calibrationSet, DEFAULT_CALIBRATION, type CalibrationInfo } from '../data/calibration.js';
import { GENERATED_CALIBRATION, generatedCalibration } from './generatedCalibration.js';
import { QuantizedCheckpointWriter } from '../io/quantized/writer.js';
import { checkBits, type ScaleDtype } from './core/grid.js';
import { quantizeBlocks, type LayerReport } from './pipeline.js';
import { getMethod, METHODS } from './registry.js';
import { allOptions, resolveOptions } from './options.js';
import type { HessianPrecision } from './core/hessian.js';
import type { StreamProgress } from '../model/stream.js';
import { UsageError } from '../errors.js';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RefineLayer, TrainProgress } from './method.js';

export interface QuantizeModelOptions {
  readonly method: string;
  readonly bits: number;
  /** input columns per group, -1 = per output channel; default the method's (128, SmoothQuant: -1) */
  readonly group?: number;
  readonly sym?: boolean;
  /** the method's own options (its schema in method.ts: e.g. gptq's actOrder, percdamp; smoothquant's abits, alpha) */
  readonly options?: Readonly<Record<string, boolean | number | undefined>>;
  readonly trueSequential?: boolean;
  /** per-layer reconstruction errors on the calibration data (default true; costs a Hessian per input for methods that need none) */
  readonly reportErrors?: boolean;
  /** 'f64' (default) or 'f32' (float32 GEMM per sequence, summed in float64) */
  readonly hessianPrecision?: HessianPrecision;
  /**
   * Scales solved and stored in float32 ('f32', default: the reference code's fake quantization, the
   * paper's protocol) or rounded through fp16 before use ('f16': AutoGPTQ's stored convention, so the
   * checkpoint is exact for GPTQ-format consumers).
   */
  readonly scaleDtype?: ScaleDtype;
  /** calibration: a source name (wikitext2, wikitext2-valid, ptb, c4) or a text file; default c4; 'none' = no calibration (RTN only) */
  readonly calib?: string | undefined;
  readonly nsamples?: number;
  readonly seed?: number;
  /** calibration window length (default: min(2048, model context)) */
  readonly seqlen?: number | undefined;
  readonly dataDir?: string | undefined;
  readonly out: string;
  /** replace a lowbit checkpoint already at `out` */
  readonly force?: boolean;
  readonly onProgress?: ((p: StreamProgress & { layer?: string }) => void) | undefined;
  /** training progress of a method that trains after quantizing (DB-LLM) */
  readonly onTrain?: ((p: TrainProgress) => void) | undefined;
  /** `--calib generated`: windows written so far */
  readonly onGenerate?: ((done: number, total: number) => void) | undefined;
}

/** What each scale convention means, recorded in every report. */
export const SCALE_PROTOCOL = Object.freeze({
  f32: 'float32 scales (the reference code\'s fake quantization: the paper\'s protocol)',
  f16: 'scales rounded through fp16 before use (AutoGPTQ\'s stored convention: exact for GPTQ-format consumers)',
});

export interface QuantizeReport {
  readonly tool: 'lowbit';
  readonly source: { path: string; format: string };
  readonly method: string;
  readonly settings: Record<string, unknown>;
  readonly calibration: CalibrationInfo | null;
  readonly layers: readonly LayerReport[];
  /** what the method recorded per block (AWQ's chosen scale ratios and clip ratios), by block index */
  readonly blocks?: readonly Record<string, unknown>[];
  /** Σ over layers of the reconstruction error on the calibration inputs (null without calibration) */
  readonly totalError: number | null;
  /** where the errors' products ran: the host's float32 GEMM, or the backend's `linear` (Backend.acceleratedGemm) */
  readonly errorProducts?: 'host' | 'backend';
  readonly backend: string;
  readonly seconds: number;
  readonly notes: readonly string[];
  /** the end-to-end training of a method that trains after quantizing (DB-LLM): settings and losses */
  readonly training?: Record<string, unknown>;
}

/**
 * Quantizes every linear layer of `ckpt` with one method, one decoder block at a time, and writes
 * the checkpoint to `out` (atomically) in the method's layout. Returns the report that is also saved beside it.
 */
export async function quantizeModel(ckpt: ModelCheckpoint, be: Backend, o: QuantizeModelOptions): Promise<QuantizeReport> {
  const t0 = performance.now();
  const method = getMethod(o.method);
  checkBits(o.bits, 8, '--wbits');
  const group = o.group ?? method.defaultGroupSize ?? 128;
  if (!Number.isInteger(group) || (group !== -1 && group < 1)) throw new UsageError(`--group must be -1 (per channel) or a positive integer (got ${group})`);
  const scaleDtype = o.scaleDtype ?? 'f32';
  if (scaleDtype !== 'f32' && scaleDtype !== 'f16') throw new UsageError(`--scale-dtype must be f32 or f16 (got '${scaleDtype}')`);
  if (method.symmetric === false && o.sym) throw new UsageError(`${method.name} quantizes with zero points: drop --sym`);
  const spec = { bits: o.bits, groupSize: group, sym: method.symmetric ?? o.sym ?? false, scaleDtype };
  const options = resolveOptions(method, o.options ?? {}, allOptions(METHODS));
  method.validate?.(spec, options);
  method.checkBackend?.(be, options);
  const calibSource = o.calib ?? DEFAULT_CALIBRATION;
  if (method.needsCalibration && calibSource === 'none') throw new UsageError(`${method.name} needs calibration data: --calib none is only for methods without (${Object.values(METHODS).filter((m) => !m.needsCalibration).map((m) => m.name).join(', ')})`);
  const format = method.format(spec, ckpt.config, options);
  const nominalBits = method.nominalBits?.(spec, options) ?? spec.bits;
  const activation = method.activation?.(options);
  QuantizedCheckpointWriter.prepare(o.out, o.force ?? false);
  const settings = {
    bits: o.bits, groupSize: group, sym: spec.sym, ...options, trueSequential: o.trueSequential ?? method.sequential,
    hessianPrecision: o.hessianPrecision ?? 'f64', scaleDtype, scaleProtocol: SCALE_PROTOCOL[scaleDtype], format, nominalBits,
    ...(activation ? { activation } : {}),
  };
  const seqlen = o.seqlen ?? Math.min(2048, ckpt.config.maxPositionEmbeddings);
  const calibOpts = { nsamples: o.nsamples ?? 128, seqlen, seed: o.seed ?? 0 };
  const calib = calibSource === 'none' ? undefined
    : calibSource === GENERATED_CALIBRATION ? await generatedCalibration(ckpt, be, { ...calibOpts, ...(o.onGenerate ? { onProgress: o.onGenerate } : {}) })
      : calibrationSet(calibSource, ckpt.tokenizer, { ...calibOpts, ...(o.dataDir ? { dataDir: o.dataDir } : {}) });
  const writer = new QuantizedCheckpointWriter(ckpt, {
    method: method.name, format, bits: format === 'gptq' || format === 'awq' ? o.bits : nominalBits, groupSize: group, sym: spec.sym, scaleDtype, trueSequential: settings.trueSequential,
    actOrder: options.actOrder === true, staticGroups: options.staticGroups === true,
    ...(typeof options.percdamp === 'number' ? { percdamp: options.percdamp } : {}), ...(activation ? { activation } : {}),
  });
  const blocks: Record<string, unknown>[] = [];
  const pending: RefineLayer[] = [];
  const layers = await quantizeBlocks(ckpt, be, {
    method, spec, options, seed: o.seed ?? 0, trueSequential: settings.trueSequential, hessianPrecision: settings.hessianPrecision, calibration: calib?.windows,
    reportErrors: o.reportErrors ?? true,
    onLayer: (l) => { if (method.refine) pending.push({ name: l.name, rows: l.rows, cols: l.cols, stored: l.out.stored }); else writer.addLayer(l.name, l.rows, l.cols, l.out.stored); },
    onBlock: (norms, record) => { writer.setNorms(norms); if (record) blocks[norms.index] = record; },
    onProgress: o.onProgress,
  });
  // a method that trains after quantizing (DB-LLM): its state beside the output, removed once written
  const stateDir = `${resolve(o.out)}.lowbit-train`;
  const refined = method.refine
    ? await method.refine({ ckpt, be, spec, options, layers: pending, calibration: calib?.windows, seed: o.seed ?? 0, stateDir, onTrain: o.onTrain })
    : undefined;
  for (const l of refined?.layers ?? []) writer.addLayer(l.name, l.rows, l.cols, l.stored);
  const notes = layers.flatMap((l) => l.notes.map((n) => `${l.name}: ${n}`));
  const errors = layers.map((l) => l.error);
  const report: QuantizeReport = {
    tool: 'lowbit', source: { path: ckpt.path, format: ckpt.format }, method: method.name, settings,
    calibration: calib ? { ...calib.info, starts: calib.info.starts } : null, layers, ...(blocks.length ? { blocks } : {}),
    totalError: errors.every((e) => e !== null) ? errors.reduce((a, b) => a + b, 0) : null,
    ...(errors.some((e) => e !== null) ? { errorProducts: be.acceleratedGemm ? 'backend' as const : 'host' as const } : {}),
    backend: be.description, seconds: (performance.now() - t0) / 1000, notes, ...(refined ? { training: refined.record } : {}),
  };
  writer.write(o.out, report as unknown as Record<string, unknown>, o.force ?? false);
  if (refined) rmSync(stateDir, { recursive: true, force: true });
  return report;
}
