import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu/cpuBackend.js';
import { selectKernels } from '../../src/backend/cpu/kernels/select.js';
import { csqaAverage, csqaColumns, evaluateTasks, mmluColumns } from '../../src/eval/taskRun.js';
import type { TaskResult } from '../../src/eval/tasks/registry.js';
import { UsageError } from '../../src/errors.js';
import { openModel } from '../../src/io/open.js';
import { HAS_TASK_DATA, NO_TASK_DATA_REASON, DATA, TINY656K } from '../helpers/paths.js';

function result(task: string, acc: number, extra: Partial<TaskResult> = {}): TaskResult {
  return {
    task, split: 'test', n: 10, shots: 0, bos: false, protocol: 'p', tokenizer: 't', maxContext: 512, acc,
    stderr: { acc: 0 }, ...extra,
  };
}

test('csqaAverage and csqaColumns: mean acc over the zero-shot tasks present, in %, paper column order', () => {
  const rs = [result('winogrande', 0.5), result('piqa', 0.75), result('hellaswag', 0.25), result('mmlu', 0.9)];
  assert.equal(csqaAverage(rs), 0.5);
  assert.equal(csqaAverage([result('mmlu', 0.9)]), undefined);
  assert.deepEqual(csqaColumns(rs), {
    header: ['PIQA', 'ARC-e', 'ARC-c', 'HellaSwag', 'Wino', 'Avg'],
    row: ['75.0', '-', '-', '25.0', '50.0', '50.0'],
  });
});

test('mmluColumns: Hums., STEM, Social, Other, Avg from the categories; "-" without an mmlu result', () => {
  const entry = (acc: number) => ({ n: 4, acc });
  const mmlu = result('mmlu', 0.4375, {
    mmlu: { categories: { Humanities: entry(0.25), STEM: entry(0.5), 'Social Sciences': entry(NaN), Other: entry(0.75) }, subjects: {}, truncated: 0 },
  });
  assert.deepEqual(mmluColumns([result('piqa', 0.5), mmlu]), { header: ['Hums.', 'STEM', 'Social', 'Other', 'Avg'], row: ['25.0', '50.0', '-', '75.0', '43.8'] });
  assert.deepEqual(mmluColumns([]).row, ['-', '-', '-', '-', '-']);
});

test('evaluateTasks rejects an unknown task name before loading the model', async () => {
  const ckpt = openModel(TINY656K);
  await assert.rejects(evaluateTasks(ckpt, new CpuBackend(), ['piqa', 'nope']), (e: unknown) => e instanceof UsageError && /unknown task "nope"/.test(e.message));
});

/** Four MMLU subjects (one per category) beside links to the shared zero-shot task folders, so MMLU stays fast. */
const MMLU_SUBSET = ['world_religions', 'abstract_algebra', 'high_school_geography', 'marketing'];
function subsetDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-tasks-'));
  for (const task of ['piqa', 'arc', 'hellaswag', 'winogrande']) symlinkSync(join(DATA, task), join(dir, task));
  for (const split of ['dev', 'test']) {
    mkdirSync(join(dir, 'mmlu', 'data', split), { recursive: true });
    for (const s of MMLU_SUBSET) symlinkSync(join(DATA, 'mmlu', 'data', split, `${s}_${split}.csv`), join(dir, 'mmlu', 'data', split, `${s}_${split}.csv`));
  }
  return dir;
}

test('evaluateTasks on TinyStories-656K, limit 20: piqa, arc_easy, winogrande, hellaswag and MMLU (4 subjects)', { skip: HAS_TASK_DATA ? false : NO_TASK_DATA_REASON }, async () => {
  const dataDir = subsetDataDir();
  try {
    const ckpt = openModel(TINY656K);
    // fastest kernels available (native, else wasm, else js): MMLU prompts fill the 512-token context
    const { kernels, note } = selectKernels('auto', 1);
    const progress = new Map<string, [number, number]>();
    const tasks = ['piqa', 'arc_easy', 'winogrande', 'hellaswag', 'mmlu'];
    const results = await evaluateTasks(ckpt, new CpuBackend(kernels, note), tasks, {
      limit: 20, dataDir, onProgress: (task, done, total) => progress.set(task, [done, total]),
    });
    assert.deepEqual(results.map((r) => r.task), tasks);
    for (const r of results) {
      assert.ok(r.acc >= 0 && r.acc <= 1, `${r.task} acc ${r.acc}`);
      assert.equal(r.limit, 20);
      assert.equal(r.maxContext, 512);
      assert.equal(r.tokenizer, ckpt.tokenizer.description);
      if (r.task !== 'mmlu') {
        assert.equal(r.n, 20);
        assert.equal(r.bos, false);
        assert.equal(r.encoding, 'joint');
        assert.deepEqual(progress.get(r.task), [20, 20]);
      }
    }
    const mmlu = results[4]!;
    // MMLU's limit is per subject: the first 20 test questions of each of the 4 subjects
    assert.equal(mmlu.n, 80);
    assert.equal(mmlu.bos, true);
    assert.deepEqual(Object.keys(mmlu.mmlu!.subjects).sort(), [...MMLU_SUBSET].sort());
    for (const s of Object.values(mmlu.mmlu!.subjects)) assert.equal(s.n, 20);
    for (const c of Object.values(mmlu.mmlu!.categories)) assert.equal(c.n, 20);
    assert.deepEqual(progress.get('mmlu'), [80, 80]);

    // Regression values from this implementation's first run (TinyStories-656K bf16 weights, its tokenizer.json,
    // joint encoding, no BOS; MMLU with BOS, 5-shot cut to 512 tokens). They are not external references: a change
    // here means scoring or tokenization changed. Every one of the 20 examples per task wins by ≥ 0.3 nats, so
    // kernel round-off cannot flip them.
    const acc = Object.fromEntries(results.map((r) => [r.task, r.acc]));
    assert.deepEqual(acc, { piqa: 0.4, arc_easy: 0.2, winogrande: 0.3, hellaswag: 0.3, mmlu: 0.25 });
    assert.equal(results[0]!.acc_norm, 0.5);
    assert.deepEqual(csqaColumns(results).row, ['40.0', '20.0', '-', '30.0', '30.0', '30.0']);
    assert.deepEqual(mmluColumns(results).row, ['15.0', '35.0', '20.0', '30.0', '25.0']);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('batchSize does not change results: 1 (one scorer call per example) vs 7 vs the default (16)', { skip: HAS_TASK_DATA ? false : NO_TASK_DATA_REASON }, async () => {
  const ckpt = openModel(TINY656K);
  const { kernels, note } = selectKernels('auto', 1);
  const be = new CpuBackend(kernels, note);
  const tasks = ['piqa', 'winogrande', 'hellaswag'];
  const pick = (rs: TaskResult[]) => rs.map((r) => [r.task, r.n, r.acc, r.acc_norm]);
  const one = await evaluateTasks(ckpt, be, tasks, { limit: 15, dataDir: DATA, batchSize: 1 });
  assert.deepEqual(pick(await evaluateTasks(ckpt, be, tasks, { limit: 15, dataDir: DATA, batchSize: 7 })), pick(one));
  assert.deepEqual(pick(await evaluateTasks(ckpt, be, tasks, { limit: 15, dataDir: DATA })), pick(one));
  await assert.rejects(evaluateTasks(ckpt, be, ['piqa'], { limit: 2, dataDir: DATA, batchSize: 0 }), /batch size must be a positive integer/);
});
