/**
 * GPTQ of one whole LLaMA-3-8B decoder block (random bf16 weights), as `lowbit quantize --method gptq` runs it:
 * the block's forward over N calibration windows per true-sequential group (k/v/q, o, up/gate, down), the
 * Hessian of each layer's inputs (on the backend's Gram op: the device for WebGPU), the solves on the host (float64;
 * with --device-solve on the WebGPU device in float32, gptq.py's precision), then the block's output. Prints seconds per block next to PyTorch running gptq.py's llama_sequential on the same
 * shapes in the same process run (bench/gptq_block_torch.py: CUDA when the backend is not the CPU and torch sees a
 * GPU, else the CPU; float32, TF32 off).
 *   node --expose-gc dist/bench/gptqBlock.js [--backend cpu|webgpu] [--samples N] [--seqlen T] [--threads N]
 *     [--hessian f64|f32] [--device-solve] [--no-torch]
 * Defaults: 4 windows of 2048 tokens (the figure is 128 × 2048: --samples 128).
 */
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createBackend } from '../src/cli/backendOptions.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { quantizeBlocks } from '../src/quant/pipeline.js';
import { getMethod, METHODS } from '../src/quant/registry.js';
import { allOptions, resolveOptions } from '../src/quant/options.js';
import type { HessianPrecision } from '../src/quant/core/hessian.js';
import { randomLlama3Blocks } from './randomSource.js';
import { torchPython } from './python.js';

const argv = process.argv.slice(2);
const opt = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const backend = opt('--backend') ?? 'cpu';
const samples = Number(opt('--samples') ?? 4);
const seqlen = Number(opt('--seqlen') ?? 2048);
const threads = Number(opt('--threads') ?? availableParallelism());
const hessian = (opt('--hessian') ?? 'f64') as HessianPrecision;

const ckpt = randomLlama3Blocks(1);
const be = await createBackend({ backend, threads });
let s = 12345;
const windows = Array.from({ length: samples }, () => Int32Array.from({ length: seqlen }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % 128256; }));
const method = getMethod('gptq');
const deviceSolve = argv.includes('--device-solve');
const options = resolveOptions(method, deviceSolve ? { deviceSolve: true } : {}, allOptions(METHODS));
let blockStart = 0, blockEnd = 0;
const layerSeconds: Record<string, number> = {};
let last = 0;
const t0 = performance.now();
await quantizeBlocks(ckpt, be, {
  method, spec: { bits: 4, groupSize: 128, sym: false, scaleDtype: 'f32' }, options, seed: 0, trueSequential: true,
  hessianPrecision: hessian, calibration: windows, reportErrors: false,
  onLayer: (l) => { const now = performance.now(); layerSeconds[l.name.split('.').slice(-2).join('.')] = +((now - last) / 1000).toFixed(2); last = now; },
  onProgress: (p) => {
    if (p.phase === 'block' && blockStart === 0) { blockStart = performance.now(); last = blockStart; }
    if (p.phase === 'head' && blockEnd === 0) blockEnd = performance.now();
  },
});
const end = performance.now();
const blockSeconds = ((blockEnd || end) - blockStart) / 1000;
const lowbit = {
  bench: 'gptq-block', label: 'random LLaMA-3-8B block, W4 g128 asym, true-sequential', backend: be.description, hessian, solve: deviceSolve ? 'device, float32' : 'host, float64', samples, seqlen,
  blockSeconds: +blockSeconds.toFixed(2), totalSeconds: +((end - t0) / 1000).toFixed(2),
  note: 'layer seconds run from the previous layer written to this one (forwards of its group included)', layerSeconds,
};
console.log(JSON.stringify(lowbit));

if (!argv.includes('--no-torch')) {
  const py = torchPython();
  if (!py) console.log(JSON.stringify({ bench: 'gptq-block-vs-torch', torch: "absent (python3 -c 'import torch' fails)" }));
  else {
    const cuda = backend !== 'cpu' && spawnSync(py, ['-c', 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)']).status === 0;
    const r = spawnSync(py, [join(PACKAGE_ROOT, 'bench', 'gptq_block_torch.py'), String(threads), String(samples), String(seqlen), cuda ? 'cuda' : 'cpu'], { encoding: 'utf8' });
    const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    let torch: { blockSeconds: number; device: string } | undefined;
    try { torch = JSON.parse(line); } catch { /* reported below */ }
    if (!torch) console.log(JSON.stringify({ bench: 'gptq-block-vs-torch', error: (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' | ') }));
    else {
      console.log(line);
      console.log(JSON.stringify({
        bench: 'gptq-block-vs-torch', samples, seqlen, lowbitBackend: be.description, torchDevice: torch.device,
        lowbitBlockSeconds: lowbit.blockSeconds, torchBlockSeconds: torch.blockSeconds,
        ratio: +(lowbit.blockSeconds / torch.blockSeconds).toFixed(2), target: 'ratio <= 1 (no slower than gptq.py)',
      }));
    }
  }
}
process.exit(0);
