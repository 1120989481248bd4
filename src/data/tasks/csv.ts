/**
 * A small RFC 4180 CSV reader (what pandas/Python csv accept for the MMLU files): comma-separated fields, fields in
 * double quotes may hold commas, newlines and doubled quotes (""). No header row is assumed. Blank lines are skipped.
 */
import { FormatError } from '../../errors.js';

export interface CsvRecord {
  /** 1-based line on which the record starts */
  readonly line: number;
  readonly fields: string[];
}

const QUOTE = '"';
const COMMA = ',';

/** Parses `text` (the contents of `file`, named in errors as `file:line`). */
export function parseCsv(text: string, file: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1; // current line
  let start = 1; // line the current record started on
  let i = 0;
  let atFieldStart = true;
  const endRecord = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ line: start, fields });
    fields = [];
    field = '';
    atFieldStart = true;
  };
  while (i < text.length) {
    const c = text[i];
    if (atFieldStart && c === QUOTE) {
      // quoted field: read to the closing quote
      const openLine = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new FormatError(`${file}:${openLine}`, 'quoted field is not closed before the end of the file');
        const q = text[i];
        if (q === QUOTE) {
          if (text[i + 1] === QUOTE) { field += QUOTE; i += 2; continue; }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== COMMA && next !== '\n' && !(next === '\r' && text[i + 1] === '\n')) {
        throw new FormatError(`${file}:${line}`, `unexpected ${JSON.stringify(next)} after a closing quote`);
      }
      atFieldStart = false;
      continue;
    }
    atFieldStart = false;
    if (c === COMMA) {
      fields.push(field);
      field = '';
      atFieldStart = true;
      i++;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      endRecord();
      i += c === '\n' ? 1 : 2;
      line++;
      start = line;
    } else {
      field += c; // a stray quote inside an unquoted field is kept literally, as Python's csv does
      i++;
    }
  }
  if (!atFieldStart || fields.length > 0 || field !== '') endRecord();
  return records;
}
