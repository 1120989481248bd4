/**
 * The WebGPU reference Gram kernel's two-float arithmetic (kernels/gram.wgsl.ts: Veltkamp split,
 * Dekker's TwoProduct from the splits, TwoSum, add_product, merge_stored, then readGram's hi + lo in
 * float64) emulated on the host, every float32 operation rounded as IEEE does (Math.fround of the
 * float64 result: exact for ·, and for + and − of float32 values, 53 ≥ 2·24 + 2 bits make the double
 * rounding innocuous), and the same arithmetic with one compiler rewrite applied, the rewrites that
 * the kernels' keep()s exist to prevent (gramFast.wgsl.ts: add_product_lean says which and why):
 * - 'fusedProd': prod = a·b fused into the adds that use it (s = fma(a, b, hi); e starts from
 *   fma(ah, bh, −a·b), the float32 rounding of the exact value);
 * - 'foldedSum': bb = (hi + prod) − hi folded to prod (NIR's ('~fadd', ('fneg', a), ('fadd', a, b)) → b);
 * - 'foldedDiff': aa = s − (s − hi) folded to hi (the x − (x − y) → y peephole).
 * Test data meant to catch a missing barrier must give other bits under each (gram.test.ts).
 */
export type GramVariant = 'exact' | 'fusedProd' | 'foldedSum' | 'foldedDiff';

const f = Math.fround;

/** fl32(x·y + z) rounded once, for float32 x, y, z (no overflow or underflow). */
export function fma32(x: number, y: number, z: number): number {
  const p = x * y; // exact: 48 significant bits
  const s = p + z;
  const bv = s - p;
  const err = (p - (s - bv)) + (z - bv); // p + z = s + err exactly (TwoSum in float64)
  const r = f(s);
  if (err === 0 || r === s) return r; // s a float32: |err| ≤ ulp64(s)/2 cannot move the rounding
  const other = 2 * s - r; // the other float32 neighbour if s is their midpoint
  if (s - r !== other - s || f(other) !== other) return r; // not a midpoint: fround(s) is right
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

function split(a: number): [number, number] {
  const c = f(4097 * a);
  const hi = f(c - f(c - a));
  return [hi, f(a - hi)];
}

function twoSum(a: number, b: number, variant: GramVariant = 'exact'): [number, number] {
  const s = f(a + b);
  const bb = variant === 'foldedSum' ? b : f(s - a);
  const aa = variant === 'foldedDiff' ? a : f(s - bb);
  return [s, f(f(a - aa) + f(b - bb))];
}

/** acc (hi, lo) += a·b: the reference's two_prod_split then add_product. */
function step(acc: [number, number], a: number, b: number, variant: GramVariant): void {
  const [ah, al] = split(a), [bh, bl] = split(b);
  const prod = f(a * b);
  const first = variant === 'fusedProd' ? fma32(-a, b, f(ah * bh)) : f(f(ah * bh) - prod);
  const e = f(f(f(f(first + f(ah * bl)) + f(al * bh)) + f(al * bl)));
  let r: [number, number];
  if (variant === 'fusedProd') {
    const s = fma32(a, b, acc[0]); // prod still feeds bb and b − bb as a value
    const bb = f(s - acc[0]);
    r = [s, f(f(acc[0] - f(s - bb)) + f(prod - bb))];
  } else {
    r = twoSum(acc[0], prod, variant);
  }
  acc[0] = r[0];
  acc[1] = f(acc[1] + f(r[1] + e));
}

/** S = Σ over calls of xᵀx as the device kernels sum it, [K, K] in float64 (readGram's hi + lo, mirrored). */
export function emulateGram(xs: readonly Float32Array[], K: number, variant: GramVariant = 'exact'): Float64Array {
  const hi = new Float32Array(K * K), lo = new Float32Array(K * K);
  for (const x of xs) {
    const T = x.length / K;
    for (let a = 0; a < K; a++) {
      for (let b = a; b < K; b++) {
        const acc: [number, number] = [0, 0];
        for (let t = 0; t < T; t++) step(acc, x[t * K + a]!, x[t * K + b]!, variant);
        const i = a * K + b; // merge_stored
        const q = twoSum(hi[i]!, acc[0]);
        const l = f(f(lo[i]! + acc[1]) + q[1]);
        [hi[i], lo[i]] = twoSum(q[0], l);
      }
    }
  }
  const S = new Float64Array(K * K);
  for (let a = 0; a < K; a++) for (let b = a; b < K; b++) S[a * K + b] = S[b * K + a] = hi[a * K + b]! + lo[a * K + b]!;
  return S;
}
