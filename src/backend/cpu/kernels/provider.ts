/**
 * What the kernel providers share: argument checks run before any kernel (so a wrong call throws a
 * RangeError and writes nothing), and the place where install-time builds leave their artifacts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuKernels } from './kernels.js';
import { checkQuantWeight } from './qgemm.js';

function fail(op: string, msg: string): never {
  throw new RangeError(`${op}: ${msg}`);
}
function dims(op: string, d: Record<string, number>): void {
  for (const [k, v] of Object.entries(d)) if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) fail(op, `${k} = ${v} is not a non-negative int32`);
}
function len(op: string, what: string, a: ArrayLike<number>, want: number): void {
  if (a.length !== want) fail(op, `${what} has ${a.length} elements, expected ${want}`);
}

/** The contract's argument checks, one per op; each throws a RangeError naming the op and the array. */
const checks = Object.freeze({
  gemm(x: Float32Array, w: ArrayLike<number>, y: Float32Array, M: number, N: number, K: number, op = 'gemm'): void {
    dims(op, { M, N, K });
    len(op, 'x', x, M * K); len(op, 'w', w, N * K); len(op, 'y', y, M * N);
  },
  rmsnorm(x: Float32Array, gamma: Float32Array, y: Float32Array, M: number, D: number): void {
    dims('rmsnorm', { M, D });
    len('rmsnorm', 'x', x, M * D); len('rmsnorm', 'gamma', gamma, D); len('rmsnorm', 'y', y, M * D);
  },
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array): void {
    dims('rope', { T, nHeads, headDim });
    if (headDim % 2 !== 0) fail('rope', `headDim ${headDim} is odd`);
    len('rope', 'x', x, T * nHeads * headDim); len('rope', 'cos', cos, T * headDim / 2); len('rope', 'sin', sin, T * headDim / 2);
  },
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
    T: number, S: number, offset: number, nHeads: number, nKvHeads: number, headDim: number): void {
    dims('attention', { T, S, offset, nHeads, nKvHeads, headDim });
    if (nKvHeads === 0 || nHeads % nKvHeads !== 0) fail('attention', `${nHeads} heads is not a multiple of ${nKvHeads} KV heads`);
    if (S < offset + T) fail('attention', `${S} keys cannot cover offset ${offset} + ${T} queries`);
    len('attention', 'q', q, T * nHeads * headDim); len('attention', 'out', out, T * nHeads * headDim);
    len('attention', 'k', k, S * nKvHeads * headDim); len('attention', 'v', v, S * nKvHeads * headDim);
  },
  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    dims('siluMul', { n });
    len('siluMul', 'gate', gate, n); len('siluMul', 'up', up, n); len('siluMul', 'out', out, n);
  },
  nll(logits: Float32Array, targets: Int32Array, out: Float64Array, T: number, V: number): void {
    dims('nll', { T, V });
    len('nll', 'logits', logits, T * V); len('nll', 'targets', targets, T); len('nll', 'out', out, T);
    for (let t = 0; t < T; t++) {
      const tgt = targets[t]!;
      if (tgt < 0 || tgt >= V) fail('nll', `target ${tgt} at row ${t} outside the vocabulary of ${V}`);
    }
  },
  gram(x: Float32Array, S: Float64Array, n: number, K: number, op = 'gram'): void {
    dims(op, { n, K });
    len(op, 'x', x, n * K); len(op, 'S', S, K * K);
  },
  square(op: string, A: Float64Array, n: number): void {
    dims(op, { n });
    len(op, 'A', A, n * n);
  },
});

