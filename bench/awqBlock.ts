// AWQ on one decoder block of LLaMA-3-8B shape (random bf16 weights), next to GPTQ on the same block and
// calibration tokens, and the Hessian accumulation of one block before and after statistics were
// de-duplicated per shared input (q/k/v read one input, gate/up another: 7 accumulations became 4).
// Usage: node dist/bench/awqBlock.js [sequences=4] [seqlen=512] [--threads N] [--backend cpu|webgpu]
// (WebGPU: the forward passes, AWQ's scale and clip searches and GPTQ's Gram on the device; the host Hessian comparison is skipped.)
// AWQ keeps every linear's calibration inputs of the block in float32 (attention input, attention output,
// MLP input: 3 × tokens × 4096; MLP activation: tokens × 14336): 28 × 4096 × 4 bytes per token, about 7 GiB
// for llm-awq's own 128 × 512 tokens and 28 GiB for 128 × 2048, beyond this machine; the default is smaller
// and time grows linearly with the tokens. No PyTorch anchor (llm-awq needs a GPU and its own data).
import { availableParallelism } from 'node:os';
import { createBackend } from '../src/cli/backendOptions.js';
import { quantizeBlocks } from '../src/quant/pipeline.js';
import { getMethod } from '../src/quant/registry.js';
import { resolveOptions } from '../src/quant/options.js';
import { HessianAccumulator } from '../src/quant/core/hessian.js';
import { LazyRandomSource, LLAMA3_8B_2BLOCKS } from './randomSource.js';
import type { ModelCheckpoint } from '../src/io/checkpoint.js';

const argv = process.argv.slice(2);
const ti = argv.indexOf('--threads'), bi = argv.indexOf('--backend');
const threads = ti >= 0 ? Number(argv[ti + 1]) : availableParallelism();
const backend = bi >= 0 ? argv[bi + 1] : 'cpu';
const [seqArg = '4', lenArg = '512'] = argv.filter((a, i) => !a.startsWith('--') && !(ti >= 0 && i === ti + 1) && !(bi >= 0 && i === bi + 1));
const sequences = Number(seqArg), seqlen = Number(lenArg);
const cfg = { ...LLAMA3_8B_2BLOCKS, numLayers: 1 };
const ck: ModelCheckpoint = {
  path: 'random LLaMA-3-8B block shape, 1 block, bf16', format: 'hf', config: cfg, weights: new LazyRandomSource(cfg),
  tokenizer: { kind: 'none', description: 'none', vocabSize: cfg.vocabSize, bosId: undefined, eosId: undefined, encode: () => [], decode: () => '' },
};
const be = await createBackend({ backend, threads });
let s = 7;
const calibration = Array.from({ length: sequences }, () => Int32Array.from({ length: seqlen }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % cfg.vocabSize; }));
const spec = { bits: 4, groupSize: 128, sym: false, scaleDtype: 'f32' as const };

async function timeMethod(name: 'awq' | 'gptq'): Promise<number> {
  const m = getMethod(name);
  const t0 = performance.now();
  await quantizeBlocks(ck, be, { method: m, spec, options: resolveOptions(m, {}), calibration, reportErrors: false, onLayer: () => {} });
  return (performance.now() - t0) / 1000;
}

/** Seconds to accumulate Hessians of the block's linear inputs: `perInput` accumulations of each width. */
function hessianSeconds(widths: readonly number[]): number {
  const t0 = performance.now();
  for (const cols of widths) {
    const acc = new HessianAccumulator(cols, { linalg: be.hostKernels });
    const x = new Float32Array(seqlen * cols);
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
    for (let k = 0; k < sequences; k++) acc.add(x, seqlen);
    acc.finish();
  }
  return (performance.now() - t0) / 1000;
}

const D = cfg.hiddenSize, F = cfg.intermediateSize;
// the host accumulations compare two CPU layouts; a device run skips them (its Gram is in the GPTQ figure)
const onHost = be.name === 'cpu';
const before = onHost ? hessianSeconds([D, D, D, D, D, D, F]) : NaN; // q, k, v, o, gate, up, down: one accumulation per layer
const after = onHost ? hessianSeconds([D, D, D, F]) : NaN;           // attention input, attention output, MLP input, MLP activation
const gptqSeconds = await timeMethod('gptq');
const awqSeconds = await timeMethod('awq');
console.log(JSON.stringify({
  bench: 'awq-block', model: ck.path, calibration: `${sequences} × ${seqlen} tokens`, backend: be.description, spec: 'W4 g128, float32 scales',
  awqSecondsPerBlock: +awqSeconds.toFixed(1), gptqSecondsPerBlock: +gptqSeconds.toFixed(1),
  hessianSecondsPerBlock: onHost ? { perLayer: +before.toFixed(2), perSharedInput: +after.toFixed(2), saved: `${(100 * (1 - after / before)).toFixed(0)}%` } : 'not timed (host accumulations; the device run times its Gram inside GPTQ)',
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
}));
