import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { exportGptqFp16Scales } from '../io/quantized/export.js';
import { exportGguf, GGUF_TYPES, type GgufExportType } from '../io/quantized/ggufExport.js';
import { UsageError } from '../errors.js';
import { fmtInt } from './common.js';

interface ExportOptions { model: string; out: string; format: string; type: string; requantize?: boolean; force?: boolean; json?: boolean }

export function registerExport(program: Command): void {
  program.command('export')
    .description('convert a checkpoint for other tools: --format gptq writes fp16 scales (AutoGPTQ / GPTQModel); --format gguf writes one llama.cpp GGUF file; each says what that changed')
    .requiredOption('--model <dir>', 'a folder written by lowbit quantize (gguf: any checkpoint lowbit opens)')
    .requiredOption('--out <path>', 'gptq: output folder (new or empty; an existing lowbit checkpoint only with --force); gguf: output .gguf file')
    .option('--format <name>', 'gptq: AutoGPTQ v1 layout with fp16 scales; gguf: llama.cpp GGUF v3', 'gptq')
    .option('--type <name>', `gguf: ${GGUF_TYPES.join('|')}; auto keeps each layer's own grid (Q4_0/Q4_1/Q8_0) or float type`, 'auto')
    .option('--requantize', 'gguf: re-quantize, with llama.cpp\'s rule, the layers the type cannot hold exactly (else they are refused)')
    .option('--force', 'replace what is already at --out')
    .option('--json', 'print what changed as JSON')
    .action((o: ExportOptions) => {
      if (o.format === 'gguf') return runGguf(o);
      if (o.format !== 'gptq') throw new UsageError(`--format must be gptq or gguf (got '${o.format}')`);
      if (o.requantize || o.type !== 'auto') throw new UsageError('--type and --requantize apply to --format gguf');
      const r = exportGptqFp16Scales(resolve(o.model), resolve(o.out), !!o.force);
      if (o.json) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return; }
      console.log(`scales: ${fmtInt(r.scalesChanged)} of ${fmtInt(r.scales)} changed by rounding to fp16 in ${fmtInt(r.layersConverted)} float32 layer(s); ` +
        `largest relative change ${(100 * r.maxRelativeScaleChange).toPrecision(3)}%`);
      console.log(`note: ${r.note}`);
      console.log(`written to ${resolve(o.out)} (evaluate it with: lowbit eval --model ${o.out})`);
    });
}

function runGguf(o: ExportOptions): void {
  if (!(GGUF_TYPES as readonly string[]).includes(o.type)) throw new UsageError(`--type must be one of ${GGUF_TYPES.join(', ')} (got '${o.type}')`);
  const out = resolve(o.out);
  if (existsSync(out) && !o.force) throw new UsageError(`${out} already exists (pass --force to replace it)`);
  const r = exportGguf(resolve(o.model), out, { type: o.type as GgufExportType, requantize: !!o.requantize });
  if (o.json) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return; }
  const count = (how: string) => r.tensors.filter((t) => t.how === how).length;
  const types = [...new Set(r.tensors.map((t) => t.type))].join(', ');
  console.log(`${r.tensors.length} tensors (${types}): ${count('exact')} exact, ${count('rounded')} with Q4_1's m rounded to fp16, ${count('requantized')} re-quantized`);
  console.log(r.exact ? 'the GGUF weights equal the checkpoint\'s' : `largest weight change ${r.maxAbsChange.toExponential(3)} (per tensor: --json)`);
  console.log(`written to ${out}`);
}
