/**
 * The fast tiled GEMM's designs (LOWBIT_WEBGPU_GEMM: capabilities.ts GEMM_CHOICES; linearFast.wgsl.ts
 * GemmPipe) must give the `tiled` design's bits exactly: every design loads the same zero-padded K
 * slices and sums each output in k order with the same operations, only the loads' timing and the
 * workgroup buffers differ. Checked through the backend for every op built on tiledGemm (linear with
 * f32 and a GPTQ decoder; linearT; matmulTN; the 'f32' Gram) on shapes that are not multiples of any tile
 * or K step (K below BK, K % 4 ≠ 0 for scalar x loads), with the device's workgroup memory, and the dense
 * linear and matmulTN with it lowered to 16 and 8 KiB (smaller tiles, `double` at BK 8), guard words after
 * every output. A design changes only the K loop, which every decoder shares through linearWithDecoder, so
 * one decoder stands for all (fastKernels.test.ts holds every decoder to the reference). The cases are few
 * on purpose: lavapipe compiles each pipeline in about two seconds, and every case is a pipeline per design.
 * The `shuffle` design (subgroups; its pipelines compile slowest) runs a part of the matrix (shuffleCase) with
 * the device's lane group (lavapipe: subgroups of 8, 8 lanes); a kernel that writes
 * which loop each workgroup took proves that those lanes take the shuffles and that 16 lanes (more than a
 * subgroup) take the fallback loop, whose bits one linear checks, and another 4 lanes' with vec4 loads of x.
 * Skipped, with the reason, without an adapter (the shuffle cases without 'subgroups').
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BTensor, TrainableBackend } from '../../src/backend/backend.js';
import { jsKernels } from '../../src/backend/cpu/kernels/js.js';
import { GEMM_CHOICES, acquireGpu, gemmChoiceOf, gemmShortfall, shuffleLanesFor, type GemmChoice } from '../../src/backend/webgpu/capabilities.js';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { directivesFirst } from '../../src/backend/webgpu/pipelines.js';
import { tuneGemm, tuneNote } from '../../src/backend/webgpu/gemmTune.js';
import { runCli } from '../cli/helpers.js';
import { gemmDesign } from '../../src/backend/webgpu/kernels/linear.js';
import { tileKey, tiledGemm, type ShuffleLanes } from '../../src/backend/webgpu/kernels/linearFast.wgsl.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpuBackend.js';
import { packGptq } from '../../src/tensor/gptqPack.js';
import { assertSameBits, randF32 } from './kernelCases.js';
import { randomGrid, weight } from './weightCases.js';

/** Workgroup memory the backends plan with: the device's (lavapipe: 32 KiB), 16 KiB, 8 KiB (the minimum the kernels need). */
const MEMORIES = [undefined, 16384, 8192] as const;

const probe = await createWebGpuBackend(jsKernels, 'js');
const skip = probe.ok ? false : `WebGPU unavailable: ${probe.reason}`;
const subgroups = probe.ok ? probe.backend.caps.subgroups : undefined;
const skipShuffle = skip || (subgroups ? false : 'the adapter lacks the WebGPU feature \'subgroups\'');
/** The designs this device runs: all but `shuffle` without subgroups. */
const DESIGNS = GEMM_CHOICES.filter((c) => c !== 'shuffle' || subgroups);

/** [M, N, K]: ragged 128×128 tiles over several K steps with K % 4 ≠ 0; 64×128 with K % 4 = 0 below 16; 128×64 with K < 8. */
const SHAPES: [number, number, number][] = [[65, 129, 130], [33, 200, 12], [129, 7, 5]];

type Op = (be: WebGpuBackend) => BTensor[];

/**
 * The cases the `shuffle` design runs (its pipelines compile slowest): the first shape's (full K slices and a
 * tail), matmulTN only with the workgroup memory lowered (64-wide tiles; linearT and the Gram read B along rows
 * at the device's).
 */
