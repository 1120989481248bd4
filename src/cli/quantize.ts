import type { Command } from 'commander';
import { resolve } from 'node:path';
import { quantizeModel } from '../quant/quantizeModel.js';
import { METHODS } from '../quant/registry.js';
import { DEFAULT_CALIBRATION } from '../data/calibration.js';
import { QUANTIZE_BACKEND_NOTE, createBackend, backendOptions, type BackendCliOptions } from './backendOptions.js';
import { dataDirOption, dataDir, loadCheckpoint, modelOptions, parseIntOption, Progress, resolveSeqlen, scaleDtypeOption, type CommonOptions } from './common.js';
import { givenMethodOptions, methodOptionFlags } from './methodOptions.js';
import { UsageError } from '../errors.js';

interface QuantizeCliOptions extends CommonOptions, BackendCliOptions {
  method: string; wbits: string; group?: string; sym?: boolean; scaleDtype: string;
  hessian: string; calib: string; nsamples: string; seed: string; seqlen?: string; out?: string; trueSequential?: boolean;
  force?: boolean; allowLongContext?: boolean; errors?: boolean;
}

export function registerQuantize(program: Command): void {
  const cmd = modelOptions(program.command('quantize'))
    .description('quantize every linear layer (one decoder block at a time) and write a checkpoint in the method\'s stored layout (GPTQ, AutoAWQ, or lowbit\'s own for quip, pbllm, billm)')
    .option('--method <name>', `quantization method: ${Object.keys(METHODS).join(', ')}`, 'gptq')
    .option('--wbits <n>', 'weight bits, 1-8', '4')
    .option('--group <g>', 'input columns per group, -1 = per output channel (default 128; smoothquant: -1)')
    .option('--sym', 'symmetric grid (default: asymmetric, as the paper)')
    .option('--true-sequential', 'quantize a block in GPTQ\'s true-sequential groups (q,k,v → o → gate,up → down), statistics recomputed after each (default: the method\'s; rtn, gptq: on)')
    .option('--no-true-sequential', 'quantize all seven linears of a block from one forward of the not-yet-quantized block');
  methodOptionFlags(cmd);
  scaleDtypeOption(cmd)
    .option('--hessian <precision>', 'Hessian sums: f64 (exact; on --backend webgpu two-float sums on the device, about 1e-9 relative) or f32 (a float32 GEMM per sequence as gptq.py, summed in float64; faster; on --backend webgpu a GEMM on the device)', 'f64')
    .option('--calib <source>', 'calibration: c4 (train sample), ptb (train), wikitext2-valid, wikitext2 (train, needs a --data-dir that has it), generated (data-free: text the model writes itself, LLM-QAT\'s generator), a text file, or none (methods that need none: rtn, nf4, icq; with a source they only report each layer\'s error on it)', DEFAULT_CALIBRATION)
    .option('--nsamples <n>', 'calibration windows', '128')
    .option('--seed <n>', 'seed of the calibration sampler (CPython random.seed) and of QuIP\'s random transforms', '0')
    .option('--seqlen <n>', "calibration window length (default: min(2048, the model's context))")
    .option('--allow-long-context', '--seqlen may exceed the model\'s context')
    .option('--no-errors', 'skip the per-layer reconstruction errors (saves a Hessian per layer input for methods that need none)')
    .requiredOption('--out <dir>', 'output folder (new or empty; an existing lowbit checkpoint only with --force)')
    .option('--force', 'replace a lowbit checkpoint already in --out')
    .option('--json', 'print the report as JSON');
  dataDirOption(cmd);
  backendOptions(cmd, QUANTIZE_BACKEND_NOTE);
  cmd.action(async (o: QuantizeCliOptions, self: Command) => {
    const ckpt = loadCheckpoint(o);
    if (o.hessian !== 'f64' && o.hessian !== 'f32') throw new UsageError(`--hessian must be f64 or f32 (got '${o.hessian}')`);
    const group = o.group === undefined ? undefined : Number(o.group);
    if (group !== undefined && !Number.isInteger(group)) throw new UsageError(`--group must be an integer (got '${o.group}')`);
    const seqlen = resolveSeqlen(ckpt, o.seqlen, !!o.allowLongContext);
    const be = await createBackend(o);
    const progress = new Progress(!!o.json);
    progress.start(ckpt.config.numLayers, `${o.method} w${o.wbits}`);
    const report = await quantizeModel(ckpt, be, {
      method: o.method, bits: Number(o.wbits), group, sym: !!o.sym, options: givenMethodOptions(self) as Record<string, number | boolean>,
      scaleDtype: o.scaleDtype as 'f32' | 'f16', hessianPrecision: o.hessian, trueSequential: o.trueSequential, reportErrors: o.errors !== false,
      calib: o.calib, nsamples: parseIntOption('--nsamples', o.nsamples)!, seed: parseIntOption('--seed', o.seed, 0)!,
      seqlen: seqlen.value, dataDir: dataDir(o), out: resolve(o.out!), force: !!o.force,
      onProgress: (p) => progress.update(p.block, p.layer ?? `block ${p.block + 1}`),
      onGenerate: (done, total) => {
        if (!o.json) process.stderr.write(`generated calibration: ${done}/${total} windows\n`);
      },
      onTrain: (p) => {
        if (o.json) return;
        progress.stop();
        const eta = (p.seconds / Math.max(p.step - p.resumedFrom, 1)) * (p.steps - p.step);
        process.stderr.write(`train step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)}  ${p.seconds.toFixed(1)} s  ETA ${eta.toFixed(0)} s${p.resumedFrom ? ` (resumed from step ${p.resumedFrom})` : ''}\n`);
      },
    });
    progress.stop();
    if (o.json) { process.stdout.write(JSON.stringify(report, null, 2) + '\n'); return; }
    const s = report.settings as { bits: number; groupSize: number; sym: boolean; actOrder: boolean; deviceSolve?: boolean; scaleProtocol: string };
    console.log(`${report.method} W${s.bits} ${s.groupSize === -1 ? 'per-channel' : `g${s.groupSize}`} ` +
      `${s.sym ? 'sym' : 'asym'}${s.actOrder ? ', act-order' : ''}${s.deviceSolve ? ', solved on the device in float32' : ''} — ${report.layers.length} layers in ${report.seconds.toFixed(1)} s (${report.backend})`);
    console.log(`scales: ${s.scaleProtocol}`);
    if (report.calibration) console.log(`calibration: ${report.calibration.source} (${report.calibration.file}), ${report.calibration.nsamples} × ${report.calibration.seqlen} tokens, seed ${report.calibration.seed}`);
    if (report.totalError !== null) console.log(`reconstruction error on the calibration inputs, summed over layers: ${report.totalError.toExponential(4)}`);
    for (const n of report.notes) console.log(`note: ${n}`);
    console.log(`checkpoint written to ${resolve(o.out!)} (evaluate it with: lowbit eval --model ${o.out})`);
  });
}
