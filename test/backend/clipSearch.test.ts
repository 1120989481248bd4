/**
 * AWQ's clip search on the backend (Backend.clipSearch, WebGPU kernels/clip.wgsl.ts): the candidates equal
 * the host's clampQuantizeGroup bit for bit (ties, constant groups, clamps to 0, fp16 scales down to fp16's
 * subnormals and up to its overflow, weights split in row parts); on the bundled model the steps chosen on
 * WebGPU agree with the host search's on the same inputs for at least 99% of (row, group) entries, and the
 * checkpoint's perplexity is the host-clipped one's within 1e-4 relative. The products come from the GEMM,
 * so the steps cannot be the host's bit for bit. Without an adapter the cases are skipped with the reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, BTensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { evaluatePpl } from '../../src/eval/ppl.js';
import { openModel } from '../../src/io/open.js';
import { quantizeModel } from '../../src/quant/quantizeModel.js';
import { clampQuantizeGroup } from '../../src/quant/methods/awqQuantizer.js';
import { CLIP_STEPS, clipStepsOnHost } from '../../src/quant/methods/awqClip.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { DATA, TINY656K } from '../helpers/paths.js';
import { randF32 } from './kernelCases.js';
import { withoutOps } from './withoutOps.js';

const cpu = new CpuBackend(jsKernels, 'js, 1 thread');
const made = await createWebGpuBackend(jsKernels, 'js, 1 thread');
const gpu = made.ok ? made.backend : undefined;
// a 1 KiB binding limit: weights of more than 256 floats in row parts; 16 tokens, 2 steps and groups of 8
// give chunks of 5 rows (the GEMM output [16, 3·5] within 1 KiB)
const split = made.ok ? await createWebGpuBackend(jsKernels, 'js, 1 thread', { maxBinding: 1024 }) : undefined;
const skip = made.ok ? false : `WebGPU unavailable: ${made.reason}`;
if (!made.ok) console.log(`# clipSearch: WebGPU cases skipped: ${made.reason}`);

interface Case { rows: number; cols: number; gs: number; bits: number; f16: boolean; steps: number; w: Float32Array; mv: Float32Array }

/** Weights and bounds [steps, rows, groups] with the cases a float32 port gets wrong first. */
function cases(small: boolean): Case[] {
  const out: Case[] = [];
  let seed = 7;
  const shapes = small ? [[20, 16, 8, 2]] : [[5, 64, 32, 10], [3, 96, 96, 10], [9, 256, 128, 4], [2, 8, 8, 10]];
  for (const [rows, cols, gs, steps] of shapes as [number, number, number, number][]) {
    for (const bits of [2, 3, 4, 8]) {
      for (const f16 of [false, true]) {
        const groups = cols / gs, maxq = 2 ** bits - 1;
        const w = randF32(rows * cols, seed++, 2);
        // row 0, first group: values on the grid's half-way points (ties, to even) once clamped to ±maxq
        for (let c = 0; c < gs; c++) w[c] = c === 0 ? 0 : c === 1 ? maxq : (c % maxq) + 0.5;
        // row 1: a constant group (range below 1e-5) and groups of tiny values (fp16-subnormal scales)
        if (rows > 1) for (let c = 0; c < cols; c++) w[cols + c] = c < gs ? 0.375 : Math.fround(3e-7 * ((c % 5) - 2));
        // the last row: huge values, an fp16 scale above 65504
        for (let c = 0; c < cols; c++) w[(rows - 1) * cols + c] = Math.fround(3e6 * Math.sin(c + 1));
        const mv = new Float32Array(steps * rows * groups);
        for (let i = 0; i < steps; i++) {
          for (let r = 0; r < rows; r++) {
            for (let g = 0; g < groups; g++) {
              let m = 0;
              for (let c = 0; c < gs; c++) m = Math.max(m, Math.abs(w[r * cols + g * gs + c]!));
              // the search's bounds, then a bound at 0 (every weight clamped to 0), one above the max (no
              // clamp), one on a weight's value
              const k = (i * rows + r) * groups + g;
              mv[k] = i === steps - 1 ? 0 : i === steps - 2 ? m * 2 : i === 1 ? Math.abs(w[r * cols + g * gs + 1]!) : Math.fround(m * (1 - i / 20));
            }
          }
        }
        out.push({ rows, cols, gs, bits, f16, steps, w, mv });
      }
    }
  }
  return out;
}

