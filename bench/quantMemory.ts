// Peak resident memory (and time) of quantizing a random model of LLaMA-3-8B block shapes, 2 blocks,
// one block at a time with calibration statistics for every layer.
// Usage: node --expose-gc dist/bench/quantMemory.js [rtn|gptq] [nsamples] [seqlen]
import { quantizeBlocks } from '../src/quant/pipeline.js';
import { getMethod } from '../src/quant/registry.js';
import { resolveOptions } from '../src/quant/options.js';
import { createBackend } from '../src/cli/backendOptions.js';
import { randomLlama3Blocks } from './randomSource.js';

const [method = 'rtn', ns = '4', sl = '128'] = process.argv.slice(2);
const be = await createBackend({});
const ck = randomLlama3Blocks();
let s = 99;
const calibration = Array.from({ length: Number(ns) }, () => Int32Array.from({ length: Number(sl) }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % 128256; }));
const t0 = performance.now();
let packedBytes = 0;
const reports = await quantizeBlocks(ck, be, {
  method: getMethod(method), spec: { bits: 4, groupSize: 128, sym: false, scaleDtype: 'f16' },
  options: resolveOptions(getMethod(method), {}), calibration, onLayer: (l) => { if ('grid' in l.out.stored) packedBytes += l.out.stored.grid.codes.length / 2; },
});
const blockWeightsMiB = (2 * 218_103_808) / 2 ** 20; // one block's bf16 weights: 4096·(4096+1024+1024+4096) + 3·4096·14336 params
console.log(JSON.stringify({
  bench: 'quantize-memory', model: ck.path, method, calibration: `${ns} × ${sl} tokens`, backend: be.description, layers: reports.length,
  seconds: +((performance.now() - t0) / 1000).toFixed(1), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  oneBlockBf16MiB: Math.round(blockWeightsMiB), packedCodesMiB: Math.round(packedBytes / 2 ** 20),
}));
