import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../model/checkpoint.js';
import { calibrationSet, DEFAULT_CALIBRATION, type CalibrationInfo } from '../data/calibration.js';
import { QuantizedCheckpointWriter } from '../io/quantized/writer.js';
import { checkBits, type ScaleDtype } from './core/grid.js';
import { quantizeBlocks, type LayerReport } from './pipeline.js';
import { getMethod } from './registry.js';
import type { HessianPrecision } from './core/hessian.js';
import type { StreamProgress } from '../model/stream.js';
import { UsageError } from '../errors.js';

export interface QuantizeModelOptions {
  readonly method: string;
  readonly bits: number;
  /** -1 = per output channel */
  readonly group: number;
  readonly sym?: boolean;
  readonly actOrder?: boolean;
  readonly staticGroups?: boolean;
  readonly percdamp?: number;
  readonly blocksize?: number;
  readonly trueSequential?: boolean;
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
  /** Σ over layers of the reconstruction error on the calibration inputs (null without calibration) */
  readonly totalError: number | null;
  readonly backend: string;
  readonly seconds: number;
  readonly notes: readonly string[];
}

/**
 * Quantizes every linear layer of `ckpt` with one method, one decoder block at a time, and writes
 * a GPTQ-layout checkpoint to `out` (atomically). Returns the report that is also saved beside it.
 */
export async function quantizeModel(ckpt: ModelCheckpoint, be: Backend, o: QuantizeModelOptions): Promise<QuantizeReport> {
  const t0 = performance.now();
  const method = getMethod(o.method);
  checkBits(o.bits, 8, '--wbits');
  if (!Number.isInteger(o.group) || (o.group !== -1 && o.group < 1)) throw new UsageError(`--group must be -1 (per channel) or a positive integer (got ${o.group})`);
  if ((o.actOrder || o.staticGroups) && method.name !== 'gptq') throw new UsageError(`--act-order and --static-groups are GPTQ options; ${method.name} has no column order`);
  if (o.staticGroups && !o.actOrder) throw new UsageError('--static-groups only applies with --act-order (it keeps act-order\'s groups sequential, as AutoGPTQ\'s static_groups)');
  if (o.staticGroups && o.group === -1) throw new UsageError('--static-groups needs groups (--group N); per-channel quantization has one group per row');
  const calibSource = o.calib ?? DEFAULT_CALIBRATION;
  if (method.needsHessian && calibSource === 'none') throw new UsageError(`${method.name} needs calibration data: --calib none is only for methods without (rtn)`);
  const scaleDtype = o.scaleDtype ?? 'f32';
  if (scaleDtype !== 'f32' && scaleDtype !== 'f16') throw new UsageError(`--scale-dtype must be f32 or f16 (got '${scaleDtype}')`);
  QuantizedCheckpointWriter.prepare(o.out, o.force ?? false);
  const settings = {
    bits: o.bits, groupSize: o.group, sym: o.sym ?? false, actOrder: o.actOrder ?? false, staticGroups: o.staticGroups ?? false,
    percdamp: o.percdamp ?? 0.01, blocksize: o.blocksize ?? 128, trueSequential: o.trueSequential ?? true,
    hessianPrecision: o.hessianPrecision ?? 'f64', scaleDtype,
    scaleProtocol: scaleDtype === 'f32' ? SCALE_PROTOCOL.f32 : SCALE_PROTOCOL.f16,
  };
  const seqlen = o.seqlen ?? Math.min(2048, ckpt.config.maxPositionEmbeddings);
  const calib = calibSource !== 'none'
    ? calibrationSet(calibSource, ckpt.tokenizer, { nsamples: o.nsamples ?? 128, seqlen, seed: o.seed ?? 0, ...(o.dataDir ? { dataDir: o.dataDir } : {}) })
    : undefined;
  const writer = new QuantizedCheckpointWriter(ckpt, settings);
  const layers = await quantizeBlocks(ckpt, be, {
    method, spec: { bits: settings.bits, groupSize: settings.groupSize, sym: settings.sym, scaleDtype },
    actOrder: settings.actOrder, staticGroups: settings.staticGroups, percdamp: settings.percdamp, blocksize: settings.blocksize,
    trueSequential: settings.trueSequential, hessianPrecision: settings.hessianPrecision, calibration: calib?.windows,
    onLayer: (l) => writer.addLayer(l.name, l.rows, l.cols, l.out), onProgress: o.onProgress,
  });
  const notes = layers.flatMap((l) => l.notes.map((n) => `${l.name}: ${n}`));
  const errors = layers.map((l) => l.error);
  const report: QuantizeReport = {
    tool: 'lowbit', source: { path: ckpt.path, format: ckpt.format }, method: method.name, settings,
    calibration: calib ? { ...calib.info, starts: calib.info.starts } : null, layers,
    totalError: errors.every((e) => e !== null) ? errors.reduce((a, b) => a! + b!, 0) : null,
    backend: be.description, seconds: (performance.now() - t0) / 1000, notes,
  };
  writer.write(o.out, report as unknown as Record<string, unknown>, o.force ?? false);
  return report;
}
