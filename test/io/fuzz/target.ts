/** One parser under fuzz: its bundled inputs, the mutations drawn for them, and one case run. */
import type fc from 'fast-check';

export type Outcome = 'ok' | 'refused';

export interface FuzzTarget<Base, Mutation> {
  /** Loads (or makes) the real files once per run. */
  setup(): Base | Promise<Base>;
  arbitrary(base: Base): fc.Arbitrary<Mutation>;
  /** Writes the mutated files to a fresh folder and runs the library on them (see outcome.ts). */
  run(base: Base, m: Mutation): Promise<Outcome>;
}

/** A short, replayable text for a mutation (bigints written as decimal strings, long arrays cut). */
export function describe(m: unknown): string {
  const s = JSON.stringify(m, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  return s === undefined ? String(m) : s.length > 600 ? `${s.slice(0, 600)}…` : s;
}
