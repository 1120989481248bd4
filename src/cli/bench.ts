import type { Command } from 'commander';
import { fmtFixed, fmtInt } from '../numbers.js';
import { basename } from 'node:path';
import { benchModel, type BenchResult } from '../eval/bench.js';
import { checkSpeedSettings, defaultSpeedSettings, formatRate as rate, type Spread } from '../eval/speed.js';
import { createBackend, backendOptions, threadCount, type BackendCliOptions } from './backendOptions.js';
import { loadCheckpoint, markdownTable, modelOptions, parseIntOption, Progress, writeJsonAtomic, type CommonOptions } from './common.js';

interface BenchCliOptions extends CommonOptions, BackendCliOptions {
  promptTokens?: string; decodeTokens?: string; reps?: string; warmup?: string; out?: string;
}

const MIB = 1024 * 1024;
const int = fmtInt;
const mib = (bytes: number) => `${fmtFixed(bytes / MIB, 2)} MiB`;
const bits = (b: number) => b.toLocaleString('en-US', { maximumFractionDigits: 4 });

export function registerBench(program: Command): void {
  const cmd = program.command('bench')
    .description('measure a checkpoint: prefill and decode tokens/s (median of repetitions), peak memory, size on disk, bits per weight')
    .option('--prompt-tokens <n>', "prompt length for the prefill (default: min(128, half the model's context))")
    .option('--decode-tokens <n>', "new tokens decoded one at a time after the prompt (default: min(128, a quarter of the model's context))")
    .option('--reps <n>', 'measured repetitions; the median is quoted', '5')
    .option('--warmup <n>', 'uncounted runs before the repetitions', '1')
    .option('--out <file>', 'also write the result as JSON here')
    .option('--json', 'print the result as JSON on stdout (no table, no progress)');
  modelOptions(cmd);
  backendOptions(cmd);
  cmd.action(async (o: BenchCliOptions) => {
    const promptTokens = parseIntOption('--prompt-tokens', o.promptTokens);
    const decodeTokens = parseIntOption('--decode-tokens', o.decodeTokens);
    const reps = parseIntOption('--reps', o.reps)!;
    const warmup = parseIntOption('--warmup', o.warmup, 0)!;
    const threads = threadCount(o);
    const ckpt = loadCheckpoint(o);
    const context = ckpt.config.maxPositionEmbeddings;
    const d = defaultSpeedSettings(context);
    const settings = { promptTokens: promptTokens ?? d.promptTokens, decodeTokens: decodeTokens ?? d.decodeTokens, warmup, reps };
    checkSpeedSettings(settings, context, ckpt.path);
    const be = await createBackend(o);
    const progress = new Progress(!!o.json);
    progress.start(warmup + reps, 'bench');
    const r = await benchModel(ckpt, be, {
      ...settings, threads, onRun: (done, total) => progress.update(done, done <= warmup ? `warm-up ${done}/${warmup}` : `run ${done - warmup}/${total - warmup}`),
    });
    progress.stop();
    if (o.out) writeJsonAtomic(o.out, r);
    if (o.json) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return; }
    printBench(r);
    if (o.out) console.log(`result written to ${o.out}`);
  });
}

function printBench(r: BenchResult): void {
  const s = r.speed, b = r.bitsPerWeight, m = r.memory, st = r.storage;
  const row = (name: string, x: Spread) => [name, rate(x.median), rate(x.min), rate(x.max)];
  console.log(`model ${r.model} (${r.format}), ${r.backend}, Node ${r.node}`);
  console.log(`prompt: ${int(s.promptTokens)} tokens (${s.prompt}), then ${int(s.decodeTokens)} tokens decoded greedily on the KV cache; ` +
    `${s.warmup} warm-up run${s.warmup === 1 ? '' : 's'}, ${s.reps} repetition${s.reps === 1 ? '' : 's'}`);
  console.log('');
  console.log(markdownTable(['tokens/s', 'median', 'min', 'max'], [row('prefill', s.prefill.tokensPerSecond), row('decode', s.decode.tokensPerSecond)]));
  console.log('');
  const weightNames = st.weightFiles.map((f) => basename(f.path)).join(', ');
  console.log(`size on disk  ${int(st.weightBytes)} bytes (${mib(st.weightBytes)}) in ${weightNames}; ${int(st.totalBytes)} bytes in the checkpoint's ${st.files.length} file${st.files.length === 1 ? '' : 's'}`);
  console.log(`bits/weight   stored: ${bits(b.storedLinear)} in the linear layers (${int(b.linearWeights)} weights), ${bits(b.storedModel)} over the whole model (${int(b.parameters)} parameters); ` +
    `nominal: ${bits(b.nominal)} for ${b.label}, ${bits(b.nominalWithGroups)} with group parameters`);
  console.log(`memory        peak RSS ${mib(m.peakRssBytes)} (the whole process; ${mib(m.rssBeforeLoadBytes)} before the model was loaded); weights resident ${int(m.residentWeightBytes)} bytes (${mib(m.residentWeightBytes)})`);
  console.log(`load          ${r.loadSeconds.toFixed(3)} s`);
}
