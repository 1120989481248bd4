import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../model/checkpoint.js';
import { calibrationSet, type CalibrationInfo } from '../data/calibration.js';
import { QuantizedCheckpointWriter } from '../io/quantized/writer.js';
import { checkBits } from './core/grid.js';
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
  /** calibration: a source name (wikitext2, wikitext2-valid, ptb, c4) or a text file; omitted = none (RTN only) */
  readonly calib?: string | undefined;
  readonly nsamples?: number;
  readonly seed?: number;
  /** calibration window length (default: min(2048, model context)) */
  readonly seqlen?: number | undefined;
  readonly dataDir?: string | undefined;
  readonly out: string;
  readonly onProgress?: ((p: StreamProgress & { layer?: string }) => void) | undefined;
}

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
  if (method.needsHessian && !o.calib) throw new UsageError(`${method.name} needs calibration data: pass --calib (wikitext2-valid, ptb, c4 or a text file)`);
  const settings = {
    bits: o.bits, groupSize: o.group, sym: o.sym ?? false, actOrder: o.actOrder ?? false, staticGroups: o.staticGroups ?? false,
    percdamp: o.percdamp ?? 0.01, blocksize: o.blocksize ?? 128, trueSequential: o.trueSequential ?? true,
    hessianPrecision: o.hessianPrecision ?? 'f64',
  };
  const seqlen = o.seqlen ?? Math.min(2048, ckpt.config.maxPositionEmbeddings);
  const calib = o.calib
    ? calibrationSet(o.calib, ckpt.tokenizer, { nsamples: o.nsamples ?? 128, seqlen, seed: o.seed ?? 0, ...(o.dataDir ? { dataDir: o.dataDir } : {}) })
    : undefined;
  const writer = new QuantizedCheckpointWriter(ckpt, settings);
  const layers = await quantizeBlocks(ckpt, be, {
    method, spec: { bits: settings.bits, groupSize: settings.groupSize, sym: settings.sym, scaleDtype: 'f16' },
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
  writer.write(o.out, report as unknown as Record<string, unknown>);
  return report;
}
