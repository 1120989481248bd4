import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Backend } from '../backend/backend.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { openModel } from '../io/open.js';
import { evaluatePpl, type PplResult } from '../eval/ppl.js';
import { evaluateKld, type KldResult } from '../eval/kld.js';
import { quantizeModel, SCALE_PROTOCOL, type QuantizeReport } from '../quant/quantizeModel.js';
import { sweepStaleTemps } from '../io/atomic.js';
import { getMethod } from '../quant/registry.js';
import { finetuneModel, type FinetuneReport } from '../quant/lora/finetuneModel.js';
import { RECIPES, type FinetuneMethod } from '../quant/lora/recipes.js';
import { bundledAlpacaPath } from '../data/alpaca.js';
import { UsageError } from '../errors.js';
import { cellKey, type Cell, type Grid } from './grid.js';
import { Journal, type CellRecord } from './journal.js';
import { writeReports } from './report/writers.js';
import { cellCost, type StudySpeed } from './cost.js';

export interface StudyOptions {
  readonly out: string;
  readonly ppl: readonly string[];
  readonly seqlen: number;
  readonly limit?: number | undefined;
  readonly calib: string;
  readonly nsamples: number;
  readonly seed: number;
  readonly dataDir?: string | undefined;
  /** recompute finished cells */
  readonly force?: boolean;
  readonly keepCheckpoints?: boolean;
  /** also the KL-divergence of each quantized cell against the study's model (the FP cell) on every perplexity set */
  readonly kld?: boolean | undefined;
  /** extra evaluations of a cell's model (zero-shot tasks, MMLU), merged into its results */
  readonly extraEval?: ((ckpt: ModelCheckpoint, onProgress: (stage: string) => void) => Promise<Record<string, unknown>>) | undefined;
  readonly extraSettings?: Record<string, unknown>;
  /** each cell's decode-speed check (false: skipped; size and bits/weight are recorded anyway); not part of a cell's settings */
  readonly speed?: StudySpeed | false | undefined;
  readonly onEvent?: ((e: StudyEvent) => void) | undefined;
}

export type StudyEvent =
  | { kind: 'cell-start'; index: number; total: number; key: string; steps: number }
  | { kind: 'cell-step'; step: number; stage: string }
  | { kind: 'cell-skip'; index: number; total: number; key: string }
  | { kind: 'cell-done'; index: number; total: number; key: string; seconds: number };

/** Everything that changes a cell's numbers; a finished cell is reused only when these match. */
export function settingsOf(ckpt: ModelCheckpoint, be: Backend, cell: Cell, o: Omit<StudyOptions, 'out'>): Record<string, unknown> {
  return {
    model: resolve(ckpt.path), format: ckpt.format, tokenizer: ckpt.tokenizer.description, ppl: [...o.ppl], seqlen: o.seqlen,
    limit: o.limit ?? null, protocol: 'gptq',
    ...(cell.finetune ? { finetune: { recipe: RECIPES[cell.method as FinetuneMethod].source, steps: cell.finetune.steps, data: cell.finetune.data ?? 'bundled Alpaca (first 200 records)', seed: o.seed, nsamples: o.nsamples } } : {}),
    ...(cell.method === 'fp16' || cell.finetune ? {} : {
      calib: o.calib, nsamples: o.nsamples, seed: o.seed, trueSequential: getMethod(cell.method).sequential, options: cell.options,
      scaleDtype: cell.scaleDtype, scaleProtocol: SCALE_PROTOCOL[cell.scaleDtype],
    }),
    ...(o.extraSettings ?? {}),
    ...(o.kld && cell.method !== 'fp16' ? { kld: true } : {}),
    dataDir: o.dataDir ?? null, backendKind: be.name,
  };
}

/** How the grid's quantized cells treat scales, for the table's header. */
function scaleNote(grid: Grid): string {
  const dtypes = new Set(grid.cells.filter((c) => c.method !== 'fp16' && !c.finetune).map((c) => c.scaleDtype));
  if (dtypes.size === 0) return 'no quantized cells';
  if (dtypes.size === 2) return 'scales float32 (the paper\'s protocol) unless the method is marked "fp16 scales"';
  return dtypes.has('f16') ? `${SCALE_PROTOCOL.f16}` : SCALE_PROTOCOL.f32;
}

