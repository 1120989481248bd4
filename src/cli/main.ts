import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { PACKAGE_ROOT } from '../paths.js';
import { LowbitError } from '../errors.js';
import { registerBench } from './bench.js';
import { registerEval } from './eval.js';
import { registerExport } from './export.js';
import { registerFinetune } from './finetune.js';
import { registerGenerate } from './generate.js';
import { registerInfo } from './info.js';
import { registerQuantize } from './quantize.js';
import { registerReport } from './report.js';
import { registerStudy } from './study.js';
import { registerWorker } from './worker.js';
import { resolveHubOptions } from './hub.js';

/** Runs the lowbit CLI; returns the exit code (0 ok, 2 bad input, 1 internal error). */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('lowbit')
    .description('quantize LLaMA-family models to 1-8 bits and measure what it costs')
    .version(packageVersion(), '-V, --version', 'print the lowbit version')
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      // commander's own errors (unknown option or command, missing argument) as one `lowbit: ...` line
      outputError: (s, write) => write(`lowbit: ${s.replace(/^error: /, '').trimEnd().replace(/\s*\n\s*/g, ' ')}\n`),
    });
  registerEval(program);
  registerInfo(program);
  registerGenerate(program);
  registerQuantize(program);
  registerStudy(program);
  registerReport(program);
  registerExport(program);
  registerBench(program);
  registerFinetune(program);
  registerWorker(program);
  program.hook('preAction', (_program, action) => resolveHubOptions(action));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof LowbitError) {
      process.stderr.write(`lowbit: ${e.message}\n`);
      return 2;
    }
    const err = e as Error;
    process.stderr.write(`lowbit: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.LOWBIT_DEBUG) process.stderr.write(`${err?.stack}\n`);
    else process.stderr.write('(set LOWBIT_DEBUG=1 for the stack trace)\n');
    return 1;
  }
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}
