import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { DEFAULT_MODEL, defaultDataDir } from '../paths.js';
import { openModel } from '../io/open.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { UsageError } from '../errors.js';

export { writeJsonAtomic } from '../io/atomic.js';
export { fmtInt, fmtPpl } from '../numbers.js';
import { fmtInt } from '../numbers.js';

export interface CommonOptions { model?: string; tokenizer?: string; json?: boolean; dataDir?: string }

export function modelPath(o: CommonOptions): string {
  return resolve(o.model ?? DEFAULT_MODEL);
}

export function loadCheckpoint(o: CommonOptions): ModelCheckpoint {
  return openModel(modelPath(o), o.tokenizer ? { tokenizer: resolve(o.tokenizer) } : {});
}

export function dataDir(o: CommonOptions): string {
  return o.dataDir ? resolve(o.dataDir) : defaultDataDir();
}

export function parseIntOption(name: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer ≥ ${min} (got '${v}')`);
  return n;
}

/**
 * The window length a command uses: --seqlen, else min(2048, the model's context). A --seqlen
 * beyond the context is refused unless the user insists (--allow-long-context): positions the model
 * was never trained on give numbers that mean nothing.
 */
export function resolveSeqlen(ckpt: ModelCheckpoint, given: string | undefined, allowLong: boolean): { value: number; source: string } {
  const ctx = ckpt.config.maxPositionEmbeddings;
  const n = parseIntOption('--seqlen', given, 2);
  if (n === undefined) return { value: Math.min(2048, ctx), source: `min(2048, model context ${fmtInt(ctx)})` };
  if (n > ctx && !allowLong) {
    throw new UsageError(`--seqlen ${fmtInt(n)} is longer than the model's context of ${fmtInt(ctx)} tokens (${ckpt.path}): positions beyond it were never trained ` +
      'and give meaningless numbers; pass --allow-long-context to run anyway');
  }
  return { value: n, source: n > ctx ? `--seqlen, beyond the model context of ${fmtInt(ctx)} (--allow-long-context)` : '--seqlen' };
}

export function parseList(name: string, v: string | undefined): string[] {
  const items = (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`${name} needs at least one name`);
  return items;
}

/** A progress bar on stderr; silent with --json or when stderr is not a terminal. */
export class Progress {
  private bar: cliProgress.SingleBar | undefined;
  constructor(private readonly quiet: boolean) {}
  start(total: number, label: string): void {
    if (this.quiet || !process.stderr.isTTY) return;
    this.bar?.stop();
    this.bar = new cliProgress.SingleBar({
      stream: process.stderr, format: ' {label} [{bar}] {value}/{total} {stage} | {duration_formatted}', hideCursor: true, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic);
    this.bar.start(total, 0, { label, stage: '' });
  }
  update(value: number, stage: string): void { this.bar?.update(value, { stage }); }
  stop(): void { this.bar?.stop(); this.bar = undefined; }
}

/** Markdown table from a header row and rows. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** --data-dir, shared by every command that reads datasets. */
export function dataDirOption(cmd: Command): Command {
  return cmd.option('--data-dir <dir>', 'dataset folder laid out as the bundled assets/data (see assets/data/README.md; default: $LOWBIT_DATA or assets/data)');
}

/** --scale-dtype, shared by quantize and study. */
export function scaleDtypeOption(cmd: Command): Command {
  return cmd.option('--scale-dtype <dtype>', 'scales in f32 (the reference code\'s fake quantization: the paper\'s protocol) or f16 ' +
    '(rounded through fp16 as AutoGPTQ stores them; exact for GPTQ-format consumers)', 'f32');
}

/** --model and --tokenizer, shared by every command that reads a checkpoint. */
export function modelOptions(cmd: Command): Command {
  return cmd
    .option('--model <path>', 'HF folder, .gguf, llama2.c .bin or a lowbit quantized folder (default: the bundled TinyStories-656K)')
    .option('--tokenizer <path>', 'tokenizer to use instead of the one beside the model (a folder with tokenizer.json, or a tok*.bin)');
}
