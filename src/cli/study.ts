import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BUILTIN_GRIDS, GRID_EVAL, parseGrid } from '../study/grid.js';
import { runStudy } from '../study/runner.js';
import { studyOptions, type StudySpec } from '../study/spec.js';
import { DEFAULT_CALIBRATION } from '../data/calibration.js';
import { QUANTIZE_BACKEND_NOTE, createBackend, backendOptions, threadCount, type BackendCliOptions } from './backendOptions.js';
import {
  dataDir, dataDirOption, loadCheckpoint, modelOptions, parseIntOption, parseList, Progress, resolveSeqlen, scaleDtypeOption,
  type CommonOptions,
} from './common.js';
import { givenMethodOptions, methodOptionFlags } from './methodOptions.js';
import { parseTasks } from '../eval/tasks/registry.js';
import type { PairEncoding } from '../eval/tasks/score.js';
import { UsageError } from '../errors.js';

interface StudyCliOptions extends CommonOptions, BackendCliOptions {
  grid: string; ppl: string; seqlen?: string; limit?: string; calib: string; nsamples: string; seed: string; scaleDtype: string;
  out: string; ftSteps: string; force?: boolean; keepCheckpoints?: boolean; tasks?: string; bos?: boolean; encoding?: string; allowLongContext?: boolean; speed?: boolean; kld?: boolean;
  queue?: string; wait?: boolean; collect?: boolean;
}

