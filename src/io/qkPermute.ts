/**
 * RoPE row layouts of q_proj/k_proj. Meta's checkpoints, llama2.c and GGUF rotate adjacent pairs
 * (rows 2j and 2j+1 of a head form pair j); Hugging Face rotates halves (rows j and j + d/2).
 * convert_hf_to_gguf.py maps HF to GGUF with `w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2)`,
 * i.e. gguf row h·d + 2j + t = hf row h·d + t·d/2 + j. We apply the inverse.
 */
import type { AnyTypedArray } from '../tensor/dtype.js';

/** Interleaved (adjacent-pair) rows → HF rotate-half rows. `data` is [rows, cols] row-major. */
export function pairsToHalves<T extends AnyTypedArray>(data: T, rows: number, cols: number, nHead: number): T {
  return permuteRows(data, rows, cols, nHead, true);
}

/** HF rotate-half rows → interleaved (adjacent-pair) rows, as convert_hf_to_gguf.py does. */
export function halvesToPairs<T extends AnyTypedArray>(data: T, rows: number, cols: number, nHead: number): T {
  return permuteRows(data, rows, cols, nHead, false);
}

function permuteRows<T extends AnyTypedArray>(data: T, rows: number, cols: number, nHead: number, toHalves: boolean): T {
  if (data.length !== rows * cols) throw new RangeError(`q/k permutation: ${data.length} values is not ${rows}×${cols}`);
  if (rows % nHead !== 0 || (rows / nHead) % 2 !== 0) throw new RangeError(`q/k permutation: ${rows} rows do not split into ${nHead} heads of even size`);
  const d = rows / nHead, half = d / 2;
  const out = new (data.constructor as new (n: number) => T)(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let j = 0; j < half; j++) {
      for (let t = 0; t < 2; t++) {
        const pairRow = h * d + 2 * j + t;
        const halfRow = h * d + t * half + j;
        const [src, dst] = toHalves ? [pairRow, halfRow] : [halfRow, pairRow];
        out.set(data.subarray(src * cols, (src + 1) * cols) as never, dst * cols);
      }
    }
  }
  return out;
}
