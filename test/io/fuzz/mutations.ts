/**
 * Seeded mutations of real files, as fast-check arbitraries: byte flips (mostly inside the header,
 * where the parser's decisions are), truncations, rewrites of a known header field with boundary
 * values (0, 2^31 − 1, 2^64 − 1, ...), and JSON value swaps (null, huge, negative, wrong type, a
 * removed key) at a path of a JSON document.
 */
import fc from 'fast-check';
import { withPath, type JsonPath, type JsonValue } from '../mutate.js';

export interface Field { readonly at: number; readonly width: 4 | 8 }

export type BinaryMutation =
  | { readonly kind: 'flip'; readonly flips: readonly { readonly at: number; readonly byte: number }[] }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'field'; readonly at: number; readonly width: 4 | 8; readonly value: bigint };

/** Boundary values for counts, lengths, offsets and ids. */
const INTERESTING: readonly bigint[] = [
  0n, 1n, 2n, 3n, 7n, 8n, 15n, 16n, 31n, 32n, 255n, 256n, 512n, 65535n, 65536n,
  2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n,
];

const fieldValue = fc.oneof(
  { arbitrary: fc.constantFrom(...INTERESTING), weight: 3 },
  { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), weight: 1 },
);

/**
 * Mutations of a file of `size` bytes whose header (where flips are most useful) ends at
 * `headerEnd`; `fields` are the offsets of its numeric header fields.
 */
export function binaryMutation(size: number, headerEnd: number, fields: readonly Field[]): fc.Arbitrary<BinaryMutation> {
  const position = fc.oneof(
    { arbitrary: fc.nat({ max: Math.max(0, Math.min(size, headerEnd) - 1) }), weight: 3 },
    { arbitrary: fc.nat({ max: size - 1 }), weight: 1 },
  );
  const flip = fc.record({
    kind: fc.constant('flip' as const),
    flips: fc.array(fc.record({ at: position, byte: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 4 }),
  });
  const truncate = fc.record({ kind: fc.constant('truncate' as const), at: position });
  const arbs: fc.WeightedArbitrary<BinaryMutation>[] = [{ arbitrary: flip, weight: 3 }, { arbitrary: truncate, weight: 1 }];
  if (fields.length > 0) {
    const field = fc.record({ kind: fc.constant('field' as const), f: fc.constantFrom(...fields), value: fieldValue })
      .map(({ f, value }) => ({ kind: 'field' as const, at: f.at, width: f.width, value }));
    arbs.push({ arbitrary: field, weight: 4 });
  }
  return fc.oneof(...arbs);
}

export function applyBinary(bytes: Uint8Array, m: BinaryMutation): Uint8Array {
  switch (m.kind) {
    case 'truncate': return bytes.slice(0, m.at);
    case 'flip': {
      const out = bytes.slice();
      for (const { at, byte } of m.flips) out[at] = byte;
      return out;
    }
    case 'field': {
      const out = bytes.slice();
      const v = new DataView(out.buffer, m.at);
      if (m.width === 4) v.setUint32(0, Number(BigInt.asUintN(32, m.value)), true);
      else v.setBigUint64(0, BigInt.asUintN(64, m.value), true);
      return out;
    }
  }
}

/** Replacement values: null, huge, negative, fractional, wrong types, plausible strings; `DELETE` removes the key. */
export const DELETE = '<delete>';
const JSON_VALUES: readonly (JsonValue | typeof DELETE)[] = [
  null, 0, -1, 1, 2, 3, 15, 0.5, 1e9, 2 ** 31 - 1, 2 ** 32, 2 ** 53, 1e308, -1e308,
  '', 'x', 'silu', 'gelu', 'llama', 'BPE', 'F32', 'I32', true, false, [], {}, [1, 2], { a: 1 }, DELETE,
];

export interface JsonMutation { readonly path: JsonPath; readonly value: JsonValue | typeof DELETE }

/**
 * A value swap at one of `paths` (the first `structural` of them are drawn as often as all the rest:
 * a document with thousands of vocabulary entries still gets its top-level fields mutated).
 */
export function jsonMutation(paths: readonly JsonPath[], structural = paths.length): fc.Arbitrary<JsonMutation> {
  const path = fc.oneof(
    fc.constantFrom(...paths.slice(0, Math.max(1, structural))),
    fc.constantFrom(...paths),
  );
  return fc.record({ path, value: fc.constantFrom(...JSON_VALUES) });
}

export function applyJson(doc: JsonValue, m: JsonMutation): JsonValue {
  return withPath(doc, m.path, m.value === DELETE ? undefined : m.value);
}

/** Paths sorted so that shallow ones (and those outside `bulky` subtrees) come first; returns them and the count of such. */
export function rankPaths(paths: readonly JsonPath[], bulky: (p: JsonPath) => boolean): { paths: JsonPath[]; structural: number } {
  const light = paths.filter((p) => !bulky(p));
  const heavy = paths.filter((p) => bulky(p));
  return { paths: [...light, ...heavy], structural: light.length };
}
