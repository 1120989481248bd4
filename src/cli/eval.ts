import type { Command } from 'commander';
import { basename, resolve } from 'node:path';
import { evaluatePpl, type PplResult } from '../eval/ppl.js';
import { evaluateKld, type KldResult } from '../eval/kld.js';
import { openModel } from '../io/open.js';
import { evaluateTasks, csqaColumns, mmluColumns } from '../eval/taskRun.js';
import { parseTasks, type TaskResult } from '../eval/tasks/registry.js';
import { UsageError } from '../errors.js';
import { createBackend, backendOptions, type BackendCliOptions } from './backendOptions.js';
import {
  dataDir, dataDirOption, fmtInt, fmtPpl, loadCheckpoint, modelOptions, markdownTable, modelPath, parseIntOption, parseList, Progress, resolveSeqlen,
  writeJsonAtomic, type CommonOptions,
} from './common.js';
import { PPL_DATASET_INFO } from '../data/pplData.js';
import { dataPath } from '../data/textFiles.js';
import { TASKS } from '../eval/tasks/registry.js';
import { existsSync } from 'node:fs';
import { describeActivation } from '../model/activation.js';

interface EvalOptions extends CommonOptions, BackendCliOptions {
  ppl?: string; seqlen?: string; limit?: string; windowsPerPass?: string; out?: string; tasks?: string; bos?: boolean; encoding?: string; kvReuse?: boolean;
  allowLongContext?: boolean; kld?: string;
}

/** Paper-style column names. */
const DEFAULT_PPL = ['wikitext2', 'ptb', 'c4', 'tinystories'];
const COLUMN: Record<string, string> = { wikitext2: 'WikiText2', ptb: 'PTB', 'ptb-new': 'PTB-new', c4: 'C4', 'c4-new': 'C4-new', tinystories: 'TinyStories' };

