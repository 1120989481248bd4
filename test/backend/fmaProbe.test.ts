/**
 * The fma probe (src/backend/webgpu/fmaProbe.ts): the host's verdict on a fused device's answers (the exact
 * ones) and on a multiply-then-add device's (fl(fl(a·b) + c)), the cases' exact answers checked against an
 * independent emulation of one rounding, LOWBIT_WEBGPU_FMA's values, and on this adapter the probe's own
 * answer: on lavapipe (llvmpipe lowers fma to a multiply and an add) it is not fused. The env override is
 * read once per process at acquisition, so it is checked in child processes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fmaChoice, fmaProbeCases, fmaVerdict, probeFma } from '../../src/backend/webgpu/fmaProbe.js';
import { acquireGpu } from '../../src/backend/webgpu/capabilities.js';
import { fma32 } from './gramEmulation.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const f = Math.fround;
const cases = fmaProbeCases();
const n = cases.want.length;
const unfused = Float32Array.from({ length: n }, (_, i) => f(f(cases.a[i]! * cases.b[i]!) + cases.c[i]!));

describe('the fma probe on the host', () => {
  it('256 float32 cases whose exact answers are one rounding of a·b + c (an independent emulation agrees)', () => {
    assert.equal(n, 256);
    for (let i = 0; i < n; i++) {
      for (const v of [cases.a[i]!, cases.b[i]!, cases.c[i]!]) assert.equal(f(v), v);
      const p = Math.abs(cases.a[i]! * cases.b[i]!);
      assert.ok(p >= 2 ** -60 && p <= 2 ** 60, `case ${i}: |a·b| = ${p}`);
      assert.ok(Object.is(fma32(cases.a[i]!, cases.b[i]!, cases.c[i]!), cases.want[i]), `case ${i}`);
    }
  });

  it('a multiply then an add misses most cases; the verdict: fused only when every answer is exact', () => {
    const missed = cases.want.filter((w, i) => !Object.is(w, unfused[i])).length;
    assert.ok(missed > n / 2, `a multiply-then-add device misses only ${missed} of ${n}`);
    assert.deepEqual(fmaVerdict(cases, Float32Array.from(cases.want)), { fused: true });
    const v = fmaVerdict(cases, unfused);
    assert.equal(v.fused, false);
    assert.match(v.miss!, /^fma\(.+, .+, .+\) gave .+, exactly .+$/);
    // one answer one ulp off is enough to refuse; so is a short read
    const oneOff = Float32Array.from(cases.want);
    new Uint32Array(oneOff.buffer)[n - 1]! += 1;
    assert.equal(fmaVerdict(cases, oneOff).fused, false);
    assert.deepEqual(fmaVerdict(cases, oneOff.subarray(1)), { fused: false, miss: `255 answers for 256 cases` });
  });

  it('LOWBIT_WEBGPU_FMA: probe (default) or off; anything else refused in one line', () => {
    const old = process.env.LOWBIT_WEBGPU_FMA;
    try {
      for (const [v, want] of [[undefined, 'probe'], ['', 'probe'], ['probe', 'probe'], ['off', 'off']] as const) {
        if (v === undefined) delete process.env.LOWBIT_WEBGPU_FMA; else process.env.LOWBIT_WEBGPU_FMA = v;
        assert.equal(fmaChoice(), want);
      }
      process.env.LOWBIT_WEBGPU_FMA = 'on';
      assert.throws(() => fmaChoice(), /^Error: LOWBIT_WEBGPU_FMA is 'on'; expected 'probe' or 'off'$/);
    } finally {
      if (old === undefined) delete process.env.LOWBIT_WEBGPU_FMA; else process.env.LOWBIT_WEBGPU_FMA = old;
    }
  });
});

const g = await acquireGpu();
const skip = g.ok ? false : `WebGPU unavailable: ${g.reason}`;

describe('the fma probe on this adapter', { skip }, () => {
  const { device, caps } = g.ok ? g : undefined as never;

  it('caps say what the probe says (once per process); on lavapipe: not fused', async () => {
    console.log(`# fma probe on ${caps.adapterName}: ${caps.fmaProbe}`);
    const again = await probeFma(device);
    if (process.env.LOWBIT_WEBGPU_FMA !== 'off') assert.equal(caps.fmaFused, again.fused);
    assert.equal(caps.fmaProbe, caps.fmaFused ? 'fused' : process.env.LOWBIT_WEBGPU_FMA === 'off' ? 'off (LOWBIT_WEBGPU_FMA=off)' : `not fused: ${again.miss}`);
    if (/llvmpipe/i.test(caps.adapterName)) {
      assert.equal(again.fused, false);
      assert.match(caps.fmaProbe, /^not fused: fma\(/);
    }
  });

  it('LOWBIT_WEBGPU_FMA=off skips the probe; another value makes acquisition fail with that one line', () => {
    const script = `const { acquireGpu } = await import(${JSON.stringify(join(PACKAGE_ROOT, 'dist', 'src', 'backend', 'webgpu', 'capabilities.js'))});
const g = await acquireGpu();
console.log(JSON.stringify(g.ok ? { fused: g.caps.fmaFused, probe: g.caps.fmaProbe } : { reason: g.reason }));
process.exit(0);`;
    const run = (v: string) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, LOWBIT_WEBGPU_FMA: v } });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    };
    assert.deepEqual(run('off'), { fused: false, probe: 'off (LOWBIT_WEBGPU_FMA=off)' });
    assert.deepEqual(run('fused'), { reason: "WebGPU failed: LOWBIT_WEBGPU_FMA is 'fused'; expected 'probe' or 'off'" });
  });
});