/**
 * The backends the records' perplexities ran on, as each result names it (a queue's workers, or an earlier run
 * this one resumed, may differ from this process); this process's where no record names one.
 */
export function backendsOf(records: readonly CellRecord[], be: Backend): string[] {
  const seen = new Set<string>();
  for (const r of records) {
    for (const p of Object.values((r.results as { ppl?: Record<string, { backend?: unknown }> }).ppl ?? {})) {
      if (typeof p?.backend === 'string') seen.add(p.backend);
    }
  }
  return seen.size ? [...seen] : [be.description];
}

/** The study's tables (table.md, table.csv, results.json in `o.out`) for `records`, in the order given. */
export function writeStudyReports(ckpt: ModelCheckpoint, be: Backend, grid: Grid, o: Omit<StudyOptions, 'onEvent'>, records: readonly CellRecord[]): string[] {
  const backends = backendsOf(records, be), backend = backends.join(' | ');
  const header = `# lowbit study: ${grid.name} on ${ckpt.path}\n\nPerplexity: GPTQ protocol, seqlen ${o.seqlen}${o.limit ? `, first ${o.limit} windows of each set (--limit)` : ''}; ` +
    `quantized cells calibrated on ${o.calib} (${o.nsamples} × ${o.seqlen} tokens, seed ${o.seed}); weights asymmetric unless marked; ` +
    `${scaleNote(grid)}; backend${backends.length > 1 ? 's' : ''} ${backend}.`;
  return writeReports(o.out, records, header, { grid, model: ckpt.path, backend });
}

/** What one cell needs: the study's settings, and the folder its quantized or fine-tuned checkpoint is written to. */
export type CellOptions = Omit<StudyOptions, 'out' | 'force'> & { readonly checkpointDir: string };

/** Progress steps of a cell (quantize, each perplexity set, each KLD set, tasks, cost), for a progress bar. */
export function cellSteps(cell: Cell, o: Omit<StudyOptions, 'out'>): number {
  return (cell.method === 'fp16' ? 0 : 1 + (o.kld ? o.ppl.length : 0)) + o.ppl.length + (o.extraEval ? 1 : 0) + 1;
}

/**
 * Runs one cell: quantize or fine-tune (written as a real checkpoint in `o.checkpointDir` and read back),
 * evaluate, measure its cost. Returns its record; journaling is the caller's (the local loop below, or a
 * queue worker: src/study/queue/worker.ts). Emits only 'cell-step' events.
 */
