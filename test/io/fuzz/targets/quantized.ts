/** A lowbit quantized checkpoint (RTN 4-bit of TinyStories-656K, made at setup): its JSON files, its safetensors header and bytes. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { openModel } from '../../../../src/io/open.js';
import { folderWith, jsonPaths, safetensorsHeader, withSafetensorsHeader, type JsonValue } from '../../mutate.js';
import { quantizedTiny } from '../../quantizedFixture.js';
import { applyBinary, applyJson, binaryMutation, jsonMutation, rankPaths, type BinaryMutation, type JsonMutation } from '../mutations.js';
import { exercise, expectClean } from '../outcome.js';
import type { FuzzTarget } from '../target.js';

interface Base { dir: string; st: Uint8Array; header: JsonValue; dataStart: number; config: JsonValue; qconfig: JsonValue }
type Mutation =
  | { file: 'config.json' | 'quantize_config.json'; json: JsonMutation }
  | { file: 'model.safetensors'; header: JsonMutation }
  | { file: 'model.safetensors'; bytes: BinaryMutation };

const target: FuzzTarget<Base, Mutation> = {
  async setup() {
    const dir = await quantizedTiny();
    const st = new Uint8Array(readFileSync(join(dir, 'model.safetensors')));
    const { header, dataStart } = safetensorsHeader(st);
    const json = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as JsonValue;
    return { dir, st, header, dataStart, config: json('config.json'), qconfig: json('quantize_config.json') };
  },
  arbitrary(b) {
    const header = rankPaths(jsonPaths(b.header), (p) => p[0] === '__metadata__');
    return fc.oneof(
      jsonMutation(jsonPaths(b.config)).map((json) => ({ file: 'config.json' as const, json })),
      jsonMutation(jsonPaths(b.qconfig)).map((json) => ({ file: 'quantize_config.json' as const, json })),
      { arbitrary: jsonMutation(header.paths, header.structural).map((h) => ({ file: 'model.safetensors' as const, header: h })), weight: 2 },
      binaryMutation(b.st.length, b.dataStart, [{ at: 0, width: 8 }]).map((bytes) => ({ file: 'model.safetensors' as const, bytes })),
    );
  },
  run(b, m) {
    let content: string | Uint8Array;
    if ('json' in m) content = JSON.stringify(applyJson(m.file === 'config.json' ? b.config : b.qconfig, m.json));
    else if ('header' in m) content = withSafetensorsHeader(b.st, applyJson(b.header, m.header));
    else content = applyBinary(b.st, m.bytes);
    const dir = folderWith(b.dir, { [m.file]: content });
    return expectClean(dir, async () => exercise(openModel(dir)));
  },
};
export default target;
