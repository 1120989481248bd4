/** GGUF: stories260K (F32, byte tokens) and TinyStories-656K Q8_0 (no byte tokens, <unk> fallback), header fields and bytes. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { openModel } from '../../../../src/io/open.js';
import { STORIES260K, TINY656K } from '../../../helpers/paths.js';
import { ggufMap, scratchDir } from '../../mutate.js';
import { applyBinary, binaryMutation, type BinaryMutation, type Field } from '../mutations.js';
import { exercise, expectClean } from '../outcome.js';
import type { FuzzTarget } from '../target.js';

const FILES = [join(STORIES260K, 'stories260K.gguf'), join(TINY656K, 'gguf/TinyStories-656K-Q8_0-GGUF/tinystories-656k-q8_0.gguf')];
/** GGUF value types whose value is a u32/i32 (4 bytes) or u64/i64 (8 bytes). */
const WIDTH: Record<number, 4 | 8> = { 4: 4, 5: 4, 10: 8, 11: 8 };

interface File { bytes: Uint8Array; headerEnd: number; fields: Field[] }
interface Mutation { file: number; bytes: BinaryMutation }

/** Every numeric field of the header: counts, value types, numbers, string and array lengths, tensor dims, types and offsets. */
function fields(bytes: Uint8Array): { headerEnd: number; fields: Field[] } {
  const map = ggufMap(bytes);
  const out: Field[] = [{ at: 4, width: 4 }, { at: 8, width: 8 }, { at: 16, width: 8 }];
  for (const kv of map.kvs) {
    out.push({ at: kv.at - 4, width: 4 }); // the value type
    if (WIDTH[kv.type]) out.push({ at: kv.at, width: WIDTH[kv.type]! });
    if (kv.type === 8) out.push({ at: kv.at, width: 8 }); // string length
    if (kv.type === 9) out.push({ at: kv.at, width: 4 }, { at: kv.at + 4, width: 8 }); // item type, count
  }
  for (const t of map.tensors) {
    out.push({ at: t.nDimsAt, width: 4 }, { at: t.nDimsAt + 4, width: 8 }, { at: t.typeAt, width: 4 }, { at: t.offsetAt, width: 8 });
  }
  return { headerEnd: map.end, fields: out };
}

const target: FuzzTarget<File[], Mutation> = {
  setup: () => FILES.map((f) => {
    const bytes = new Uint8Array(readFileSync(f));
    return { bytes, ...fields(bytes) };
  }),
  arbitrary: (files) => fc.oneof(...files.map((f, i) => binaryMutation(f.bytes.length, f.headerEnd, f.fields).map((bytes) => ({ file: i, bytes })))),
  run(files, m) {
    const dir = scratchDir();
    const path = join(dir, 'model.gguf');
    writeFileSync(path, applyBinary(files[m.file]!.bytes, m.bytes));
    return expectClean(dir, async () => exercise(openModel(path)));
  },
};
export default target;