export function registerStudy(program: Command): void {
  const cmd = modelOptions(program.command('study'))
    .description('run a grid of methods × bits × group sizes and write the paper-shaped tables (resumable)')
    .option('--grid <name|file>', `built-in grid (${Object.keys(BUILTIN_GRIDS).join(', ')}) or a JSON grid file`, 'quick')
    .option('--ppl <sets>', 'perplexity sets, or none (default: wikitext2,ptb,c4,tinystories; paper-loraft: none)', 'wikitext2,ptb,c4,tinystories')
    .option('--seqlen <n>', "window length for evaluation and calibration (default: min(2048, the model's context))")
    .option('--allow-long-context', '--seqlen may exceed the model\'s context')
    .option('--limit <n>', 'only the first N windows of each perplexity set')
    .option('--kld', 'also the KL-divergence of each quantized cell against the model (the FP cell) on each perplexity set: KLD and Top-1 columns')
    .option('--tasks <tasks>', 'also evaluate each cell on piqa, arc_easy, arc_challenge, hellaswag, winogrande, mmlu')
    .option('--bos', 'tasks: prepend BOS to every context (the paper: off)')
    .option('--encoding <mode>', 'tasks: joint or separate context/continuation encoding', 'joint')
    .option('--calib <source>', 'calibration for quantized cells: c4 (train sample), ptb (train), wikitext2-valid, wikitext2 (needs a --data-dir that has it), generated (data-free: text the model writes itself) or a text file', DEFAULT_CALIBRATION)
    .option('--nsamples <n>', 'calibration windows', '128')
    .option('--seed <n>', 'seed of the calibration sampler, of QuIP\'s random transforms and of fine-tuning cells', '0')
    .option('--ft-steps <n>', 'optimizer steps of the fine-tuning cells (qlora, irqlora, qalora) that do not set their own', '10');
  methodOptionFlags(cmd);
  scaleDtypeOption(cmd)
    .option('--out <dir>', 'study folder: tables, report.html, results.json, cells/ journal, checkpoints/', 'lowbit-study')
    .option('--force', 'recompute cells that are already finished')
    .option('--no-keep-checkpoints', 'delete each quantized checkpoint after it is evaluated')
    .option('--no-speed', "skip each cell's decode-speed check (size and bits/weight are still recorded)")
    .option('--json', 'print results.json on stdout instead of the table')
    .option('--queue <url>', 'run the cells on `lowbit worker` processes through Redis: redis://[user:password@]host:port/db (rediss:// for TLS)')
    .option('--no-wait', '--queue: enqueue the unfinished cells and exit (`--collect` builds the table later)')
    .option('--collect', '--queue: build the table from the cells finished so far, enqueue nothing');
  dataDirOption(cmd);
  backendOptions(cmd, QUANTIZE_BACKEND_NOTE);
  cmd.action(async (o: StudyCliOptions, self: Command) => {
    // BullMQ and its Redis client load only when a queue is used; a malformed URL is refused before any work
    const queue = o.queue === undefined ? undefined : await import('../study/queue/study.js');
    const queueUrl = o.queue === undefined ? undefined : (await import('../study/queue/connection.js')).parseQueueUrl(o.queue);
    const ckpt = loadCheckpoint(o);
    if (o.scaleDtype !== 'f32' && o.scaleDtype !== 'f16') throw new UsageError(`--scale-dtype must be f32 or f16 (got '${o.scaleDtype}')`);
    const grid = parseGrid(o.grid, { scaleDtype: o.scaleDtype, options: givenMethodOptions(self), ftSteps: parseIntOption('--ft-steps', o.ftSteps)! });
    // a built-in grid's own scoring (paper-loraft: MMLU and the zero-shot tasks, no perplexity) unless the command line says
    const gridEval = Object.hasOwn(GRID_EVAL, o.grid) ? GRID_EVAL[o.grid] : undefined;
    if (gridEval && self.getOptionValueSource('ppl') === 'default') o.ppl = gridEval.ppl.join(',');
    if (gridEval && o.tasks === undefined) o.tasks = gridEval.tasks.join(',');
    const seqlen = resolveSeqlen(ckpt, o.seqlen, !!o.allowLongContext).value;
    const taskNames = o.tasks ? parseList('--tasks', o.tasks) : [];
    if (taskNames.length) parseTasks(taskNames.join(','));
    if (o.encoding !== 'joint' && o.encoding !== 'separate') throw new UsageError(`--encoding must be joint or separate (got '${o.encoding}')`);
    if (o.calib === 'none') throw new UsageError('--calib none: a study calibrates every quantized cell (its reconstruction errors, and the methods that need it)');
    const limit = parseIntOption('--limit', o.limit);
    const ppl = o.ppl === '' || o.ppl === 'none' ? [] : parseList('--ppl', o.ppl);
    if (ppl.length === 0 && taskNames.length === 0) throw new UsageError('--ppl none needs --tasks: the study would score nothing');
    const nsamples = parseIntOption('--nsamples', o.nsamples)!, seed = parseIntOption('--seed', o.seed, 0)!;
    const be = await createBackend(o);
    const spec: StudySpec = {
      model: resolve(ckpt.path), tokenizer: o.tokenizer ? resolve(o.tokenizer) : null, ppl, seqlen, limit: limit ?? null, calib: o.calib, nsamples, seed,
      dataDir: o.dataDir ? dataDir(o) : null, kld: !!o.kld, speed: o.speed !== false,
      tasks: taskNames.length ? { names: taskNames, bos: !!o.bos, encoding: o.encoding as PairEncoding } : null,
    };
    const progress = new Progress(!!o.json);
    const log = (s: string) => { if (!o.json) process.stderr.write(`${s}\n`); };
    const study = { ...studyOptions(spec, be, threadCount(o)), out: resolve(o.out), force: !!o.force, keepCheckpoints: o.keepCheckpoints !== false };
    if (queue && queueUrl) {
      const files = await queue.queuedStudy(ckpt, be, grid, study, spec, { url: queueUrl, wait: o.wait !== false, collect: !!o.collect, log });
      if (files) printTables(files, !!o.json);
      return;
    }
    if (o.collect || o.wait === false) throw new UsageError(`${o.collect ? '--collect' : '--no-wait'} needs --queue`);
    const { files } = await runStudy(ckpt, be, grid, {
      ...study,
      onEvent: (e) => {
        if (e.kind === 'cell-skip') log(`[${e.index + 1}/${e.total}] ${e.key}: finished earlier, skipped (--force recomputes)`);
        else if (e.kind === 'cell-start') progress.start(e.steps, `[${e.index + 1}/${e.total}] ${e.key}`);
        else if (e.kind === 'cell-step') progress.update(e.step, e.stage);
        else { progress.stop(); log(`[${e.index + 1}/${e.total}] ${e.key}: done in ${e.seconds.toFixed(1)} s`); }
      },
    });
    printTables(files, !!o.json);
  });
}

function printTables(files: readonly string[], json: boolean): void {
  if (json) { process.stdout.write(readFileSync(files[2]!, 'utf8')); return; }
  console.log(readFileSync(files[0]!, 'utf8'));
  console.log(`written: ${files.join(', ')}`);
}
