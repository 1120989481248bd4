/**
 * Line-oriented task files: JSON lines (one object per line) and label lists (one integer per line).
 * Every error names the file and the 1-based line as `file:line`.
 */
import { FormatError } from '../../errors.js';
import { readText } from '../textFiles.js';

/** One parsed JSON line with its 1-based line number, kept so later checks can point at it. */
export interface JsonLine {
  readonly line: number;
  readonly value: Record<string, unknown>;
}

/** The lines of a text file without their terminators; a final empty line (trailing newline) is dropped. */
export function readLines(file: string): string[] {
  const text = readText(file);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Parses a .jsonl file; each line must be one JSON object. Blank lines are errors (they shift alignment with label files). */
export function readJsonl(file: string): JsonLine[] {
  return readLines(file).map((text, i) => {
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new FormatError(`${file}:${line}`, `not valid JSON (${(e as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new FormatError(`${file}:${line}`, 'expected a JSON object');
    }
    return { line, value: value as Record<string, unknown> };
  });
}

/** Reads a label list (`valid-labels.lst`): one integer per line, each in `allowed`; its length must equal `expected`. */
export function readLabels(file: string, expected: number, allowed: readonly number[], dataFile: string): number[] {
  const lines = readLines(file);
  if (lines.length !== expected) {
    throw new FormatError(file, `has ${lines.length} labels but ${dataFile} has ${expected} examples`);
  }
  return lines.map((text, i) => {
    const v = Number(text.trim());
    if (text.trim() === '' || !Number.isInteger(v) || !allowed.includes(v)) {
      throw new FormatError(`${file}:${i + 1}`, `label ${JSON.stringify(text)} is not one of ${allowed.join(', ')}`);
    }
    return v;
  });
}

/** Field accessors that throw FormatError at `file:line` when a field is missing or has the wrong type. */
export function str(file: string, rec: JsonLine, key: string): string {
  const v = rec.value[key];
  if (typeof v !== 'string') throw new FormatError(`${file}:${rec.line}`, `field "${key}" must be a string`);
  return v;
}

export function strArray(file: string, rec: JsonLine, key: string): string[] {
  const v = rec.value[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new FormatError(`${file}:${rec.line}`, `field "${key}" must be an array of strings`);
  }
  return v;
}

/** An integer given as a JSON number or a numeric string ("3"), as the task files mix both. */
export function int(file: string, rec: JsonLine, key: string): number {
  const v = rec.value[key];
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new FormatError(`${file}:${rec.line}`, `field "${key}" must be an integer`);
  }
  return n;
}
