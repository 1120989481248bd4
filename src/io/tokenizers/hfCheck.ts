/**
 * tokenizer.json checked before @huggingface/tokenizers sees it. The library trusts the file: an
 * unknown model type silently becomes another model, a vocabulary id of 1e9 sizes an array it then
 * walks element by element (a hang), a missing field is a TypeError from deep inside. So the model
 * section is checked here against its type, and every id is bounded by the number of entries the
 * file actually holds. A probe encode/decode (probeTokenizer) then exercises the normalizer,
 * pre-tokenizer and decoder, whose regexes the library only compiles when they are used.
 */
import { FormatError } from '../../errors.js';

type Json = Record<string, unknown>;

/** Model types lowbit uses through the library. */
const MODEL_TYPES = ['BPE', 'Unigram', 'WordPiece'];
/**
 * Ids may leave holes, but not many: an id beyond this multiple of the entries (plus a margin) can
 * only be corruption, and the library would size arrays by it.
 */
const SPARSE_FACTOR = 4;
const SPARSE_MARGIN = 1024;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Throws a FormatError naming `file` unless `json` has a model section the library can build from safely. */
export function checkTokenizerJson(file: string, json: Json): void {
  const fail = (msg: string): never => { throw new FormatError(file, msg); };
  const model = json.model;
  if (!isObject(model) || typeof model.type !== 'string') return fail('no "model" with a "type" (not a tokenizer.json?)');
  if (!MODEL_TYPES.includes(model.type)) fail(`model type ${JSON.stringify(model.type)} is not supported (${MODEL_TYPES.join(', ')})`);
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) return fail('"added_tokens" must be an array');
  const ids: number[] = [];
  let entries: number;
  if (model.type === 'Unigram') {
    const vocab = model.vocab;
    if (!Array.isArray(vocab) || !vocab.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'number' && Number.isFinite(e[1]))) {
      return fail('a Unigram "model.vocab" must be a list of [piece, score] pairs');
    }
    entries = vocab.length;
    const unk = model.unk_id;
    if (unk !== undefined && unk !== null && !(isId(unk) && unk < entries)) fail(`"model.unk_id" ${JSON.stringify(unk)} is not an index of the ${entries} pieces`);
  } else {
    const vocab = model.vocab;
    if (!isObject(vocab)) return fail(`a ${model.type} "model.vocab" must map tokens to ids`);
    for (const [token, id] of Object.entries(vocab)) {
      if (!isId(id)) fail(`vocabulary id of ${JSON.stringify(token)} must be a non-negative integer, got ${JSON.stringify(id)}`);
      ids.push(id as number);
    }
    entries = ids.length;
    if (model.type === 'BPE') {
      const merges = model.merges;
      const pair = (m: unknown) => typeof m === 'string' || (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string'));
      if (!Array.isArray(merges) || !merges.every(pair)) fail('a BPE "model.merges" must be a list of "a b" strings or [a, b] pairs');
    }
    if (model.unk_token !== undefined && model.unk_token !== null && typeof model.unk_token !== 'string') fail('"model.unk_token" must be a string');
  }
  for (const [i, t] of added.entries()) {
    if (!isObject(t) || !isId(t.id) || typeof t.content !== 'string') fail(`added_tokens[${i}] must be {id: non-negative integer, content: string, ...}`);
    ids.push((t as Json).id as number);
  }
  const bound = SPARSE_FACTOR * (entries + added.length) + SPARSE_MARGIN;
  for (const id of ids) {
    if (id >= bound) fail(`token id ${id} is far beyond the ${entries + added.length} tokens the file holds (corrupt ids)`);
  }
  for (const part of ['normalizer', 'pre_tokenizer', 'decoder']) checkPatterns(file, part, json[part]);
}

/**
 * Every `pattern` of a normalizer, pre-tokenizer or decoder step is {"String": s} or {"Regex": r}:
 * the library skips any other with a console warning, silently changing the tokenization.
 */
function checkPatterns(file: string, where: string, v: unknown): void {
  if (Array.isArray(v)) { v.forEach((x, i) => checkPatterns(file, `${where}[${i}]`, x)); return; }
  if (!isObject(v)) return;
  if ('pattern' in v) {
    const p = v.pattern;
    const ok = isObject(p) && Object.keys(p).length === 1 && (typeof p.String === 'string' || typeof p.Regex === 'string');
    if (!ok) throw new FormatError(file, `${where}.pattern must be {"String": ...} or {"Regex": ...}, got ${JSON.stringify(p)}`);
  }
  for (const [k, x] of Object.entries(v)) if (k !== 'pattern') checkPatterns(file, `${where}.${k}`, x);
}
