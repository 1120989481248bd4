import type { Command } from 'commander';
import { resolve } from 'node:path';
import { quantizeModel } from '../quant/quantizeModel.js';
import { METHODS } from '../quant/registry.js';
import { createBackend, backendOptions, type BackendCliOptions } from './backendOptions.js';
import { dataDir, loadCheckpoint, modelOptions, parseIntOption, Progress, type CommonOptions } from './common.js';
import { UsageError } from '../errors.js';

interface QuantizeCliOptions extends CommonOptions, BackendCliOptions {
  method: string; wbits: string; group: string; sym?: boolean; actOrder?: boolean; staticGroups?: boolean;
  percdamp: string; hessian: string; calib?: string; nsamples: string; seed: string; seqlen?: string; out?: string; trueSequential?: boolean;
}

export function parseFloatOption(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`${name} must be a number in [${min}, ${max}] (got '${v}')`);
  return n;
}

export function registerQuantize(program: Command): void {
  const cmd = modelOptions(program.command('quantize'))
    .description('quantize every linear layer (one decoder block at a time) and write a GPTQ-layout checkpoint')
    .option('--method <name>', `quantization method: ${Object.keys(METHODS).join(', ')}`, 'gptq')
    .option('--wbits <n>', 'weight bits, 1-8', '4')
    .option('--group <g>', 'input columns per group, -1 = per output channel', '128')
    .option('--sym', 'symmetric grid (default: asymmetric, as the paper)')
    .option('--act-order', 'GPTQ: process columns by decreasing Hessian diagonal (writes g_idx)')
    .option('--static-groups', 'GPTQ with --act-order: group parameters computed before reordering')
    .option('--no-true-sequential', 'quantize all layers of a block from the same inputs')
    .option('--percdamp <f>', 'GPTQ damping as a fraction of mean(diag H)', '0.01')
    .option('--hessian <precision>', 'Hessian sums: f64 (exact) or f32 (float32 GEMM per sequence, summed in float64; faster)', 'f64')
    .option('--calib <source>', 'calibration: wikitext2 (train), wikitext2-valid, ptb (train), c4 (train sample) or a text file')
    .option('--nsamples <n>', 'calibration windows', '128')
    .option('--seed <n>', 'calibration sampler seed (CPython random.seed)', '0')
    .option('--seqlen <n>', "calibration window length (default: min(2048, the model's context))")
    .option('--data-dir <dir>', 'dataset folder laid out as shared/data')
    .requiredOption('--out <dir>', 'output folder')
    .option('--json', 'print the report as JSON');
  backendOptions(cmd);
  cmd.action(async (o: QuantizeCliOptions) => {
    const ckpt = loadCheckpoint(o);
    const be = await createBackend(o);
    const progress = new Progress(!!o.json);
    progress.start(ckpt.config.numLayers, `${o.method} w${o.wbits}`);
    if (o.hessian !== 'f64' && o.hessian !== 'f32') throw new UsageError(`--hessian must be f64 or f32 (got '${o.hessian}')`);
    const group = Number(o.group);
    if (!Number.isInteger(group)) throw new UsageError(`--group must be an integer (got '${o.group}')`);
    const report = await quantizeModel(ckpt, be, {
      method: o.method, bits: Number(o.wbits), group, sym: !!o.sym, actOrder: !!o.actOrder, staticGroups: !!o.staticGroups,
      percdamp: parseFloatOption('--percdamp', o.percdamp, 0, 10), hessianPrecision: o.hessian, trueSequential: o.trueSequential !== false,
      calib: o.calib, nsamples: parseIntOption('--nsamples', o.nsamples)!, seed: parseIntOption('--seed', o.seed, 0)!,
      seqlen: parseIntOption('--seqlen', o.seqlen, 2), dataDir: o.dataDir ? dataDir(o) : undefined, out: resolve(o.out!),
      onProgress: (p) => progress.update(p.block, p.layer ?? `block ${p.block + 1}`),
    });
    progress.stop();
    if (o.json) { process.stdout.write(JSON.stringify(report, null, 2) + '\n'); return; }
    console.log(`${report.method} W${report.settings.bits} ${report.settings.groupSize === -1 ? 'per-channel' : `g${report.settings.groupSize}`} ` +
      `${report.settings.sym ? 'sym' : 'asym'}${report.settings.actOrder ? ', act-order' : ''} — ${report.layers.length} layers in ${report.seconds.toFixed(1)} s (${report.backend})`);
    if (report.calibration) console.log(`calibration: ${report.calibration.source} (${report.calibration.file}), ${report.calibration.nsamples} × ${report.calibration.seqlen} tokens, seed ${report.calibration.seed}`);
    if (report.totalError !== null) console.log(`reconstruction error on the calibration inputs, summed over layers: ${report.totalError.toExponential(4)}`);
    for (const n of report.notes) console.log(`note: ${n}`);
    console.log(`checkpoint written to ${resolve(o.out!)} (evaluate it with: lowbit eval --model ${o.out})`);
  });
}