/** A provider whose every method runs the argument checks first. */
export function checked(k: CpuKernels): CpuKernels {
  const out: CpuKernels = {
    name: k.name,
    gemm: (x, w, y, M, N, K) => { checks.gemm(x, w, y, M, N, K); k.gemm(x, w, y, M, N, K); },
    gemmHalf: (x, w, dtype, y, M, N, K) => {
      if (dtype !== 'bf16' && dtype !== 'f16') fail('gemmHalf', `dtype ${String(dtype)} is not bf16 or f16`);
      checks.gemm(x, w, y, M, N, K, 'gemmHalf');
      k.gemmHalf(x, w, dtype, y, M, N, K);
    },
    rmsnorm: (x, g, y, M, D, eps) => { checks.rmsnorm(x, g, y, M, D); k.rmsnorm(x, g, y, M, D, eps); },
    rope: (x, T, H, hd, c, s) => { checks.rope(x, T, H, hd, c, s); k.rope(x, T, H, hd, c, s); },
    attention: (q, kk, v, o, T, S, off, H, KVH, hd) => {
      checks.attention(q, kk, v, o, T, S, off, H, KVH, hd);
      k.attention(q, kk, v, o, T, S, off, H, KVH, hd);
    },
    siluMul: (g, u, o, n) => { checks.siluMul(g, u, o, n); k.siluMul(g, u, o, n); },
    nll: (l, t, o, T, V) => { checks.nll(l, t, o, T, V); k.nll(l, t, o, T, V); },
  };
  const { gram, cholesky, triangularInverse, choleskyInverse } = k;
  const { gemmQ } = k;
  if (gemmQ) {
    out.gemmQ = (x, q, y, M) => {
      checkQuantWeight(q);
      dims('gemmQ', { M });
      len('gemmQ', 'x', x, M * q.cols); len('gemmQ', 'y', y, M * q.rows);
      gemmQ(x, q, y, M);
    };
  }
  const { gemmNN, gemmNNHalf, gemmTN } = k;
  const nn = (op: string, dy: Float32Array, w: ArrayLike<number>, y: Float32Array, M: number, N: number, K: number) => {
    dims(op, { M, N, K });
    len(op, 'dy', dy, M * N); len(op, 'w', w, N * K); len(op, 'y', y, M * K);
  };
  if (gemmNN) out.gemmNN = (dy, w, y, M, N, K) => { nn('gemmNN', dy, w, y, M, N, K); gemmNN(dy, w, y, M, N, K); };
  if (gemmNNHalf) {
    out.gemmNNHalf = (dy, w, dtype, y, M, N, K) => {
      if (dtype !== 'bf16' && dtype !== 'f16') fail('gemmNNHalf', `dtype ${String(dtype)} is not bf16 or f16`);
      nn('gemmNNHalf', dy, w, y, M, N, K);
      gemmNNHalf(dy, w, dtype, y, M, N, K);
    };
  }
  if (gemmTN) {
    out.gemmTN = (a, b, y, M, N, K) => {
      dims('gemmTN', { M, N, K });
      len('gemmTN', 'a', a, M * N); len('gemmTN', 'b', b, M * K); len('gemmTN', 'y', y, N * K);
      gemmTN(a, b, y, M, N, K);
    };
  }
  if (gram) out.gram = (x, S, n, K) => { checks.gram(x, S, n, K); gram(x, S, n, K); };
  const { gramF32 } = k;
  if (gramF32) out.gramF32 = (x, S, n, K) => { checks.gram(x, S, n, K, 'gramF32'); gramF32(x, S, n, K); };
  if (cholesky) out.cholesky = (A, n) => { checks.square('cholesky', A, n); return cholesky(A, n); };
  if (triangularInverse) out.triangularInverse = (L, n) => { checks.square('triangularInverse', L, n); triangularInverse(L, n); };
  if (choleskyInverse) out.choleskyInverse = (A, n) => { checks.square('choleskyInverse', A, n); return choleskyInverse(A, n); };
  const { gemmF64, symmetricEigen, qr } = k;
  if (gemmF64) {
    out.gemmF64 = (x, w, y, M, N, K) => {
      dims('gemmF64', { M, N, K });
      len('gemmF64', 'x', x, M * K); len('gemmF64', 'w', w, N * K); len('gemmF64', 'y', y, M * N);
      gemmF64(x, w, y, M, N, K);
    };
  }
  if (k.resident) out.resident = k.resident;
  if (symmetricEigen) out.symmetricEigen = (A, n) => { checks.square('symmetricEigen', A, n); return symmetricEigen(A, n); };
  if (qr) {
    out.qr = (A, m, n) => {
      dims('qr', { m, n });
      if (m < n) fail('qr', `m = ${m} < n = ${n}: a thin QR needs at least as many rows as columns`);
      len('qr', 'A', A, m * n);
      return qr(A, m, n);
    };
  }
  return Object.freeze(out);
}

/** Why an install-time build did not produce an artifact, from build/<name>-status.json. */
export function buildStatusReason(root: string, name: 'native'): string {
  const p = join(root, 'build', `${name}-status.json`);
  if (!existsSync(p)) return `not built (no build/${name}-status.json; run node scripts/build-${name}.mjs)`;
  try {
    const s = JSON.parse(readFileSync(p, 'utf8')) as { ok?: boolean; reason?: string };
    return s.ok ? 'built, but the artifact is missing' : (s.reason ?? 'build failed');
  } catch { return `unreadable build/${name}-status.json`; }
}
