import type { Command } from 'commander';
import { basename } from 'node:path';
import { evaluatePpl, type PplResult } from '../eval/ppl.js';
import { createBackend, backendOptions, type BackendCliOptions } from './backendOptions.js';
import { dataDir, loadCheckpoint, modelOptions, markdownTable, modelPath, parseIntOption, parseList, Progress, writeJsonAtomic, type CommonOptions } from './common.js';

interface EvalOptions extends CommonOptions, BackendCliOptions { ppl?: string; seqlen?: string; limit?: string; out?: string }

/** Paper-style column names. */
const COLUMN: Record<string, string> = { wikitext2: 'WikiText2', ptb: 'PTB', 'ptb-new': 'PTB-new', c4: 'C4', 'c4-new': 'C4-new', tinystories: 'TinyStories' };

export function registerEval(program: Command): void {
  const cmd = program.command('eval')
    .description('evaluate a model: perplexity with the GPTQ protocol (one decoder block at a time)')
    .option('--ppl <sets>', 'comma-separated: wikitext2, ptb, ptb-new, c4, c4-new, tinystories, or text files', 'wikitext2,ptb,c4,tinystories')
    .option('--seqlen <n>', "window length (default: min(2048, the model's context))")
    .option('--limit <n>', 'only the first N windows of each set')
    .option('--data-dir <dir>', 'dataset folder laid out as shared/data (default: $LOWBIT_DATA or the bundled assets/data)')
    .option('--out <file>', 'write the results as JSON here', 'lowbit-eval.json')
    .option('--json', 'print the results as JSON on stdout (no table, no progress)');
  modelOptions(cmd);
  backendOptions(cmd);
  cmd.action(async (o: EvalOptions) => {
    const ckpt = loadCheckpoint(o);
    const be = await createBackend(o);
    const seqlenGiven = parseIntOption('--seqlen', o.seqlen, 2);
    const seqlen = seqlenGiven ?? Math.min(2048, ckpt.config.maxPositionEmbeddings);
    const limit = parseIntOption('--limit', o.limit);
    const sets = parseList('--ppl', o.ppl);
    const progress = new Progress(!!o.json);
    const results: PplResult[] = [];
    for (const set of sets) {
      progress.start(ckpt.config.numLayers + 2, `ppl ${set}`);
      results.push(await evaluatePpl(ckpt, be, set, {
        seqlen, limit, dataDir: dataDir(o),
        onProgress: (p) => progress.update(p.phase === 'embed' ? 0 : p.phase === 'head' ? p.numBlocks + 1 : p.block + 1,
          p.phase === 'block' ? `block ${p.block + 1}/${p.numBlocks}` : p.phase),
      }));
      progress.stop();
    }
    const name = basename(modelPath(o));
    const record = {
      command: 'eval', model: modelPath(o), format: ckpt.format, backend: be.description,
      seqlen, seqlenSource: seqlenGiven ? '--seqlen' : `min(2048, model context ${ckpt.config.maxPositionEmbeddings})`,
      limit: limit ?? null, results,
    };
    if (o.out) writeJsonAtomic(o.out, record);
    if (o.json) { process.stdout.write(JSON.stringify(record, null, 2) + '\n'); return; }
    console.log(`model ${name} (${ckpt.format}), ${be.description}`);
    console.log(`perplexity, GPTQ protocol: seqlen ${seqlen} (${record.seqlenSource}), BOS at the start of each stream, fp32 cross-entropy${limit ? `, LIMITED to the first ${limit} windows of each set` : ''}`);
    console.log('');
    console.log(markdownTable(['Model', ...results.map((r) => COLUMN[r.dataset] ?? r.dataset)], [[name, ...results.map((r) => r.ppl.toFixed(2))]]));
    console.log('');
    for (const r of results) {
      console.log(`${r.dataset}: ${r.tokens} tokens, ${r.windowsEvaluated}/${r.windows} windows of ${r.seqlen}, ${r.seconds.toFixed(1)} s${r.notes.length ? ` (${r.notes.join('; ')})` : ''}`);
    }
    console.log(`tokenizer: ${ckpt.tokenizer.description}`);
    if (o.out) console.log(`results written to ${o.out}`);
  });
}