const shuffleCase = (what: string, mem: number | undefined) => what.endsWith(SHAPES[0]!.join('x')) && (mem !== undefined || !what.startsWith('matmulTN'));

/** The op's output (the first tensor it returns; guard words checked), everything it made freed. */
async function output(be: WebGpuBackend, op: Op): Promise<Float32Array> {
  const made = op(be), y = made[0]!;
  const out = await be.read(y);
  await be.checkGuards(y);
  for (const x of made) be.free(x);
  return out;
}

const linear = (M: number, K: number, makeW: (be: WebGpuBackend) => BTensor): Op => (be) => {
  const x = be.upload(randF32(M * K, M + 5 * K), [M, K]), w = makeW(be);
  return [be.linear(x, w), x, w];
};
const linearT = (M: number, N: number, makeW: (be: WebGpuBackend) => BTensor): Op => (be) => {
  const dy = be.upload(randF32(M * N, M + 3 * N), [M, N]), w = makeW(be);
  return [(be as TrainableBackend).linearT(dy, w), dy, w];
};

/** The op cases, named: [M, N, K] is x[M, K]·W[N, K]ᵀ, dy[M, N]·W, a[M, N]ᵀ·b[M, K]; `few`: the dense linear and matmulTN only. */
function cases(few: boolean): [string, Op][] {
  const out: [string, Op][] = [];
  for (const [M, N, K] of few ? SHAPES.slice(0, 1) : SHAPES) {
    out.push(
      [`linear f32 ${M}x${N}x${K}`, linear(M, K, (be) => weight(be, 'f32', [N, K], N * 7 + K))],
      [`matmulTN ${M}x${N}x${K}`, (be) => {
        const a = be.upload(randF32(M * N, 3 * M), [M, N]), b = be.upload(randF32(M * K, 5 * K), [M, K]);
        return [(be as TrainableBackend).matmulTN(a, b), a, b];
      }],
    );
    if (few || K < 8) continue;
    const gptq = packGptq(randomGrid(N, K, 3, 16, N + K, true), N, K, 3).tensors;
    out.push(
      [`linear gptq W3 g16 act-order ${M}x${N}x${K}`, linear(M, K, (be) => be.uploadQuantized(gptq))],
      [`linearT f32 ${M}x${N}x${K}`, linearT(M, N, (be) => weight(be, 'f32', [N, K], N + K))],
    );
  }
  return out;
}

/** The 'f32' Gram of two calls over x[T, K]: the Hessian's float32 GEMM (tiledGemm over the upper triangle's tiles). */
async function gramF32(be: WebGpuBackend, T: number, K: number): Promise<Float64Array> {
  const acc = be.gramAccumulator(K, 'f32');
  for (const seed of [1, 2]) {
    const x = be.upload(randF32(T * K, seed + K), [T, K]);
    be.gram(x, acc);
    be.free(x);
  }
  return be.readGram(acc);
}

