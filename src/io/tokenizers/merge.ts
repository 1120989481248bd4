/**
 * The merge loop shared by SentencePiece-BPE (spm.ts) and HF BPE (hf.ts): start from the code
 * points of `s`, and while some adjacent pair has a score, merge the pair with the highest score,
 * the leftmost one on ties. Symbols are contiguous ranges of `s` in a linked list; candidate pairs
 * sit in a binary heap and are dropped when stale (llama.cpp `llm_tokenizer_spm`, HF tokenizers
 * `Word::merge_all`). O(n log n) in the length of `s`.
 */

/** Score of merging the symbol at [start, start+leftLen) with the one right after it (rightLen); undefined: no merge. */
export type PairScore = (start: number, leftLen: number, rightLen: number) => number | undefined;

/** Max-heap of candidate pairs on (score desc, left position asc), stored as parallel arrays. */
class PairHeap {
  private score: number[] = [];
  private left: number[] = [];
  private size: number[] = [];
  get length(): number { return this.score.length; }
  private before(i: number, j: number): boolean {
    const a = this.score[i]!, b = this.score[j]!;
    return a > b || (a === b && this.left[i]! < this.left[j]!);
  }
  private swap(i: number, j: number): void {
    const s = this.score, l = this.left, z = this.size;
    const ts = s[i]!, tl = l[i]!, tz = z[i]!;
    s[i] = s[j]!; l[i] = l[j]!; z[i] = z[j]!;
    s[j] = ts; l[j] = tl; z[j] = tz;
  }
  push(score: number, left: number, size: number): void {
    this.score.push(score);
    this.left.push(left);
    this.size.push(size);
    let i = this.score.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  /** Removes the top; returns [left, size]. */
  pop(): [number, number] {
    const top: [number, number] = [this.left[0]!, this.size[0]!];
    const last = this.score.length - 1;
    this.swap(0, last);
    this.score.pop();
    this.left.pop();
    this.size.pop();
    const n = this.score.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && this.before(l, m)) m = l;
      if (r < n && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

/** The final symbols of `s` (as strings, in order) after all merges. */
export function mergeSymbols(s: string, pairScore: PairScore): string[] {
  // Symbol k starts at code point boundary start[k]; len[k] = 0 once merged into its left neighbour.
  const start = new Int32Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; ) {
    start[n++] = i;
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1;
  }
  const len = new Int32Array(n);
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    len[k] = (k + 1 < n ? start[k + 1]! : s.length) - start[k]!;
    prev[k] = k - 1;
    next[k] = k + 1 < n ? k + 1 : -1;
  }
  const heap = new PairHeap();
  const tryPair = (left: number): void => {
    const right = left >= 0 ? next[left]! : -1;
    if (right < 0) return;
    const score = pairScore(start[left]!, len[left]!, len[right]!);
    if (score !== undefined) heap.push(score, left, len[left]! + len[right]!);
  };
  for (let k = 0; k + 1 < n; k++) tryPair(k);
  while (heap.length > 0) {
    const [left, size] = heap.pop();
    const right = next[left]!;
    if (len[left] === 0 || right < 0 || len[left]! + len[right]! !== size) continue; // stale
    len[left] = size;
    len[right] = 0;
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    tryPair(prev[left]!);
    tryPair(left);
  }
  const out: string[] = [];
  for (let k = n > 0 ? 0 : -1; k >= 0; k = next[k]!) out.push(s.substr(start[k]!, len[k]!));
  return out;
}
