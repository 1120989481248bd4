/** HF folder (TinyStories-656K): config.json, tokenizer_config.json and model.safetensors (its header as JSON, or its bytes). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { openModel } from '../../../../src/io/open.js';
import { TINY656K } from '../../../helpers/paths.js';
import { folderWith, jsonPaths, safetensorsHeader, withSafetensorsHeader, type JsonValue } from '../../mutate.js';
import { applyBinary, applyJson, binaryMutation, jsonMutation, rankPaths, type BinaryMutation, type JsonMutation } from '../mutations.js';
import { exercise, expectClean } from '../outcome.js';
import type { FuzzTarget } from '../target.js';

interface Base { st: Uint8Array; header: JsonValue; dataStart: number; config: JsonValue; tokConfig: JsonValue }
type Mutation =
  | { file: 'config.json' | 'tokenizer_config.json'; json: JsonMutation }
  | { file: 'model.safetensors'; header: JsonMutation }
  | { file: 'model.safetensors'; bytes: BinaryMutation };

const readJson = (f: string) => JSON.parse(readFileSync(join(TINY656K, f), 'utf8')) as JsonValue;

const target: FuzzTarget<Base, Mutation> = {
  setup() {
    const st = new Uint8Array(readFileSync(join(TINY656K, 'model.safetensors')));
    const { header, dataStart } = safetensorsHeader(st);
    return { st, header, dataStart, config: readJson('config.json'), tokConfig: readJson('tokenizer_config.json') };
  },
  arbitrary(b) {
    const header = rankPaths(jsonPaths(b.header), (p) => p[0] === '__metadata__');
    return fc.oneof(
      jsonMutation(jsonPaths(b.config)).map((json) => ({ file: 'config.json' as const, json })),
      jsonMutation(jsonPaths(b.tokConfig)).map((json) => ({ file: 'tokenizer_config.json' as const, json })),
      jsonMutation(header.paths, header.structural).map((h) => ({ file: 'model.safetensors' as const, header: h })),
      binaryMutation(b.st.length, b.dataStart, [{ at: 0, width: 8 }]).map((bytes) => ({ file: 'model.safetensors' as const, bytes })),
    );
  },
  run(b, m) {
    let content: string | Uint8Array;
    if ('json' in m) content = JSON.stringify(applyJson(m.file === 'config.json' ? b.config : b.tokConfig, m.json));
    else if ('header' in m) content = withSafetensorsHeader(b.st, applyJson(b.header, m.header));
    else content = applyBinary(b.st, m.bytes);
    const dir = folderWith(TINY656K, { [m.file]: content });
    return expectClean(dir, async () => exercise(openModel(dir)));
  },
};
export default target;