describe('LOWBIT_WEBGPU_GEMM', () => {
  it('names a design or auto; unset is the adapter\'s default; an unknown value is refused in one line', () => {
    assert.equal(gemmChoiceOf(undefined), undefined);
    assert.equal(gemmChoiceOf(''), undefined);
    assert.equal(gemmChoiceOf('auto'), 'auto');
    for (const c of GEMM_CHOICES) assert.equal(gemmChoiceOf(c), c);
    assert.throws(() => gemmChoiceOf('pipelined'), (e: Error) =>
      e.message === "LOWBIT_WEBGPU_GEMM is 'pipelined'; expected auto or one of tiled, tiled8, prefetch, double, shuffle" && !e.message.includes('\n'));
  });

  it('shuffle needs the feature subgroups (one line); its lane group is the smallest subgroup within 4..16', () => {
    assert.equal(gemmShortfall('shuffle', { adapterName: 'some adapter' }), "LOWBIT_WEBGPU_GEMM=shuffle needs the WebGPU feature 'subgroups', which some adapter lacks");
    assert.equal(gemmShortfall('tiled', { adapterName: 'some adapter' }), undefined);
    assert.equal(gemmShortfall('shuffle', { adapterName: 'a', subgroups: { minSize: 32, maxSize: 32, shuffleLanes: 16 } }), undefined);
    assert.deepEqual([undefined, 4, 8, 16, 32, 64].map(shuffleLanesFor), [4, 4, 8, 16, 16, 16]);
  });

  it('its `enable subgroups;` goes to the top of the module, once (pipelines.ts: directivesFirst)', () => {
    assert.equal(directivesFirst('struct P { n: u32 };\nvar<workgroup> a: u32;\nenable subgroups;\nfn f() {}\n  enable subgroups;'),
      'enable subgroups;\nstruct P { n: u32 };\nvar<workgroup> a: u32;\nfn f() {}');
    assert.equal(directivesFirst('fn f() {}'), 'fn f() {}');
    assert.ok(tiledGemm({ bm: 64, bn: 64, bk: 16, pipe: 'shuffle' }, { rows: '1u', cols: '1u', red: '1u', a: () => '0.0', b: () => '0.0', store: '' }).includes('enable subgroups;'));
  });

  it('double-buffers at BK 16 where two 128×128 slices fit, else BK 8; pipeline keys tell the designs apart', () => {
    assert.deepEqual(gemmDesign('double', 32768), { bk: 16, pipe: 'double' });
    assert.deepEqual(gemmDesign('double', 16384), { bk: 8, pipe: 'double' });
    const keys = GEMM_CHOICES.map((c) => tileKey({ bm: 128, bn: 64, ...gemmDesign(c, 32768) }));
    assert.deepEqual(keys, ['t128x64', 't128x64k8', 't128x64p', 't128x64d', 't128x64s8']);
    assert.equal(tileKey({ bm: 64, bn: 64, ...gemmDesign('shuffle', 32768), lanes: 16 }), 't64x64s16');
    assert.deepEqual(gemmDesign('shuffle', 8192), { bk: 8, pipe: 'shuffle' }); // a 64×64 tile's buffers and flags need 8204 bytes at BK 16
  });
});

describe('GEMM designs give the tiled design\'s bits (every op on tiledGemm)', { skip }, () => {
  for (const mem of MEMORIES) {
    it(`workgroup memory ${mem ? `${mem / 1024} KiB` : 'of the device'}`, async () => {
      const made = await Promise.all(DESIGNS.map((gemm: GemmChoice) =>
        createWebGpuBackend(jsKernels, 'js', { guardWords: true, kernels: 'fast', gemm, ...(mem ? { maxWorkgroupBytes: mem } : {}) })));
      const bes = made.map((m) => { assert.ok(m.ok); return m.backend; });
      const [tiled, ...others] = bes;
      for (const [what, op] of cases(mem !== undefined)) {
        const want = await output(tiled!, op);
        for (const [i, be] of others.entries()) {
          if (DESIGNS[i + 1] === 'shuffle' && !shuffleCase(what, mem)) continue;
          assertSameBits(await output(be, op), want, `${DESIGNS[i + 1]} vs tiled: ${what}`);
        }
      }
      for (const [T, K] of mem === undefined ? [[130, 137]] as const : []) {
        const want = await gramF32(tiled!, T, K);
        for (const [i, be] of others.entries()) assertSameBits(await gramF32(be, T, K), want, `${DESIGNS[i + 1]} vs tiled: gram f32 ${T}x${K}`);
      }
    });
  }
});

/**
 * Which loop each workgroup of a shuffle GEMM took, as the kernel sees it, and the subgroup it ran on: a 64×64 tile
 * whose store writes, for every output, !shuffles (1 = the single loop; gemmShuffle.wgsl.ts), the subgroup's
 * top active lane + 1 and its active lanes, packed as fallback·10⁶ + top·10³ + active. (Not sg_bad_all read again
 * after the loop: lavapipe gave 0 there where the loop had seen 1.) A pipeline's subgroups are what the
 * implementation chose for it, not always the adapter's reported size: lavapipe at LP_NATIVE_VECTOR_WIDTH=512
 * reports 16..16 and runs some shaders 8 wide.
 */
