/** llama2.c: stories260K.bin (7 int32 header fields) and tok512.bin (max length, then score and length per token). */
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { openModel } from '../../../../src/io/open.js';
import { STORIES260K } from '../../../helpers/paths.js';
import { scratchDir } from '../../mutate.js';
import { applyBinary, binaryMutation, type BinaryMutation, type Field } from '../mutations.js';
import { exercise, expectClean } from '../outcome.js';
import type { FuzzTarget } from '../target.js';

interface Base { bin: Uint8Array; tok: Uint8Array; tokFields: Field[] }
interface Mutation { file: 'model.bin' | 'tok512.bin'; bytes: BinaryMutation }

/** Offsets of tok512.bin's max_token_length and of each token's length field. */
function tokFields(tok: Uint8Array): Field[] {
  const v = new DataView(tok.buffer, tok.byteOffset, tok.byteLength);
  const out: Field[] = [{ at: 0, width: 4 }];
  for (let at = 4; at + 8 <= tok.length; at += 8 + v.getInt32(at + 4, true)) out.push({ at: at + 4, width: 4 });
  return out;
}

const target: FuzzTarget<Base, Mutation> = {
  setup() {
    const tok = new Uint8Array(readFileSync(join(STORIES260K, 'tok512.bin')));
    return { bin: new Uint8Array(readFileSync(join(STORIES260K, 'stories260K.bin'))), tok, tokFields: tokFields(tok) };
  },
  arbitrary: (b) => fc.oneof(
    binaryMutation(b.bin.length, 28, Array.from({ length: 7 }, (_, i) => ({ at: 4 * i, width: 4 as const }))).map((bytes) => ({ file: 'model.bin' as const, bytes })),
    binaryMutation(b.tok.length, 64, b.tokFields).map((bytes) => ({ file: 'tok512.bin' as const, bytes })),
  ),
  run(b, m) {
    const dir = scratchDir();
    const original = { 'model.bin': join(STORIES260K, 'stories260K.bin'), 'tok512.bin': join(STORIES260K, 'tok512.bin') };
    for (const f of ['model.bin', 'tok512.bin'] as const) {
      if (f === m.file) writeFileSync(join(dir, f), applyBinary(f === 'model.bin' ? b.bin : b.tok, m.bytes));
      else symlinkSync(original[f], join(dir, f));
    }
    return expectClean(dir, async () => exercise(openModel(join(dir, 'model.bin'))));
  },
};
export default target;
