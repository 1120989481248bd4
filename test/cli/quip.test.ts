// QuIP through the CLI, as the README runs it, and its bad-input cases: one line naming the layer or the
// option and the reason, exit code 2, nothing written.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TINY656K } from '../helpers/paths.js';
import { randomCheckpoint, SMALL_GQA_LLAMA3 } from '../helpers/randomModel.js';
import { toHfConfigJson } from '../../src/io/hfConfigWrite.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch } from './helpers.js';

after(cleanup);

test('quantize --method quip, then eval and bench: the checkpoint is the quip kind, the report says how it was made', async () => {
  const dir = scratch();
  const q = await runCliAsync(['quantize', '--method', 'quip', '--wbits', '3', '--no-quip-fp16', '--nsamples', '4', '--seqlen', '128', '--seed', '3', '--out', 'q3', '--json'], { cwd: dir });
  assertOk(q);
  const r = JSON.parse(q.stdout) as { method: string; settings: Record<string, unknown>; calibration: { seed: number }; totalError: number };
  assert.equal(r.method, 'quip');
  assert.deepEqual([r.settings.format, r.settings.quipFp16, r.settings.groupSize, r.settings.trueSequential, r.settings.nominalBits], ['quip', false, -1, false, 3]);
  assert.equal(r.calibration.seed, 3);
  assert.ok(r.totalError > 0);
  const qc = JSON.parse(readFileSync(join(dir, 'q3', 'quantize_config.json'), 'utf8'));
  assert.deepEqual([qc.quant_method, qc.kind, qc.bits], ['lowbit', 'quip', 3]);
  const [e, b] = await Promise.all([
    runCliAsync(['eval', '--model', 'q3', '--ppl', 'tinystories', '--limit', '1', '--json'], { cwd: dir }),
    runCliAsync(['bench', '--model', 'q3', '--reps', '1', '--warmup', '0', '--prompt-tokens', '8', '--decode-tokens', '2', '--json'], { cwd: dir }),
  ]);
  assertOk(e);
  const ev = JSON.parse(e.stdout) as { format: string; results: { dataset: string; ppl: number }[] };
  assert.equal(ev.format, 'lowbit-quip');
  assert.equal(ev.results[0]!.dataset, 'tinystories');
  assert.ok(Number.isFinite(ev.results[0]!.ppl) && ev.results[0]!.ppl > 1);
  assertOk(b);
  const bits = (JSON.parse(b.stdout) as { bitsPerWeight: { storedLinear: number; nominal: number } }).bitsPerWeight;
  assert.equal(bits.nominal, 3);
  assert.ok(bits.storedLinear > 3 && bits.storedLinear < 3.3, `${bits.storedLinear}`);
});

/** An HF folder of a random one-block model whose MLP width is the prime 4099 (the bundled tokenizer). */
function primeModel(): string {
  const cfg = { ...SMALL_GQA_LLAMA3, hiddenSize: 16, intermediateSize: 4099, numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 8, vocabSize: 2048, ropeScaling: null };
  const ck = randomCheckpoint(cfg, 3);
  const dir = scratch('prime');
  writeSafetensors(join(dir, 'model.safetensors'), ck.weights.list().map((t) => ({ name: t.name, tensor: ck.weights.read(t.name) })));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(cfg, 'float32')));
  copyFileSync(join(TINY656K, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return dir;
}

test('bad QuIP settings and an unfactorable dimension: one line naming the option or the layer, exit 2, nothing written', async () => {
  const dir = scratch();
  const prime = primeModel();
  const q = (...a: string[]) => ['quantize', '--method', 'quip', '--nsamples', '2', '--seqlen', '32', '--out', 'x', ...a];
  const cases: [string[], string[], RegExp?][] = [
    [q('--wbits', '1'), ['quip', '2, 3, 4 bits', 'not 1']],
    [q('--wbits', '8'), ['quip', 'not 8']],
    [q('--group', '128'), ['quip', '--group 128'], /one grid scale per matrix/],
    [q('--percdamp', '-1'), ['--percdamp']],
    [q('--calib', 'none'), ['quip', 'calibration']],
    [q('--model', prime), ['model.layers.0.mlp.gate_proj', '4099'], /4099 is a prime above 4096/],
  ];
  const results = await pool(cases, 3, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names, re], i) => assertBadInput(results[i]!, names, re));
  assert.equal(existsSync(join(dir, 'x')), false);
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('x')), [], 'no temporary folder left beside it');
});