async function shufflePath(lanes: ShuffleLanes): Promise<{ fallback: number[]; active: number[]; top: number[] }> {
  const g = await acquireGpu();
  assert.ok(g.ok);
  const gpu = new GpuDevice(g.device, g.caps);
  const n = 64, a = gpu.upload('a', randF32(n * 16, 3)), y = gpu.storage('flags', 4 * n * n);
  const pipe = gpu.pipelines.get(`test_shuffle_path_${lanes}`, () => `
struct Params { n: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${tiledGemm({ bm: 64, bn: 64, bk: 16, pipe: 'shuffle', lanes }, {
    rows: 'p.n', cols: 'p.n', red: '16u', a: (r, j) => `a[(${r}) * 16u + ${j}]`, b: (c, j) => `a[(${c}) * 16u + ${j}]`,
    store: 'y[r * C + c] = f32(select(1u, 0u, shuffles) * 1000000u + sg_top * 1000u + sg_active);',
  })}`);
  gpu.dispatch(pipe, [n], [a, y], [1, 1]);
  const out = [...new Float32Array(await gpu.read(y, 4 * n * n))];
  gpu.destroy(a, y);
  return { fallback: out.map((v) => Math.floor(v / 1e6)), top: out.map((v) => Math.floor(v / 1e3) % 1000), active: out.map((v) => v % 1000) };
}

/** LOWBIT_TEST_SHUFFLE_LANES=G (the lavapipe child run below): G lanes must take the shuffles. */
const mustShuffle = Number(process.env.LOWBIT_TEST_SHUFFLE_LANES ?? 0);

describe('the shuffle design (subgroups)', { skip: skipShuffle }, () => {
  it('a workgroup takes the shuffles exactly when each subgroup\'s active lanes are 0..a-1 with a a multiple of the lanes', async (t) => {
    let shuffled = 0;
    for (const lanes of [4, 8, 16] as const) {
      const { fallback, active, top } = await shufflePath(lanes);
      const bad = active.some((a, i) => top[i] !== a || a % lanes !== 0);
      const seen = [...new Set(active.map((a, i) => `${a} active, top ${top[i]}`))].join('; ');
      t.diagnostic(`${lanes} lanes: subgroups of ${seen}; ${bad ? 'the single loop' : 'shuffles'}`);
      assert.ok(fallback.every((f) => f === (bad ? 1 : 0)), `${lanes} lanes on subgroups of ${seen}: fallback flags ${[...new Set(fallback)]}, expected all ${bad ? 1 : 0}`);
      if (!bad) shuffled = Math.max(shuffled, lanes);
      if (lanes === mustShuffle) assert.ok(!bad, `${lanes} lanes must take the shuffles here (LOWBIT_TEST_SHUFFLE_LANES): subgroups of ${seen}`);
    }
    assert.ok(shuffled >= 4, 'no lane count took the shuffles');
  });

  it('4 and 16 lanes, and vec4 loads of x over full K slices, give the tiled design\'s bits', async () => {
    const lanes = [undefined, 4, 16] as const;
    const made = await Promise.all([{ gemm: 'tiled' as const }, ...lanes.map((shuffleLanes) => ({ gemm: 'shuffle' as const, ...(shuffleLanes ? { shuffleLanes } : {}) }))]
      .map((o) => createWebGpuBackend(jsKernels, 'js', { guardWords: true, kernels: 'fast', ...o })));
    const [tiled, ...others] = made.map((m) => { assert.ok(m.ok); return m.backend; });
    // [M, N, K, lanes]: scalar x (K % 4 ≠ 0) at 16 lanes (the fallback loop on subgroups of 8); x4 (two full
    // slices and a tail of 4; a 64×128 tile) at 4 lanes
    for (const [M, N, K, which] of [[...SHAPES[0]!, [2]], [40, 72, 36, [1]]] as const) {
      const op = linear(M, K, (be) => weight(be, 'f32', [N, K], N * 7 + K));
      const want = await output(tiled!, op);
      for (const i of which) assertSameBits(await output(others[i]!, op), want, `shuffle ${lanes[i] ?? 'device'} lanes vs tiled: linear f32 ${M}x${N}x${K}`);
    }
  });

});

