/**
 * Model-dependent: lowbit's GGUF exports loaded by llama.cpp itself (node-llama-cpp's prebuilt CPU
 * binary, never downloaded or built here), its next-token distributions on a fixed prompt compared
 * with lowbit's own forward (LlamaModel) of the checkpoint that was exported. node-llama-cpp exposes
 * probabilities (softmax of the logits), not raw logits, so the comparison is of log-probabilities,
 * which are the logits up to one constant per position. When the binary cannot load on this machine
 * every test here is skipped with the reason.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { openModel } from '../../src/io/open.js';
import { exportGguf, type GgufExportType } from '../../src/io/quantized/ggufExport.js';
import { LlamaModel } from '../../src/model/llama.js';
import { quantizeModel, type QuantizeModelOptions } from '../../src/quant/quantizeModel.js';
import { TINY656K } from '../helpers/paths.js';
import { removeScratch, scratchDir } from './mutate.js';

import type { ControlledEvaluateInputItem, Token } from 'node-llama-cpp';

type NodeLlama = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlama['getLlama']>>;

const be = new CpuBackend();
const dir = scratchDir('gguf-llamacpp');
const PROMPT = '<|start_story|>Once upon a time, there was a little girl named Lily. She loved to play';

let llama: Llama | undefined;
let skip: string | false = false;
try {
  const nlc: NodeLlama = await import('node-llama-cpp');
  llama = await nlc.getLlama({
    gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false,
    logLevel: nlc.LlamaLogLevel.error, maxThreads: 2,
  });
} catch (e) {
  skip = `node-llama-cpp's prebuilt llama.cpp binary cannot load here: ${(e as Error).message.split('\n')[0]}`;
}
after(async () => { await llama?.dispose(); removeScratch(); });

/** Next-token probabilities [T, V] that llama.cpp computes for `ids` from the GGUF file. */
async function llamaCppProbs(file: string, ids: number[], vocab: number): Promise<Float64Array> {
  const model = await llama!.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    // float32 K/V cache (llama.cpp's default is F16, which alone moves log-probabilities by ~5e-3 here)
    const ctx = await model.createContext({ contextSize: 128, batchSize: 128, threads: 2, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    const out = await ctx.getSequence().controlledEvaluate(ids.map((t): ControlledEvaluateInputItem => [t as Token, { generateNext: { probabilities: true } }]));
    const p = new Float64Array(ids.length * vocab);
    out.forEach((o, i) => {
      const probs = o?.next.probabilities;
      assert.ok(probs && probs.size === vocab, `llama.cpp gave ${probs?.size} probabilities at position ${i}`);
      for (const [tok, v] of probs) p[i * vocab + tok] = v;
    });
    await ctx.dispose();
    return p;
  } finally {
    await model.dispose();
  }
}

/** lowbit's next-token probabilities [T, V] (softmax of its logits, in float64). */
async function lowbitProbs(path: string, ids: number[], vocab: number): Promise<Float64Array> {
  const m = LlamaModel.load(openModel(path), be);
  const logits = await be.read(m.forward(Int32Array.from(ids)).logits);
  m.free();
  const p = new Float64Array(logits.length);
  for (let i = 0; i < ids.length; i++) {
    let max = -Infinity, sum = 0;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[i * vocab + v]!);
    for (let v = 0; v < vocab; v++) sum += (p[i * vocab + v] = Math.exp(logits[i * vocab + v]! - max));
    for (let v = 0; v < vocab; v++) p[i * vocab + v]! /= sum;
  }
  return p;
}

interface Agreement { maxProbDiff: number; maxLogProbDiff: number; top1: number; positions: number }

/** Max |Δp|, max |Δ log p| over tokens lowbit gives p ≥ 1e-3, and how many positions share the argmax. */
function agreement(a: Float64Array, b: Float64Array, positions: number, vocab: number): Agreement {
  let maxProbDiff = 0, maxLogProbDiff = 0, top1 = 0;
  for (let i = 0; i < positions; i++) {
    let ia = 0, ib = 0;
    for (let v = 0; v < vocab; v++) {
      const x = a[i * vocab + v]!, y = b[i * vocab + v]!;
      maxProbDiff = Math.max(maxProbDiff, Math.abs(x - y));
      if (x >= 1e-3) maxLogProbDiff = Math.max(maxLogProbDiff, Math.abs(Math.log(x) - Math.log(y)));
      if (x > a[i * vocab + ia]!) ia = v;
      if (y > b[i * vocab + ib]!) ib = v;
    }
    if (ia === ib) top1++;
  }
  return { maxProbDiff, maxLogProbDiff, top1, positions };
}

