// Seeded mutation fuzzing, one target per parser (issue 10, item 6): real bundled files are damaged
// (byte flips, truncations, header fields set to boundary values, JSON values swapped for null,
// huge, negative or wrongly typed ones) and the library must either work on the result (every
// tensor read, a text encoded and decoded, a few tokens through the forward) or refuse it with a
// LowbitError naming a file of the case. Each target runs in a worker with a heap cap and a
// per-case watchdog (fuzz/harness.ts), so a hang or a header-sized allocation fails the test too.
// A failure prints the seed and the mutation; rerun the target with them to reproduce it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz/harness.js';

const SEED = 20240610;
/** Cases per target: a few hundred where a case is cheap, fewer where each opens a whole HF folder. */
const TARGETS = [
  ['hf', 120, 'HF folder: config.json, tokenizer_config.json, model.safetensors'],
  ['tokenizer', 100, 'tokenizer.json and tokenizer_config.json'],
  ['gguf', 200, 'GGUF (F32 with byte tokens; Q8_0 with <unk>)'],
  ['llama2c', 200, 'llama2.c .bin and tok512.bin'],
  ['quantized', 120, 'lowbit quantized checkpoint (GPTQ layout)'],
  ['data', 300, 'dataset readers: PIQA, ARC, HellaSwag, WinoGrande, MMLU, C4'],
] as const;

describe('mutation fuzzing', { concurrency: 2 }, () => {
  for (const [target, numRuns, what] of TARGETS) {
    test(`${what}: ${numRuns} mutants, each a clean result or a LowbitError naming the file`, async () => {
      const tally = await runFuzz(target, { seed: SEED, numRuns });
      assert.equal(tally.ok + tally.refused, numRuns);
      assert.ok(tally.refused > 0 && tally.ok > 0, `the mutants must reach both outcomes (${JSON.stringify(tally)})`);
    });
  }
});
