/**
 * Method options, generically: each method declares a small schema (method.ts OptionSpec); values
 * from the CLI, a library call or a study cell are checked against it here, defaults filled in, and
 * the non-default ones named for a study cell's key.
 */
import { UsageError } from '../errors.js';
import type { OptionSpec, OptionValues, QuantMethod } from './method.js';

/** Every option some method accepts, by name (the CLI registers one flag each). Same name, same spec. */
export function allOptions(methods: Readonly<Record<string, QuantMethod>>): ReadonlyMap<string, OptionSpec> {
  const out = new Map<string, OptionSpec>();
  for (const m of Object.values(methods)) {
    for (const [name, spec] of Object.entries(m.options)) {
      const seen = out.get(name);
      if (seen && (seen.flag !== spec.flag || seen.kind !== spec.kind)) throw new Error(`option ${name} is declared twice with different flags or types`);
      out.set(name, seen ?? spec);
    }
  }
  return out;
}

/** `given` checked against `method.options` (unknown names, types, ranges: a UsageError naming the flag), defaults filled in. */
export function resolveOptions(method: QuantMethod, given: Readonly<Record<string, unknown>>, known: ReadonlyMap<string, OptionSpec> = new Map()): OptionValues {
  const out: Record<string, boolean | number> = {};
  for (const [name, v] of Object.entries(given)) {
    if (v === undefined) continue;
    const spec = method.options[name];
    if (!spec) {
      const flag = known.get(name)?.flag ?? name;
      const takes = Object.values(method.options).map((s) => s.flag);
      throw new UsageError(`${flag} is not an option of ${method.name} (${takes.length ? `it takes ${takes.join(', ')}` : 'it takes none'})`);
    }
    out[name] = checkValue(spec, v);
  }
  for (const [name, spec] of Object.entries(method.options)) if (!(name in out)) out[name] = spec.default;
  return out;
}

function checkValue(spec: OptionSpec, v: unknown): boolean | number {
  if (spec.kind === 'boolean') {
    if (typeof v !== 'boolean') throw new UsageError(`${spec.flag} is a switch (true or false), got ${JSON.stringify(v)}`);
    return v;
  }
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  const range = `${spec.min ?? '-∞'}..${spec.max ?? '∞'}`;
  if (typeof n !== 'number' || !Number.isFinite(n) || (spec.kind === 'integer' && !Number.isInteger(n))
    || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    throw new UsageError(`${spec.flag} must be ${spec.kind === 'integer' ? 'an integer' : 'a number'} in ${range} (got ${JSON.stringify(v)})`);
  }
  return n;
}

/** The non-default options of a cell, as key parts in the schema's order (e.g. ['act'], ['a8']). */
export function optionKeyParts(method: QuantMethod, values: OptionValues): string[] {
  return Object.entries(method.options).filter(([name, spec]) => values[name] !== undefined && values[name] !== spec.default)
    .map(([name, spec]) => spec.key(values[name]!));
}