/*
 * Bounds: measured on the bundled model, 11 positions (max |Δ log p| over tokens with p ≥ 1e-3): F32 1.2e-5;
 * BF16 5.6e-2, Q8_0 0.15, Q4_0 0.12, Q4_1 0.21. Beyond F32 the gap is llama.cpp's CPU arithmetic, not the file:
 * it rounds activations to BF16 for BF16 weights and quantizes them to Q8_0/Q8_1 blocks for Q8_0/Q4_0/Q4_1
 * dot products (the weights themselves read back bit-exact in ggufExport.test.ts).
 */
const CASES: { label: string; ckpt?: Omit<QuantizeModelOptions, 'method' | 'calib' | 'out'>; type: GgufExportType; want: string; maxLogProbDiff: number; maxProbDiff: number }[] = [
  { label: 'F32 export of the float model', type: 'f32', want: 'F32', maxLogProbDiff: 1e-4, maxProbDiff: 1e-4 },
  { label: 'BF16 export (auto) of the float model', type: 'auto', want: 'BF16', maxLogProbDiff: 0.1, maxProbDiff: 1e-2 },
  { label: 'Q8_0 export of RTN W8 sym g32 (fp16 scales)', ckpt: { bits: 8, group: 32, sym: true, scaleDtype: 'f16' }, type: 'auto', want: 'Q8_0', maxLogProbDiff: 0.25, maxProbDiff: 2e-2 },
  { label: 'Q4_0 export of RTN W4 sym g32 (fp16 scales)', ckpt: { bits: 4, group: 32, sym: true, scaleDtype: 'f16' }, type: 'auto', want: 'Q4_0', maxLogProbDiff: 0.25, maxProbDiff: 2e-2 },
  { label: 'Q4_1 export of RTN W4 g32 (fp16 scales)', ckpt: { bits: 4, group: 32, scaleDtype: 'f16' }, type: 'auto', want: 'Q4_1', maxLogProbDiff: 0.3, maxProbDiff: 2e-2 },
];

for (const c of CASES) {
  test(`llama.cpp loads the ${c.label} and its next-token distributions agree with lowbit's forward`, { skip }, async (t) => {
    let src = TINY656K;
    if (c.ckpt) {
      src = join(dir, c.want);
      await quantizeModel(openModel(TINY656K), be, { method: 'rtn', calib: 'none', out: src, ...c.ckpt });
    }
    const file = join(dir, `${c.want}.gguf`);
    const r = exportGguf(src, file, { type: c.type, requantize: false });
    assert.ok(r.tensors.some((x) => x.type === c.want));
    const ck = openModel(src);
    const ids = ck.tokenizer.encode(PROMPT.replace('<|start_story|>', ''), { bos: true });
    const vocab = ck.config.vocabSize;
    const a = agreement(await lowbitProbs(src, ids, vocab), await llamaCppProbs(file, ids, vocab), ids.length, vocab);
    t.diagnostic(`${c.label}: ${ids.length} positions, max |Δp| ${a.maxProbDiff.toExponential(2)}, max |Δ log p| (p ≥ 1e-3) ${a.maxLogProbDiff.toExponential(2)}, ` +
      `top-1 agrees at ${a.top1}/${a.positions}; export max weight change ${r.maxAbsChange.toExponential(2)}`);
    assert.equal(a.top1, a.positions, 'top-1 token at every position');
    assert.ok(a.maxLogProbDiff <= c.maxLogProbDiff, `max |Δ log p| ${a.maxLogProbDiff} > ${c.maxLogProbDiff}`);
    assert.ok(a.maxProbDiff <= c.maxProbDiff, `max |Δp| ${a.maxProbDiff} > ${c.maxProbDiff}`);
  });
}
