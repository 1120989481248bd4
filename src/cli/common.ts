import { writeFileSync, renameSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { DEFAULT_MODEL, defaultDataDir } from '../paths.js';
import { openModel } from '../io/open.js';
import type { ModelCheckpoint } from '../model/checkpoint.js';
import { UsageError } from '../errors.js';

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

/** Writes JSON atomically (tmp + rename), so a crash never leaves a half-written result. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
    renameSync(tmp, path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (!err?.code) throw e;
    try { rmSync(tmp, { force: true }); } catch { /* nothing to clean up */ }
    // an unwritable --out is the user's to fix: one line naming the file, exit 2
    throw new UsageError(`cannot write ${path}: ${err.code}${err.syscall ? ` (${err.syscall})` : ''}`);
  }
}

/** Markdown table from a header row and rows. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** --model and --tokenizer, shared by every command that reads a checkpoint. */
export function modelOptions(cmd: Command): Command {
  return cmd
    .option('--model <path>', 'HF folder, .gguf, llama2.c .bin or a lowbit quantized folder (default: the bundled TinyStories-656K)')
    .option('--tokenizer <path>', 'tokenizer to use instead of the one beside the model (a folder with tokenizer.json, or a tok*.bin)');
}
