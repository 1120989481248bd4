/**
 * Seconds per float64 linear algebra call of the native provider (the quantizers' hot paths): gram
 * (H += xᵀx, 128 rows), Cholesky (dpotrf), symmetric eigendecomposition (dsyevd), thin QR (dgeqrf +
 * dorgqr), and gemmF64 (dgemm, [n,n]·[128,n]ᵀ). Prints; asserts nothing.
 *   node dist/bench/linalg.js [--threads N] [--sizes 4096,14336] [--skip eigen,qr]
 */
import { availableParallelism } from 'node:os';
import { loadNativeKernels } from '../src/backend/cpu/kernels/native.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A deterministic pseudo-random n×n matrix with entries in [−0.5, 0.5). */
function pseudoRandom(n: number): Float64Array {
  return new Float64Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
}

function seconds(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

const threads = Number(arg('threads') ?? availableParallelism());
const sizes = (arg('sizes') ?? '4096').split(',').map(Number);
const skip = new Set((arg('skip') ?? '').split(','));
const loaded = loadNativeKernels(threads);
if (!loaded.ok) {
  console.log(`native provider unavailable: ${loaded.reason}`);
} else {
  const k = loaded.kernels;
  console.log(`float64 linalg, native (OpenBLAS), ${threads} thread(s) for gram/gemmF64; LAPACK single-threaded`);
  for (const n of sizes) {
    const B = pseudoRandom(n), A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) { // symmetric, diagonally dominant: SPD by Gershgorin
      for (let j = 0; j < i; j++) { const v = B[i * n + j]!; A[i * n + j] = v; A[j * n + i] = v; }
      A[i * n + i] = n;
    }
    const E = B.subarray(0, 128 * n), Y = new Float64Array(n * 128);
    const tg = seconds(() => k.gemmF64!(B, E, Y, n, 128, n)); // GPTQ's lazy update shape: n target columns × 128 rows × n
    console.log(`  n=${n}  gemmF64 n×128×n  ${tg.toFixed(2)} s  (${((2 * 128 * n * n) / tg / 1e9).toFixed(1)} GFLOP/s)`);
    const x = new Float32Array(128 * n).map((_, i) => ((i * 104729) % 997) / 997 - 0.5), H = new Float64Array(n * n).fill(1); // pages touched before timing
    console.log(`  n=${n}  gram 128 rows    ${seconds(() => k.gram!(x, H, 128, n)).toFixed(2)} s`);
    const L = A.slice();
    console.log(`  n=${n}  cholesky         ${seconds(() => { if (!k.cholesky!(L, n)) throw new Error('not SPD'); }).toFixed(2)} s`);
    console.log(`  n=${n}  triangularInverse ${seconds(() => k.triangularInverse!(L, n)).toFixed(2)} s`);
    if (!skip.has('eigen')) console.log(`  n=${n}  symmetricEigen   ${seconds(() => k.symmetricEigen!(A, n)).toFixed(2)} s`);
    if (!skip.has('qr')) console.log(`  n=${n}  qr               ${seconds(() => k.qr!(B, n, n)).toFixed(2)} s`);
  }
}