/** clampQuantizeGroup of every (step, row, group): [steps, rows, cols]. */
function onHost(k: Case): Float32Array {
  const out = new Float32Array(k.steps * k.rows * k.cols), q = new Float32Array(k.rows * k.cols), groups = k.cols / k.gs;
  for (let i = 0; i < k.steps; i++) {
    for (let r = 0; r < k.rows; r++) {
      for (let g = 0; g < groups; g++) {
        const from = r * k.cols + g * k.gs;
        let mn = Infinity, mx = -Infinity;
        for (let j = from; j < from + k.gs; j++) { mn = Math.min(mn, k.w[j]!); mx = Math.max(mx, k.w[j]!); }
        clampQuantizeGroup(k.w, from, k.gs, k.mv[(i * k.rows + r) * groups + g]!, mn, mx, k.bits, k.f16 ? 'f16' : 'f32', q);
      }
    }
    out.set(q, i * k.rows * k.cols);
  }
  return out;
}

function uploads(be: Backend, k: Case, n: number): BTensor[] {
  return [be.upload(randF32(n * k.cols, 99), [n, k.cols]), be.uploadWeight(new Tensor('f32', [k.rows, k.cols], k.w)), be.upload(k.mv, [k.steps, k.rows, k.cols / k.gs])];
}

