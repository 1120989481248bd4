import type { Command } from 'commander';
import { resolve } from 'node:path';
import { bundledAlpacaPath } from '../data/alpaca.js';
import { finetuneModel } from '../quant/lora/finetuneModel.js';
import { FINETUNE_METHODS, RECIPES, type FinetuneMethod } from '../quant/lora/recipes.js';
import { UsageError } from '../errors.js';
import { createBackend, backendOptions, type BackendCliOptions } from './backendOptions.js';
import { dataDirOption, dataDir, loadCheckpoint, modelOptions, parseIntOption, type CommonOptions } from './common.js';

interface FinetuneCliOptions extends CommonOptions, BackendCliOptions {
  method: string; data?: string; steps: string; seed: string; out: string; saveEvery: string; logEvery: string;
  rank?: string; alpha?: string; dropout?: string; lr?: string; gradAccum?: string;
  sourceMaxLen: string; targetMaxLen: string; trainOnSource?: boolean; force?: boolean; nsamples: string;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new UsageError(`${name} must be a number (got '${v}')`);
  return x;
}

export function registerFinetune(program: Command): void {
  const q = RECIPES.qlora;
  const cmd = modelOptions(program.command('finetune'))
    .description('quantize the base and train LoRA adapters on instruction data (QLoRA, IR-QLoRA, QA-LoRA), as their authors\' code does; OUT holds the quantized base and the PEFT adapter (QA-LoRA: the merged GPTQ checkpoint)')
    .option('--method <name>', FINETUNE_METHODS.join(', '), 'qlora')
    .option('--data <file>', 'Alpaca-format records (JSON array or JSONL of {instruction, input, output}; default: the bundled first 200 Alpaca records)')
    .option('--steps <n>', 'optimizer steps', '10')
    .option('--seed <n>', 'seed of the adapter init, the data order and dropout', '0')
    .requiredOption('--out <dir>', 'output folder (running the same command again resumes or reports a finished run)')
    .option('--save-every <n>', 'save the training state every n steps (and at the end)', '10')
    .option('--log-every <n>', 'print a progress line every n steps', '1')
    .option('--rank <r>', `LoRA rank (default ${q.lora.rank}, the recipe's)`)
    .option('--alpha <a>', `LoRA alpha (default ${q.lora.alpha}; scaling alpha/r)`)
    .option('--dropout <p>', `LoRA dropout (default ${q.lora.dropout})`)
    .option('--lr <x>', `learning rate (default ${q.train.lr}, constant)`)
    .option('--grad-accum <n>', `sequences per step (default ${q.train.gradAccum}: batch 1 × gradient accumulation 16)`)
    .option('--source-max-len <n>', 'prompt tokens kept (qlora source_max_len)', '1024')
    .option('--target-max-len <n>', 'response tokens kept (qlora target_max_len)', '256')
    .option('--train-on-source', 'take the loss on the prompt too (qlora train_on_source)')
    .option('--nsamples <n>', 'calibration windows of a base that calibrates (qalora: GPTQ on c4)', '128')
    .option('--force', 'replace a fine-tuning run already in --out')
    .option('--json', 'print the report as JSON');
  dataDirOption(cmd);
  backendOptions(cmd, 'training: the forward and backward passes run on it (cpu only for now)');
  cmd.action(async (o: FinetuneCliOptions) => {
    if (!FINETUNE_METHODS.includes(o.method as FinetuneMethod)) throw new UsageError(`--method must be one of ${FINETUNE_METHODS.join(', ')} (got '${o.method}')`);
    const ckpt = loadCheckpoint(o);
    const be = await createBackend(o);
    const logEvery = parseIntOption('--log-every', o.logEvery)!;
    const say = (s: string) => { if (!o.json) process.stderr.write(`${s}\n`); };
    const report = await finetuneModel(ckpt, be, {
      method: o.method as FinetuneMethod, data: resolve(o.data ?? bundledAlpacaPath()), steps: parseIntOption('--steps', o.steps)!,
      seed: parseIntOption('--seed', o.seed, 0)!, out: resolve(o.out), saveEvery: parseIntOption('--save-every', o.saveEvery)!,
      rank: parseIntOption('--rank', o.rank), alpha: num('--alpha', o.alpha), dropout: num('--dropout', o.dropout), lr: num('--lr', o.lr),
      gradAccum: parseIntOption('--grad-accum', o.gradAccum),
      tokenize: { sourceMaxLen: parseIntOption('--source-max-len', o.sourceMaxLen)!, targetMaxLen: parseIntOption('--target-max-len', o.targetMaxLen)!, trainOnSource: !!o.trainOnSource },
      force: !!o.force, dataDir: dataDir(o), nsamples: parseIntOption('--nsamples', o.nsamples)!,
      onPhase: say,
      onProgress: (p) => {
        if (p.step % logEvery !== 0 && p.step !== p.steps) return;
        const done = p.step - p.resumedFrom, rate = p.tokens / Math.max(p.seconds, 1e-9);
        const eta = (p.seconds / Math.max(done, 1)) * (p.steps - p.step);
        say(`step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(1)}  |g| ${p.gradNorm.toFixed(3)}  ${rate.toFixed(0)} tok/s  ETA ${eta.toFixed(0)} s`);
      },
    });
    if (o.json) { process.stdout.write(JSON.stringify(report, null, 2) + '\n'); return; }
    const l = report.losses ?? [];
    console.log(`${report.method}: ${report.steps} steps (${report.source}); loss ${l.length ? `${l[0]!.toFixed(4)} → ${l[l.length - 1]!.toFixed(4)}` : 'n/a'}` +
      `${report.resumedFrom ? `, resumed from step ${report.resumedFrom}` : ''}${report.seconds !== undefined ? ` in ${report.seconds.toFixed(1)} s` : ''}`);
    const what = RECIPES[report.method].merge ? 'GPTQ checkpoint with the adapters merged into its zeros' : 'quantized base + PEFT adapter';
    console.log(`${what} written to ${resolve(o.out)} (evaluate it with: lowbit eval --model ${o.out})`);
  });
}