export async function runCell(ckpt: ModelCheckpoint, be: Backend, cell: Cell, o: CellOptions): Promise<CellRecord> {
  const key = cellKey(cell);
  const settings = settingsOf(ckpt, be, cell, o);
  const t0 = performance.now();
  let step = 0;
  const stepDone = (stage: string) => o.onEvent?.({ kind: 'cell-step', step: ++step, stage });
  let model = ckpt;
  let quant: QuantizeReport | null = null;
  const dir = o.checkpointDir;
  let ft: FinetuneReport | null = null;
  if (cell.finetune) {
    const run = (force: boolean) => finetuneModel(ckpt, be, {
      method: cell.method as FinetuneMethod, data: cell.finetune!.data ?? bundledAlpacaPath(), steps: cell.finetune!.steps, seed: o.seed,
      out: dir, force, nsamples: o.nsamples, dataDir: o.dataDir,
      onProgress: (p) => o.onEvent?.({ kind: 'cell-step', step, stage: `finetune step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}` }),
    });
    // a killed cell resumes its training; a folder left by other settings is started over
    ft = await run(false).catch((e: unknown) => { if (e instanceof UsageError && /other settings/.test(e.message)) return run(true); throw e; });
    model = openModel(dir);
    stepDone('fine-tuned');
  } else if (cell.method !== 'fp16') {
    quant = await quantizeModel(ckpt, be, {
      method: cell.method, bits: cell.wbits, group: cell.group, sym: cell.sym, options: cell.options,
      scaleDtype: cell.scaleDtype, calib: o.calib, nsamples: o.nsamples, seed: o.seed, seqlen: o.seqlen, dataDir: o.dataDir, out: dir, force: true,
      onProgress: (p) => o.onEvent?.({ kind: 'cell-step', step, stage: `quantize block ${p.block + 1}/${p.numBlocks}` }),
    });
    model = openModel(dir);
    stepDone('quantized');
  }
  const ppl: Record<string, PplResult> = {};
  for (const set of o.ppl) {
    ppl[set] = await evaluatePpl(model, be, set, {
      seqlen: o.seqlen, limit: o.limit, dataDir: o.dataDir,
      onProgress: (p) => o.onEvent?.({ kind: 'cell-step', step, stage: `ppl ${set} ${p.phase === 'block' ? `block ${p.block + 1}/${p.numBlocks}` : p.phase}` }),
    });
    stepDone(`ppl ${set}`);
  }
  const kld: Record<string, KldResult> = {};
  for (const set of o.kld && cell.method !== 'fp16' ? o.ppl : []) {
    kld[set] = await evaluateKld(model, ckpt, be, set, {
      seqlen: o.seqlen, limit: o.limit, dataDir: o.dataDir,
      onProgress: (p) => o.onEvent?.({ kind: 'cell-step', step, stage: `kld ${set} ${p.model} ${p.phase === 'block' ? `block ${p.block + 1}/${p.numBlocks}` : p.phase}` }),
    });
    stepDone(`kld ${set}`);
  }
  const extra = o.extraEval ? await o.extraEval(model, (s) => o.onEvent?.({ kind: 'cell-step', step, stage: s })) : {};
  if (o.extraEval) stepDone('tasks');
  const cost = await cellCost(model, be, o.speed ?? {});
  stepDone(o.speed === false ? 'size' : 'speed');
  const rec: CellRecord = {
    key, cell, settings,
    results: {
      ppl, ...(Object.keys(kld).length ? { kld } : {}), ...extra, cost,
      ...(ft ? { finetune: { method: ft.method, source: ft.source, steps: ft.steps, lora: ft.lora, train: ft.train, losses: ft.losses, seconds: ft.seconds, checkpoint: o.keepCheckpoints === false ? null : dir } } : {}),
      quant: quant && { nominalBits: quant.settings.nominalBits, totalError: quant.totalError, seconds: quant.seconds, calibration: quant.calibration, layers: quant.layers, notes: quant.notes, checkpoint: o.keepCheckpoints === false ? null : dir },
    },
    finishedAt: new Date().toISOString(), seconds: (performance.now() - t0) / 1000,
  };
  return rec;
}

/**
 * Runs a grid of (method, bits, group) cells on one model: quantize (written as a real checkpoint
 * and read back), evaluate, record. Each finished cell is journaled atomically, so a killed study
 * resumes where it stopped; the tables are rewritten after every cell.
 */
export async function runStudy(ckpt: ModelCheckpoint, be: Backend, grid: Grid, o: StudyOptions): Promise<{ records: CellRecord[]; files: string[] }> {
  const journal = new Journal(o.out);
  // what killed runs left behind: temporaries of tables, cell records and checkpoints
  for (const dir of [o.out, journal.dir, join(o.out, 'checkpoints')]) sweepStaleTemps(dir);
  const records: CellRecord[] = [];
  const total = grid.cells.length;
  const files = () => writeStudyReports(ckpt, be, grid, o, records);
  // settings this backend cannot run (gptq --device-solve on the CPU) are refused before any cell runs
  for (const cell of grid.cells) if (cell.method !== 'fp16' && !cell.finetune) getMethod(cell.method).checkBackend?.(be, cell.options);
  for (const [index, cell] of grid.cells.entries()) {
    const key = cellKey(cell);
    const done = o.force ? undefined : journal.find(cell, settingsOf(ckpt, be, cell, o));
    if (done) {
      records.push(done);
      o.onEvent?.({ kind: 'cell-skip', index, total, key });
      continue;
    }
    o.onEvent?.({ kind: 'cell-start', index, total, key, steps: cellSteps(cell, o) });
    const rec = await runCell(ckpt, be, cell, { ...o, checkpointDir: join(o.out, 'checkpoints', key) });
    journal.save(rec);
    if (o.keepCheckpoints === false && cell.method !== 'fp16') rmSync(join(o.out, 'checkpoints', key), { recursive: true, force: true });
    records.push(rec);
    files();
    o.onEvent?.({ kind: 'cell-done', index, total, key, seconds: rec.seconds });
  }
  return { records, files: files() };
}
