// Block-streamed perplexity speed and peak resident memory.
// Usage: node dist/bench/pplSpeed.js bundled|llama3-8b [windows] [seqlen]
import { openModel } from '../src/io/open.js';
import { DEFAULT_MODEL } from '../src/paths.js';
import { evaluatePpl } from '../src/eval/ppl.js';
import { streamedNll } from '../src/model/stream.js';
import { createBackend } from '../src/cli/backendOptions.js';
import { randomLlama3Blocks } from './randomSource.js';

const [which = 'bundled', winArg, seqArg] = process.argv.slice(2);
const be = await createBackend({ backend: 'cpu' });
const t0 = performance.now();
let tokens = 0, label = '';
if (which === 'bundled') {
  const r = await evaluatePpl(openModel(DEFAULT_MODEL), be, 'tinystories', { seqlen: Number(seqArg ?? 512), limit: winArg ? Number(winArg) : undefined });
  tokens = r.windowsEvaluated * r.seqlen;
  label = `TinyStories-656K, tinystories, ${r.windowsEvaluated} windows × ${r.seqlen}, ppl ${r.ppl.toFixed(3)}`;
} else {
  const ck = randomLlama3Blocks();
  const windows = Number(winArg ?? 1), seqlen = Number(seqArg ?? 128);
  let s = 12345;
  const seqs = Array.from({ length: windows }, () => Int32Array.from({ length: seqlen }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % 128256; }));
  await streamedNll(ck, be, seqs);
  tokens = windows * seqlen;
  label = `random LLaMA-3-8B block shapes (2 blocks, bf16), ${windows} windows × ${seqlen}`;
}
const sec = (performance.now() - t0) / 1000;
const peakMiB = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ bench: 'ppl', label, backend: be.description, tokens, seconds: +sec.toFixed(2), tokensPerSecond: +(tokens / sec).toFixed(1), peakRssMiB: +peakMiB.toFixed(0) }));