export function registerEval(program: Command): void {
  const cmd = program.command('eval')
    .description('evaluate a model: perplexity with the GPTQ protocol (one decoder block at a time)')
    .option('--ppl <sets>', 'comma-separated: wikitext2, ptb, ptb-new, c4, c4-new, tinystories, or text files (default without --tasks: wikitext2,ptb,c4,tinystories); "list" prints them')
    .option('--tasks <tasks>', 'zero-shot piqa, arc_easy, arc_challenge, hellaswag, winogrande and 5-shot mmlu; "list" prints them')
    .option('--bos', 'tasks: prepend BOS to every context (the paper: off; MMLU always uses the tokenizer default, on)')
    .option('--encoding <mode>', 'tasks: joint (lm-eval >= 0.4) or separate (the paper\'s v0.3 harness)', 'joint')
    .option('--no-kv-reuse', 'tasks: score every choice from scratch instead of reusing the shared context')
    .option('--kld <base>', 'with --ppl: KL-divergence of the model against BASE (llama.cpp --kl-divergence) over the same windows, with both perplexities')
    .option('--seqlen <n>', "window length (default: min(2048, the model's context))")
    .option('--allow-long-context', '--seqlen may exceed the model\'s context')
    .option('--limit <n>', 'only the first N windows of each set / first N examples of each task (MMLU: of each subject)')
    .option('--windows-per-pass <n>', 'perplexity and --kld: stream N windows through the model at a time (default: all); less memory for the hidden states, the weights read once per pass; same results')
    .option('--out <file>', 'also write the results as JSON to this file')
    .option('--json', 'print the results as JSON on stdout (no table, no progress)');
  dataDirOption(cmd);
  modelOptions(cmd);
  backendOptions(cmd);
  cmd.action(async (o: EvalOptions) => {
    if (o.ppl === 'list' || o.tasks === 'list') {
      if (o.ppl === 'list') printPplList(dataDir(o));
      if (o.tasks === 'list') printTaskList();
      return;
    }
    const ckpt = loadCheckpoint(o);
    const base = o.kld !== undefined ? openModel(resolve(o.kld)) : undefined;
    const { value: seqlen, source: seqlenSource } = resolveSeqlen(ckpt, o.seqlen, !!o.allowLongContext);
    const limit = parseIntOption('--limit', o.limit);
    const windowsPerPass = parseIntOption('--windows-per-pass', o.windowsPerPass);
    const sets = o.ppl !== undefined ? parseList('--ppl', o.ppl) : o.tasks ? [] : DEFAULT_PPL;
    const taskNames = o.tasks ? parseList('--tasks', o.tasks) : [];
    if (o.encoding !== 'joint' && o.encoding !== 'separate') throw new UsageError(`--encoding must be joint or separate (got '${o.encoding}')`);
    if (taskNames.length) parseTasks(taskNames.join(','));
    if (base && sets.length === 0) throw new UsageError('--kld compares the models over perplexity windows: give --ppl SETS');
    const be = await createBackend(o);
    const progress = new Progress(!!o.json);
    const results: PplResult[] = [];
    const kld: KldResult[] = [];
    for (const set of base ? sets : []) {
      progress.start(2 * (ckpt.config.numLayers + 2), `kld ${set}`);
      kld.push(await evaluateKld(ckpt, base!, be, set, {
        seqlen, limit, windowsPerPass, dataDir: dataDir(o),
        onProgress: (p) => progress.update((p.model === 'base' ? 0 : ckpt.config.numLayers + 2) +
          (p.phase === 'embed' ? 0 : p.phase === 'head' ? p.numBlocks + 1 : p.block + 1),
          `${p.model} ${p.phase === 'block' ? `block ${p.block + 1}/${p.numBlocks}` : p.phase}`),
      }));
      progress.stop();
    }
    for (const set of base ? [] : sets) {
      progress.start(ckpt.config.numLayers + 2, `ppl ${set}`);
      results.push(await evaluatePpl(ckpt, be, set, {
        seqlen, limit, windowsPerPass, dataDir: dataDir(o),
        onProgress: (p) => progress.update(p.phase === 'embed' ? 0 : p.phase === 'head' ? p.numBlocks + 1 : p.block + 1,
          p.phase === 'block' ? `block ${p.block + 1}/${p.numBlocks}` : p.phase),
      }));
      progress.stop();
    }
    let tasks: TaskResult[] = [];
    if (taskNames.length) {
      progress.start(taskNames.length, 'tasks');
      tasks = await evaluateTasks(ckpt, be, taskNames, {
        ...(limit ? { limit } : {}), ...(o.bos ? { bos: true } : {}), encoding: o.encoding, dataDir: dataDir(o),
        kvReuse: o.kvReuse !== false, onProgress: (task, done, total) => progress.update(taskNames.indexOf(task), `${task} ${done}/${total}`),
      });
      progress.stop();
    }
    const name = basename(modelPath(o));
    const record = {
      command: 'eval', model: modelPath(o), format: ckpt.format, backend: be.description, activation: ckpt.activation ?? null,
      adapter: ckpt.adapter ? { path: ckpt.adapter.path, form: ckpt.adapter.form, rank: ckpt.adapter.rank, scaling: ckpt.adapter.scaling } : null,
      seqlen, seqlenSource,
      limit: limit ?? null, results, ...(base ? { kldBase: base.path, kld } : {}), tasks,
    };
    if (o.out) writeJsonAtomic(o.out, record);
    if (o.json) { process.stdout.write(JSON.stringify(record, null, 2) + '\n'); return; }
    const ad = ckpt.adapter ? `; with its LoRA adapter (${ckpt.adapter.form}, r ${ckpt.adapter.rank}, scaling ${ckpt.adapter.scaling})` : '';
    console.log(`model ${name} (${ckpt.format}), ${be.description}; ${describeActivation(ckpt.activation)}${ad}`);
    if (results.length) printPpl(name, results, seqlen, record.seqlenSource, limit);
    if (kld.length) printKld(name, kld, seqlen, record.seqlenSource, limit);
    if (tasks.length) printTasks(name, tasks, limit);
    console.log(`tokenizer: ${ckpt.tokenizer.description}`);
    if (o.out) console.log(`results written to ${o.out}`);
  });
}

function printPpl(name: string, results: PplResult[], seqlen: number, seqlenSource: string, limit: number | undefined): void {
  console.log(`perplexity, GPTQ protocol: seqlen ${fmtInt(seqlen)} (${seqlenSource}), BOS at the start of each stream, fp32 cross-entropy${limit ? `, LIMITED to the first ${limit} windows of each set` : ''}`);
  console.log('');
  console.log(markdownTable(['Model', ...results.map((r) => COLUMN[r.dataset] ?? r.dataset)], [[name, ...results.map((r) => fmtPpl(r.ppl))]]));
  console.log('');
  for (const r of results) {
    console.log(`${r.dataset}: ${fmtInt(r.tokens)} tokens, ${fmtInt(r.windowsEvaluated)}/${fmtInt(r.windows)} windows of ${fmtInt(r.seqlen)}, ${r.seconds.toFixed(1)} s${r.notes.length ? ` (${r.notes.join('; ')})` : ''}`);
  }
}

