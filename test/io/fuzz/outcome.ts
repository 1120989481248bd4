/**
 * The property every fuzz case checks: the library either works on the mutated file (and then the
 * checkpoint is exercised: every tensor read, a text encoded and decoded, a few tokens through the
 * block-streamed forward) or fails with the project's own LowbitError naming a file of the case's
 * folder. Anything else (TypeError, RangeError, SyntaxError from deep inside) fails the case.
 */
import { CpuBackend } from '../../../src/backend/cpu/cpuBackend.js';
import { LowbitError } from '../../../src/errors.js';
import type { ModelCheckpoint } from '../../../src/io/checkpoint.js';
import { streamedNll } from '../../../src/model/stream.js';

/** Letters, digits, punctuation, newlines and characters most small vocabularies lack. */
export const PROBE = 'Once upon a time, Lily = 3 naïve cafés 😀\n\tthe end.';
const be = new CpuBackend();

/** Runs `fn`; returns what happened, or throws an Error describing an escape. */
export async function expectClean(caseDir: string, fn: () => unknown): Promise<'ok' | 'refused'> {
  try {
    await fn();
    return 'ok';
  } catch (e) {
    if (e instanceof LowbitError && e.message.includes(caseDir)) return 'refused';
    const err = e as Error;
    throw new Error(`escaped as ${err?.name ?? typeof e}: ${err?.message ?? String(e)}\n${err?.stack ?? ''}`);
  }
}

/** Everything a user's first commands do with a checkpoint, on a small scale. */
export async function exercise(ck: ModelCheckpoint): Promise<void> {
  for (const t of ck.weights.list()) {
    ck.weights.readQuantized?.(t.name);
    ck.weights.read(t.name);
  }
  const tok = ck.tokenizer;
  const ids = tok.encode(PROBE, { bos: tok.bosId !== undefined });
  tok.decode(ids);
  if (ids.length >= 2) await streamedNll(ck, be, [Int32Array.from(ids.slice(0, 6))]);
}
