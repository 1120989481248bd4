import { test } from 'node:test';
import assert from 'node:assert/strict';
import { halvesToPairs, pairsToHalves } from '../../src/io/qkPermute.js';

/** numpy: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols), written out by hand. */
function numpyPermute(w: number[][], nHead: number): number[][] {
  const rows = w.length, half = rows / nHead / 2;
  const out: number[][] = [];
  for (let h = 0; h < nHead; h++) for (let j = 0; j < half; j++) for (let t = 0; t < 2; t++) out.push(w[h * 2 * half + t * half + j]!);
  return out;
}

test('halvesToPairs is convert_hf_to_gguf.py permute; pairsToHalves inverts it', () => {
  for (const [rows, cols, nHead] of [[8, 3, 1], [8, 3, 2], [16, 5, 4], [12, 2, 3]] as const) {
    const w = Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => r * 100 + c));
    const flat = Float32Array.from(w.flat());
    const permuted = halvesToPairs(flat, rows, cols, nHead);
    assert.deepEqual([...permuted], numpyPermute(w, nHead).flat());
    assert.deepEqual(pairsToHalves(permuted, rows, cols, nHead), flat);
    const bits = Uint16Array.from(w.flat());
    assert.deepEqual(pairsToHalves(halvesToPairs(bits, rows, cols, nHead), rows, cols, nHead), bits);
  }
  // explicit: one head of 4 rows, pairs (r0,r1),(r2,r3) → halves r0,r2 | r1,r3
  assert.deepEqual([...pairsToHalves(Float32Array.from([0, 1, 2, 3]), 4, 1, 1)], [0, 2, 1, 3]);
});
