/**
 * Alpaca instruction records to token ids and labels, as QLoRA trains on them (artidoro/qlora
 * qlora.py at commit 7f4e95a68dc076bea9b3a413d2b512eca6d004e5: ALPACA_PROMPT_DICT,
 * extract_alpaca_dataset, DataCollatorForCausalLM).
 *
 * Files: a JSON array of records, or JSON Lines (one record per non-blank line), told apart by the
 * first non-blank character ('[' or '{'); `.gz` files are gunzipped. A record is an object with string
 * `instruction` and `output` and an optional string `input` (missing = ""); other keys are ignored.
 *
 * Prompt: PROMPT_INPUT when `input` is non-empty, else PROMPT_NO_INPUT, filled as Python's
 * str.format does (one pass: braces inside the values are kept as they are).
 *
 * Tokens, per record (DataCollatorForCausalLM with predict_with_generate off):
 *   source = BOS + prompt,  target = output + EOS, each tokenized without special tokens and cut to
 *   its first sourceMaxLen / targetMaxLen tokens (HF truncation keeps the start; a long output loses
 *   its EOS); ids = source ++ target;
 *   labels = IGNORE_INDEX for every source token and the target ids (trainOnSource off, the default),
 *   or ids itself (trainOnSource on).
 * BOS and EOS are added by id, the text is encoded without them. qlora tokenizes the strings
 * `tokenizer.bos_token + prompt` and `output + tokenizer.eos_token`; for LLaMA tokenizers the special
 * token strings map to exactly those ids, so the result is the same.
 *
 * Labels are aligned the Hugging Face way: same length as ids, and the model shifts them, i.e. the
 * logits at position t are scored against labels[t + 1]; nextTokenTargets() does that shift.
 */
import { join } from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { ASSETS } from '../paths.js';
import { readDataFile } from './textFiles.js';

export interface AlpacaRecord {
  readonly instruction: string;
  /** "" when the record has none */
  readonly input: string;
  readonly output: string;
}

/** qlora.py ALPACA_PROMPT_DICT["prompt_input"], verbatim */
export const PROMPT_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response: ';
/** qlora.py ALPACA_PROMPT_DICT["prompt_no_input"], verbatim */
export const PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response: ';

/** The label of a position the loss ignores (PyTorch's cross-entropy ignore_index, qlora's IGNORE_INDEX). */
export const IGNORE_INDEX = -100;

export interface AlpacaTokenizeOptions {
  /** qlora --source_max_len (default 1024) */
  readonly sourceMaxLen: number;
  /** qlora --target_max_len (default 256) */
  readonly targetMaxLen: number;
  /** qlora --train_on_source (default false) */
  readonly trainOnSource: boolean;
}

export const QLORA_ALPACA_DEFAULTS: AlpacaTokenizeOptions = Object.freeze({ sourceMaxLen: 1024, targetMaxLen: 256, trainOnSource: false });

export interface TokenizedExample {
  readonly ids: Int32Array;
  /** same length as ids; IGNORE_INDEX where no loss is taken (HF alignment: not yet shifted) */
  readonly labels: Int32Array;
}

/** assets/data/alpaca/alpaca_200.json.gz: the first 200 Stanford Alpaca records (SOURCE.md beside it). */
export function bundledAlpacaPath(): string {
  return join(ASSETS, 'data', 'alpaca', 'alpaca_200.json.gz');
}

/** The records of an Alpaca JSON or JSONL file (optionally .gz); every problem is a FormatError naming the file. */
export function readAlpaca(path: string): AlpacaRecord[] {
  return parseAlpaca(path, readDataFile(path, 'an Alpaca file: a JSON array or JSON Lines of {instruction, input, output}'));
}