function printKld(name: string, results: KldResult[], seqlen: number, seqlenSource: string, limit: number | undefined): void {
  console.log(`KL-divergence KL(P_base ‖ P_model) per token over the full vocabulary, base ${results[0]!.base}; GPTQ perplexity windows: seqlen ${fmtInt(seqlen)} ` +
    `(${seqlenSource}), BOS at the start of each stream${limit ? `, LIMITED to the first ${limit} windows of each set` : ''}`);
  console.log('');
  const f = (x: number) => x.toFixed(6);
  console.log(markdownTable(['Model', 'Set', 'PPL', 'PPL base', 'ΔPPL', 'Mean KLD', 'KLD p99', 'Same top %'], results.map((r) => [
    name, COLUMN[r.dataset] ?? r.dataset, fmtPpl(r.pplQuant), fmtPpl(r.pplBase), (r.deltaPpl >= 0 ? '+' : '') + fmtPpl(r.deltaPpl),
    `${f(r.kl.mean)} ± ${f(r.kl.stderr)}`, f(r.kl.p99), `${(100 * r.kl.sameTop).toFixed(2)} ± ${(100 * r.kl.sameTopStderr).toFixed(2)}`,
  ])));
  for (const r of results) {
    const k = r.kl;
    console.log(`\n${r.dataset}: ${fmtInt(k.tokens)} scored tokens in ${fmtInt(r.windowsEvaluated)}/${fmtInt(r.windows)} windows of ${fmtInt(r.seqlen)}, ${r.seconds.toFixed(1)} s`);
    console.log(`  Mean PPL(Q)   ${fmtPpl(r.pplQuant)}   Mean PPL(base) ${fmtPpl(r.pplBase)}   PPL(Q) − PPL(base) ${fmtPpl(r.deltaPpl)}`);
    console.log(`  Mean KLD ${f(k.mean)} ± ${f(k.stderr)}   Maximum ${f(k.max)}   99.9% ${f(k.p999)}   99.0% ${f(k.p99)}   90.0% ${f(k.p90)}   Median ${f(k.median)}   Minimum ${f(k.min)}`);
    console.log(`  Same top p ${(100 * k.sameTop).toFixed(3)} ± ${(100 * k.sameTopStderr).toFixed(3)} %`);
  }
}

function printTasks(name: string, tasks: TaskResult[], limit: number | undefined): void {
  const zs = tasks.filter((t) => !t.mmlu);
  if (zs.length) {
    const c = csqaColumns(zs);
    console.log(`\nCommonSenseQA, zero-shot acc (%)${limit ? `, LIMITED to the first ${limit} examples of each task` : ''}\n`);
    console.log(markdownTable(['Model', ...c.header], [[name, ...c.row]]));
  }
  if (tasks.some((t) => t.mmlu)) {
    const m = mmluColumns(tasks);
    console.log(`\nMMLU, 5-shot acc (%)${limit ? `, LIMITED to the first ${limit} questions of each subject` : ''}\n`);
    console.log(markdownTable(['Model', ...m.header], [[name, ...m.row]]));
  }
  console.log('');
  for (const t of tasks) {
    console.log(`${t.task}: n ${fmtInt(t.n)}, acc ${(100 * t.acc).toFixed(2)}${t.acc_norm === undefined ? '' : `, acc_norm ${(100 * t.acc_norm).toFixed(2)}`} ` +
      `(± ${(100 * t.stderr.acc).toFixed(2)}), ${t.shots}-shot, BOS ${t.bos ? 'on' : 'off'}${t.encoding ? `, ${t.encoding} encoding` : ''}, ${t.protocol}`);
  }
}

/** `--ppl list`: the named sets, what each is, and whether its file is in the data folder. */
function printPplList(dir: string): void {
  console.log(`perplexity sets (data folder ${dir}):`);
  for (const [name, info] of Object.entries(PPL_DATASET_INFO)) {
    const f = dataPath(dir, info.file);
    console.log(`  ${name.padEnd(12)} ${info.what}\n  ${''.padEnd(12)} ${existsSync(f) ? f : `missing: ${f}`}`);
  }
  console.log('  file:PATH    any text file, tokenized once (or give an existing path)');
}

/** `--tasks list`: the tasks with their split, size, shots and protocol. */
function printTaskList(): void {
  console.log('tasks:');
  for (const t of Object.values(TASKS)) {
    const shots = t.kind === 'mmlu' ? `${t.shots}-shot` : 'zero-shot';
    console.log(`  ${t.name.padEnd(14)} ${t.split}, ${fmtInt(t.size)} examples, ${shots}, ${t.protocol}, BOS ${t.defaultBos ? 'on' : 'off'} by default`);
  }
}
