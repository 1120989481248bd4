/** How lowbit prints numbers for people (tables, CLI lines): thousands separators, fixed decimals. */

/** An integer: 289,076. */
export function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

/** `digits` decimals with thousands separators: 1,234.57. */
export function fmtFixed(x: number, digits: number): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A perplexity: 2 decimals with thousands separators, exponent notation from 1e6 (the paper's 1.7E6 style). */
export function fmtPpl(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return x >= 1e6 ? x.toExponential(2) : fmtFixed(x, 2);
}