/** parseAlpaca's work on text already read; `path` is named in errors. */
export function parseAlpaca(path: string, text: string): AlpacaRecord[] {
  const body = text.replace(/^\uFEFF/, '');
  const first = body.trimStart()[0];
  let raws: { value: unknown; where: string }[];
  if (first === '[') {
    let json: unknown;
    try { json = JSON.parse(body); } catch (e) { throw new FormatError(path, `not valid JSON (${(e as Error).message})`); }
    if (!Array.isArray(json)) throw new FormatError(path, 'not a JSON array');
    raws = json.map((value) => ({ value, where: '' }));
  } else if (first === '{') {
    raws = [];
    body.split('\n').forEach((line, n) => {
      if (line.trim() === '') return;
      let value: unknown;
      try { value = JSON.parse(line); } catch (e) {
        throw new FormatError(path, `record ${raws.length} (0-based; line ${n + 1}) is not valid JSON (${(e as Error).message})`);
      }
      raws.push({ value, where: `; line ${n + 1}` });
    });
  } else {
    throw new FormatError(path, first === undefined ? 'no records (the file is empty)' : 'neither a JSON array nor JSON Lines (expected "[" or "{" first)');
  }
  if (raws.length === 0) throw new FormatError(path, 'no records');
  return raws.map(({ value, where }, i) => checkRecord(path, value, `record ${i} (0-based${where})`));
}

function checkRecord(path: string, value: unknown, what: string): AlpacaRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FormatError(path, `${what} is not an object`);
  const r = value as Record<string, unknown>;
  const str = (key: string, optional: boolean): string => {
    const v = r[key];
    if (v === undefined && optional) return '';
    if (v === undefined) throw new FormatError(path, `${what} has no "${key}"`);
    if (typeof v !== 'string') throw new FormatError(path, `${what}: "${key}" is ${v === null ? 'null' : typeof v}, not a string`);
    return v;
  };
  return { instruction: str('instruction', false), input: str('input', true), output: str('output', false) };
}

/** The prompt qlora's extract_alpaca_dataset makes of a record. */
export function alpacaPrompt(r: AlpacaRecord): string {
  const template = r.input !== '' ? PROMPT_INPUT : PROMPT_NO_INPUT;
  return template.replace(/\{(instruction|input)\}/g, (_, key: 'instruction' | 'input') => r[key]);
}

/** ids and labels per record, as qlora's DataCollatorForCausalLM builds them (see the module comment). */
export function tokenizeAlpaca(records: readonly AlpacaRecord[], tokenizer: Tokenizer, opts: AlpacaTokenizeOptions = QLORA_ALPACA_DEFAULTS): TokenizedExample[] {
  const { sourceMaxLen, targetMaxLen, trainOnSource } = opts;
  for (const [name, v] of [['source max length', sourceMaxLen], ['target max length', targetMaxLen]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`Alpaca: ${name} must be an integer ≥ 1, got ${v}`);
  }
  const { bosId, eosId } = tokenizer;
  if (bosId === undefined) throw new UsageError(`Alpaca: tokenizer ${tokenizer.description} has no BOS token; qlora's source starts with it`);
  if (eosId === undefined) throw new UsageError(`Alpaca: tokenizer ${tokenizer.description} has no EOS token; qlora's target ends with it`);
  return records.map((r) => {
    const source = [bosId, ...tokenizer.encode(alpacaPrompt(r), { bos: false })].slice(0, sourceMaxLen);
    const target = [...tokenizer.encode(r.output, { bos: false }), eosId].slice(0, targetMaxLen);
    const ids = Int32Array.from([...source, ...target]);
    const labels = trainOnSource ? Int32Array.from(ids) : Int32Array.from([...source.map(() => IGNORE_INDEX), ...target]);
    return { ids, labels };
  });
}

/**
 * The target of each position after the causal-LM shift: out[t] = labels[t + 1], out[n − 1] =
 * IGNORE_INDEX (what HF's LlamaForCausalLM compares logits[t] with).
 */
export function nextTokenTargets(labels: Int32Array): Int32Array {
  const out = new Int32Array(labels.length).fill(IGNORE_INDEX);
  out.set(labels.subarray(1));
  return out;
}
