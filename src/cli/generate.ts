import type { Command } from 'commander';
import { LlamaModel } from '../model/llama.js';
import { createBackend, backendOptions, type BackendCliOptions } from './backendOptions.js';
import { fmtInt, loadCheckpoint, modelOptions, parseIntOption, type CommonOptions } from './common.js';
import { UsageError } from '../errors.js';

interface GenerateOptions extends CommonOptions, BackendCliOptions { prompt: string; steps?: string; bos?: boolean; allowLongContext?: boolean }

export function registerGenerate(program: Command): void {
  const cmd = program.command('generate')
    .description('greedy decoding: a quick sanity check that a model loads and runs')
    .option('--prompt <text>', 'prompt text', 'Once upon a time,')
    .option('--steps <n>', 'new tokens', '64')
    .option('--no-bos', 'do not prepend the BOS token')
    .option('--allow-long-context', 'generate past the model\'s context')
    .option('--json', 'print ids and text as JSON');
  modelOptions(cmd);
  backendOptions(cmd);
  cmd.action(async (o: GenerateOptions) => {
    const ckpt = loadCheckpoint(o);
    const steps = parseIntOption('--steps', o.steps) ?? 64;
    const prompt = ckpt.tokenizer.encode(o.prompt, { bos: o.bos !== false });
    if (prompt.length === 0) {
      throw new UsageError(o.bos === false
        ? 'the prompt is empty and --no-bos leaves nothing to start from (give a --prompt or drop --no-bos)'
        : `the prompt encodes to no tokens and the tokenizer of ${ckpt.path} has no BOS token (give a --prompt)`);
    }
    const ctx = ckpt.config.maxPositionEmbeddings;
    if (prompt.length + steps > ctx && !o.allowLongContext) {
      throw new UsageError(`--steps ${fmtInt(steps)} after a ${fmtInt(prompt.length)}-token prompt runs past the model's context of ${fmtInt(ctx)} tokens ` +
        `(${ckpt.path}); use --steps ${fmtInt(Math.max(0, ctx - prompt.length))} or less, or --allow-long-context`);
    }
    const model = LlamaModel.load(ckpt, await createBackend(o));
    const out = await model.generate(prompt, steps, { stopAtEos: true, maxLength: o.allowLongContext ? Infinity : ctx });
    const text = ckpt.tokenizer.decode([...prompt, ...out]);
    if (o.json) process.stdout.write(JSON.stringify({ promptIds: prompt, outputIds: out, text }, null, 2) + '\n');
    else console.log(text);
  });
}