async function candidates(be: WebGpuBackend, k: Case, n: number): Promise<Float32Array> {
  const [x, w, m] = uploads(be, k, n);
  try {
    return await be.clipCandidates(x!, w!, m!, { groupSize: k.gs, bits: k.bits, f16Scale: k.f16 });
  } finally { for (const t of [x!, w!, m!]) be.free(t); }
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** The backend with clipSearch spied on: each call's inputs (read back) and result. */
interface Call { x: Float32Array; n: number; w: Float32Array; rows: number; cols: number; mv: Float32Array; gs: number; bits: number; f16: boolean; steps: Uint8Array }
function spied(be: Backend, calls: Call[]): Backend {
  return new Proxy(be, {
    get: (target, key) => {
      if (key === 'clipSearch') {
        return async (x: BTensor, w: BTensor, m: BTensor, o: { groupSize: number; bits: number; f16Scale: boolean }) => {
          const steps = await target.clipSearch!(x, w, m, o);
          const [rows, cols] = w.shape as [number, number];
          calls.push({ x: await target.read(x), n: x.shape[0]!, w: await target.read(w), rows, cols, mv: await target.read(m), gs: o.groupSize, bits: o.bits, f16: o.f16Scale, steps });
          return steps;
        };
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('AWQ clip search on the backend', () => {
  it('the WebGPU candidates equal the host\'s clampQuantizeGroup bit for bit', { skip }, async () => {
    for (const k of cases(false)) {
      const tag = `${k.rows}×${k.cols} g${k.gs} ${k.bits} bits${k.f16 ? ' fp16 scales' : ''}`;
      assert.deepEqual(bits(await candidates(gpu!, k, 5)), bits(onHost(k)), tag);
    }
    assert.ok(split?.ok);
    for (const k of cases(true)) {
      assert.deepEqual(bits(await candidates(split.backend, k, 16)), bits(onHost(k)), `${k.rows}×${k.cols} g${k.gs} ${k.bits} bits${k.f16 ? ' fp16 scales' : ''}, in row parts and chunks`);
    }
  });

  it('clipSearch on random weights and tokens picks the host\'s steps (row parts and chunks too)', { skip }, async (t) => {
    for (const [be, k, n] of [[gpu!, cases(false)[4]!, 64], [split?.ok ? split.backend : gpu!, cases(true)[4]!, 16]] as const) {
      const [x, w, m] = uploads(be, k, n);
      const got = await be.clipSearch(x!, w!, m!, { groupSize: k.gs, bits: k.bits, f16Scale: k.f16 });
      for (const t of [x!, w!, m!]) be.free(t);
      const X = { x: randF32(n * k.cols, 99), n };
      const want = clipStepsOnHost({ data: k.w, rows: k.rows, cols: k.cols }, X, k.gs, k.bits, k.f16 ? 'f16' : 'f32', k.mv, jsKernels.gemm.bind(jsKernels));
      const same = got.filter((s, i) => s === want[i]).length;
      t.diagnostic(`${k.rows}×${k.cols} g${k.gs}, ${n} tokens: ${same} of ${got.length} steps agree`);
      assert.ok(same >= 0.9 * got.length, `${same} of ${got.length} steps agree`);
    }
  });

  it('clipSearch refuses bounds of the wrong shape and a group size that does not divide the columns', { skip }, async () => {
    const x = gpu!.upload(new Float32Array(24), [2, 12]), w = gpu!.uploadWeight(new Tensor('f32', [2, 12], new Float32Array(24)));
    const m = gpu!.upload(new Float32Array(2 * 2 * 3), [2, 2, 3]);
    await assert.rejects(gpu!.clipSearch(x, w, m, { groupSize: 5, bits: 4, f16Scale: false }), /group size 5 does not divide 12 columns/);
    await assert.rejects(gpu!.clipSearch(x, w, m, { groupSize: 6, bits: 4, f16Scale: false }), /bounds has shape \[2, 2, 3\], expected \[\*, 2, 2\]/);
    for (const t of [x, w, m]) gpu!.free(t);
  });

  it('AWQ on the bundled model: WebGPU\'s clip steps agree with the host search\'s on ≥ 99% of entries, perplexity within 1e-4', { skip }, async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'lowbit-clip-'));
    const awq = async (be: Backend, tag: string) => {
      const out = join(tmp, tag);
      const r = await quantizeModel(openModel(TINY656K), be, {
        method: 'awq', bits: 4, group: 32, options: { awqGrid: 5 },
        calib: 'c4', nsamples: 2, seqlen: 128, seed: 0, dataDir: DATA, out,
      });
      const ppl = (await evaluatePpl(openModel(out), cpu, 'tinystories', { seqlen: 512, limit: 2 })).ppl;
      return { ppl, blocks: r.blocks!.map((b) => b.awq as { clipSteps: Record<string, number[]>; clipSearchOn: string }) };
    };
    const calls: Call[] = [];
    const a = await awq(spied(gpu!, calls), 'op'), b = await awq(withoutOps(gpu!, ['clipSearch']), 'host');
    assert.deepEqual(a.blocks.map((x) => x.clipSearchOn), ['backend', 'backend']);
    assert.deepEqual(b.blocks.map((x) => x.clipSearchOn), ['host', 'host']);
    assert.equal(calls.length, 2 * 5);
    // the host search on the inputs each call got: the host run's own choices, since AWQ's next inputs
    // and its scale search do not depend on the clipping (its per-step counts must match)
    let same = 0, total = 0;
    calls.forEach((c, i) => {
      const want = clipStepsOnHost({ data: c.w, rows: c.rows, cols: c.cols }, { x: c.x, n: c.n }, c.gs, c.bits, c.f16 ? 'f16' : 'f32', c.mv, jsKernels.gemm.bind(jsKernels));
      const counts = new Array<number>(CLIP_STEPS).fill(0);
      for (const s of want) counts[s]!++;
      const l = ['v', 'o', 'gate', 'up', 'down'][i % 5]!;
      assert.deepEqual(counts, b.blocks[Math.floor(i / 5)]!.clipSteps[l], `block ${Math.floor(i / 5)} ${l}: the host run's counts`);
      total += want.length;
      same += c.steps.filter((s, j) => s === want[j]).length;
    });
    const rel = Math.abs(a.ppl - b.ppl) / b.ppl;
    t.diagnostic(`clip steps agree on ${same} of ${total} (${(100 * same / total).toFixed(2)}%); ppl ${a.ppl} (op) vs ${b.ppl} (host), ${rel.toExponential(2)} relative`);
    assert.ok(same >= 0.99 * total, `${same} of ${total} steps agree`);
    assert.ok(rel <= 1e-4, `ppl ${a.ppl} vs ${b.ppl}`);
  });
});
