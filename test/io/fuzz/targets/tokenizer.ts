/** tokenizer.json (TinyStories-656K, BPE with byte fallback) and the tokenizer_config.json / config.json ids beside it. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { openModel } from '../../../../src/io/open.js';
import { TINY656K } from '../../../helpers/paths.js';
import { folderWith, jsonPaths, type JsonPath, type JsonValue } from '../../mutate.js';
import { applyBinary, applyJson, binaryMutation, jsonMutation, rankPaths, type BinaryMutation, type JsonMutation } from '../mutations.js';
import { exercise, expectClean } from '../outcome.js';
import type { FuzzTarget } from '../target.js';

interface Base { text: Uint8Array; json: JsonValue; paths: JsonPath[]; structural: number; tokConfig: JsonValue }
type Mutation =
  | { file: 'tokenizer.json'; json: JsonMutation }
  | { file: 'tokenizer.json'; bytes: BinaryMutation }
  | { file: 'tokenizer_config.json'; json: JsonMutation };

/** The vocabulary and merge lists: thousands of entries, drawn as often as everything else together. */
const bulky = (p: JsonPath): boolean => p[0] === 'model' && (p[1] === 'vocab' || p[1] === 'merges') && p.length > 2;

const target: FuzzTarget<Base, Mutation> = {
  setup() {
    const text = new Uint8Array(readFileSync(join(TINY656K, 'tokenizer.json')));
    const json = JSON.parse(new TextDecoder().decode(text)) as JsonValue;
    const { paths, structural } = rankPaths(jsonPaths(json), bulky);
    return { text, json, paths, structural, tokConfig: JSON.parse(readFileSync(join(TINY656K, 'tokenizer_config.json'), 'utf8')) as JsonValue };
  },
  arbitrary(b) {
    return fc.oneof(
      { arbitrary: jsonMutation(b.paths, b.structural).map((json) => ({ file: 'tokenizer.json' as const, json })), weight: 4 },
      { arbitrary: binaryMutation(b.text.length, 4000, []).map((bytes) => ({ file: 'tokenizer.json' as const, bytes })), weight: 1 },
      { arbitrary: jsonMutation(jsonPaths(b.tokConfig)).map((json) => ({ file: 'tokenizer_config.json' as const, json })), weight: 1 },
    );
  },
  run(b, m) {
    let content: string | Uint8Array;
    if ('bytes' in m) content = applyBinary(b.text, m.bytes);
    else content = JSON.stringify(applyJson(m.file === 'tokenizer.json' ? b.json : b.tokConfig, m.json));
    const dir = folderWith(TINY656K, { [m.file]: content });
    return expectClean(dir, async () => exercise(openModel(dir)));
  },
};
export default target;
