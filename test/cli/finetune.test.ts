// lowbit finetune through the CLI on the bundled model and the bundled Alpaca records, as the README
// runs it: the folder holds the quantized base and a PEFT adapter, eval applies it, a rerun reports
// the finished run; bad input is one line naming the file or option, exit 2.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertBadInput, assertOk, cleanup, pool, runCliAsync, scratch, writeTemp } from './helpers.js';

after(cleanup);

test('finetune --method qlora|irqlora, then eval: base + PEFT adapter, the adapter applied', async () => {
  const dir = scratch();
  for (const [method, kind, form] of [['qlora', 'nf4dq', 'lora'], ['irqlora', 'icqdq', 'iec']] as const) {
    const f = await runCliAsync(['finetune', '--method', method, '--steps', '2', '--grad-accum', '2', '--rank', '8', '--out', method, '--json'], { cwd: dir });
    assertOk(f);
    const r = JSON.parse(f.stdout) as { status: string; losses: number[]; lora: { rank: number; alpha: number; form: string }; train: { lr: number; maxGradNorm: number; schedule: string } };
    assert.equal(r.status, 'done');
    assert.equal(r.losses.length, 2);
    assert.ok(r.losses.every((l) => l > 0 && l < 20), `losses ${r.losses}`);
    assert.deepEqual([r.lora.rank, r.lora.alpha, r.lora.form, r.train.lr, r.train.maxGradNorm, r.train.schedule], [8, 16, form, 2e-4, 0.3, 'constant']);
    const cfg = JSON.parse(readFileSync(join(dir, method, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([cfg.peft_type, cfg.r, cfg.lora_alpha, (cfg.lowbit as { form: string }).form], ['LORA', 8, 16, form]);
    const q = JSON.parse(readFileSync(join(dir, method, 'quantize_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(q.kind, kind);
    assert.equal(existsSync(join(dir, method, 'train_state')), false, 'the training state is removed when the run is done');
    const e = await runCliAsync(['eval', '--model', method, '--ppl', 'tinystories', '--limit', '2', '--json'], { cwd: dir });
    assertOk(e);
    const ppl = (JSON.parse(e.stdout) as { results: { ppl: number }[] }).results[0]!.ppl;
    assert.ok(ppl > 20 && ppl < 80, `ppl ${ppl}`);
    const again = await runCliAsync(['finetune', '--method', method, '--steps', '2', '--grad-accum', '2', '--rank', '8', '--out', method], { cwd: dir });
    assertOk(again);
    assert.match(again.stdout, /2 steps/);
  }
});

test('finetune --method qalora: OUT is the merged GPTQ checkpoint alone, and eval reads it', async () => {
  const dir = scratch();
  const f = await runCliAsync(['finetune', '--method', 'qalora', '--nsamples', '16', '--steps', '2', '--grad-accum', '2', '--rank', '8', '--lr', '1e-2', '--out', 'qa', '--json'], { cwd: dir, timeoutMs: 300_000 });
  assertOk(f);
  const r = JSON.parse(f.stdout) as { status: string; losses: number[]; lora: { form: string; groupSize: number } };
  assert.deepEqual([r.status, r.losses.length, r.lora.form, r.lora.groupSize], ['done', 2, 'qa', 32]);
  for (const gone of ['adapter_config.json', 'adapter_model.safetensors', 'base', 'train_state']) assert.equal(existsSync(join(dir, 'qa', gone)), false, gone);
  const cfg = JSON.parse(readFileSync(join(dir, 'qa', 'config.json'), 'utf8')) as { quantization_config: { quant_method: string; bits: number; group_size: number; lowbit_float_zeros: boolean } };
  const qc = cfg.quantization_config;
  assert.deepEqual([qc.quant_method, qc.bits, qc.group_size, qc.lowbit_float_zeros], ['gptq', 4, 32, true]);
  const e = await runCliAsync(['eval', '--model', 'qa', '--ppl', 'tinystories', '--limit', '2', '--json'], { cwd: dir });
  assertOk(e);
  const ppl = (JSON.parse(e.stdout) as { results: { ppl: number }[] }).results[0]!.ppl;
  assert.ok(ppl > 20 && ppl < 80, `ppl ${ppl}`);
});

test('bad fine-tuning input: one line naming the file or option, exit 2', async () => {
  const dir = scratch();
  const badRecord = writeTemp('bad.json', JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 3, output: 'c' }]));
  const ft = (...a: string[]) => ['finetune', '--steps', '1', '--grad-accum', '1', '--out', 'x', ...a];
  const cases: [string[], string[]][] = [
    [ft('--data', badRecord), ['bad.json', 'record 1']],
    [ft('--method', 'lora'), ['--method']],
    [ft('--method', 'irqlora', '--rank', '3'), ['rank 3', 'layer 0']],
    [ft('--steps', '0'), ['--steps']],
    [ft('--dropout', '1'), ['dropout']],
    [ft('--lr', 'fast'), ['--lr']],
  ];
  const results = await pool(cases, 3, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names], i) => assertBadInput(results[i]!, names));
});

test('bad DB-LLM settings: one line naming the cause, exit 2, nothing written', async () => {
  const dir = scratch();
  const q = (...a: string[]) => ['quantize', '--method', 'dbllm', '--out', 'x', ...a];
  const cases: [string[], string[]][] = [
    [q('--wbits', '3', '--group', '128', '--calib', 'none'), ['dbllm', '--wbits must be 2']],
    [q('--wbits', '2', '--group', '100', '--calib', 'none'), ['dbllm', 'multiple of 8']],
    [q('--wbits', '2', '--group', '256', '--calib', 'none'), ['group size 256 does not divide', 'model.layers.0']],
    [q('--wbits', '2', '--group', '128', '--calib', 'none', '--steps', '2'), ['dbllm', '--calib']],
    [q('--wbits', '2', '--group', '128', '--calib', 'c4', '--nsamples', '2', '--seqlen', '64', '--steps', '3', '--lr', '1e20', '--save-every', '1', '--json'), ['dbllm', 'diverged at step', 'last good state']],
  ];
  const results = await pool(cases, 2, ([args]) => runCliAsync(args, { cwd: dir }));
  cases.forEach(([, names], i) => assertBadInput(results[i]!, names));
  assert.equal(existsSync(join(dir, 'x')), false);
});