describe('auto: the fastest design on the device (gemmTune.ts)', { skip }, () => {
  it('times every design the device runs and takes the fastest; the default on a software adapter is tiled, untimed', async () => {
    const g = await acquireGpu();
    assert.ok(g.ok);
    const t = await tuneGemm(g.device, g.caps, DESIGNS, [40, 72, 36]);
    assert.deepEqual(Object.keys(t.seconds), [...DESIGNS]);
    for (const s of Object.values(t.seconds)) assert.ok(s > 0 && Number.isFinite(s), `seconds ${s}`);
    assert.equal(t.seconds[t.choice], Math.min(...Object.values(t.seconds)));
    assert.equal(t.clock, g.device.features.has('timestamp-query') ? 'device' : 'wall');
    assert.match(tuneNote(t), new RegExp(`^${t.choice} \\(fastest on this device of tiled [0-9.]+ ms, .*; 40×72×36 f32, (device|wall) time\\)$`));
    if (g.caps.software && !process.env.LOWBIT_WEBGPU_GEMM) assert.equal(g.caps.gemm, 'tiled');
    if (g.caps.software && !process.env.LOWBIT_WEBGPU_GEMM) assert.equal(g.caps.gemmTune, undefined);
  });

  it('LOWBIT_WEBGPU_GEMM=auto: eval takes the tuned design, says so, and gives tiled\'s perplexity bit for bit', () => {
    const ppl = (gemm: string) => {
      const r = runCli(['eval', '--backend', 'webgpu', '--ppl', 'tinystories', '--limit', '1', '--json'], { env: { LOWBIT_WEBGPU_GEMM: gemm } });
      assert.equal(r.status, 0, r.stderr);
      const res = (JSON.parse(r.stdout) as { results: { ppl: number; backend: string }[] }).results[0]!;
      return res;
    };
    const auto = ppl('auto'), tiled = ppl('tiled');
    assert.match(auto.backend, /\(GEMM (tiled|tiled8|prefetch|double|shuffle), the fastest here\)/);
    assert.equal(auto.ppl, tiled.ppl);
  });
});

/**
 * NVIDIA's subgroups are 32 wide, so its lane group is 16 (shuffleLanesFor), which lavapipe's 8-wide subgroups never
 * run. Mesa's LP_NATIVE_VECTOR_WIDTH=1024 gives lavapipe subgroups of 32 (16 active lanes, 0..15: the partial
 * subgroups the kernel accepts): the suite above runs again in a child process so, where 16 lanes must take the shuffles.
 */
const lavapipe = probe.ok && /llvmpipe/i.test(probe.backend.caps.adapterName);
describe('the shuffle design on 32-wide subgroups (lavapipe, LP_NATIVE_VECTOR_WIDTH=1024)', {
  skip: skipShuffle || (mustShuffle ? 'this is the child run' : !lavapipe && 'the adapter is not lavapipe'),
}, () => {
  it('16 lanes take the shuffles and every lane group gives the tiled bits', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LP_NATIVE_VECTOR_WIDTH: '1024', LOWBIT_TEST_SHUFFLE_LANES: '16' };
    delete env.NODE_TEST_CONTEXT; // the child runs its own tests (else node:test skips them as a recursive run)
    const r = spawnSync(process.execPath, ['--expose-gc', '--test-name-pattern=^the shuffle design \\(subgroups\\)', fileURLToPath(import.meta.url)], { encoding: 'utf8', env });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out.split('\n').filter((l) => /not ok|error|lanes:/.test(l)).join('\n'));
    assert.match(out, /# 16 lanes: subgroups of 16 active, top 16; shuffles/);
    assert.match(out, /# pass 2\b/);
  });
});
