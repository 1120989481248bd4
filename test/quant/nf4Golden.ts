/**
 * What the NF4 and ICQ golden tests share: reading a golden file of test/golden/ (base64 byte and
 * float32 arrays) and the deterministic input matrix of scripts/nf4-golden.py golden_input() (also
 * scripts/icq-golden.py's), rebuilt in the same integer and float32 steps.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';

const f = Math.fround;

export function readGolden<T>(name: string): T {
  return JSON.parse(readFileSync(join(PACKAGE_ROOT, 'test', 'golden', name), 'utf8')) as T;
}

export const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
export const floats = (s: string): Float32Array => { const b = bytes(s); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };

/** golden_input(rows, cols) of scripts/nf4-golden.py. */
export function goldenInput(rows: number, cols: number): Float32Array {
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) {
    const h = Number((BigInt(i) * 2654435761n + 12345n) & 0xffffffffn);
    const v = f(((h >>> 8) / 2 ** 24 - 0.5) * 2), s = f(2 ** -(Math.floor(i / 64) % 5));
    w[i] = f(f(f(v * v) * v) * s);
  }
  for (let b = 0; b < w.length / 64; b += 7) w[b * 64 + 3] = 0;
  w.fill(0, 64 * 11, 64 * 12);
  return w;
}
