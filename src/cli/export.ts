import type { Command } from 'commander';
import { resolve } from 'node:path';
import { exportGptqFp16Scales } from '../io/quantized/export.js';
import { UsageError } from '../errors.js';
import { fmtInt } from './common.js';

interface ExportOptions { model: string; out: string; format: string; force?: boolean; json?: boolean }

export function registerExport(program: Command): void {
  program.command('export')
    .description('convert a lowbit checkpoint for other tools: --format gptq writes fp16 scales (AutoGPTQ / GPTQModel), and says what that changed')
    .requiredOption('--model <dir>', 'a folder written by lowbit quantize')
    .requiredOption('--out <dir>', 'output folder (new or empty; an existing lowbit checkpoint only with --force)')
    .option('--format <name>', 'gptq: AutoGPTQ v1 layout with fp16 scales', 'gptq')
    .option('--force', 'replace a lowbit checkpoint already in --out')
    .option('--json', 'print what changed as JSON')
    .action((o: ExportOptions) => {
      if (o.format !== 'gptq') throw new UsageError(`--format must be gptq (got '${o.format}')`);
      const r = exportGptqFp16Scales(resolve(o.model), resolve(o.out), !!o.force);
      if (o.json) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return; }
      console.log(`scales: ${fmtInt(r.scalesChanged)} of ${fmtInt(r.scales)} changed by rounding to fp16 in ${fmtInt(r.layersConverted)} float32 layer(s); ` +
        `largest relative change ${(100 * r.maxRelativeScaleChange).toPrecision(3)}%`);
      console.log(`note: ${r.note}`);
      console.log(`written to ${resolve(o.out)} (evaluate it with: lowbit eval --model ${o.out})`);
    });
}
