/**
 * Seconds per float64 linear algebra call of the native and wasm providers (the quantizers' hot
 * paths): gram (H += xᵀx, 128 rows), Cholesky (dpotrf; wasm: blocked as dpotrf), triangular inverse
 * (dtrtri; wasm: blocked as dtrtri), symmetric eigendecomposition (dsyevd) and thin QR (dgeqrf +
 * dorgqr; native only: wasm's are the js references), and gemmF64 (dgemm, [n,n]·[128,n]ᵀ). Prints; asserts nothing.
 *   node dist/bench/linalg.js [--threads N] [--sizes 4096,14336] [--skip eigen,qr] [--kernels native,wasm]
 */
import { availableParallelism } from 'node:os';
import { loadNativeKernels } from '../src/backend/cpu/kernels/native.js';
import { loadWasmKernels } from '../src/backend/cpu/kernels/wasm.js';

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
const providers = (arg('kernels') ?? 'native,wasm').split(',');
for (const name of providers) {
  const loaded = name === 'wasm' ? loadWasmKernels(threads) : loadNativeKernels(threads);
  if (!loaded.ok) { console.log(`${name} provider unavailable: ${loaded.reason}`); continue; }
  const k = loaded.kernels;
  console.log(name === 'wasm' ? `float64 linalg, wasm SIMD, ${threads} thread(s) (gram, cholesky, triangularInverse, gemmF64; eigen and qr: js)`
    : `float64 linalg, native (OpenBLAS), ${threads} thread(s) for gram/gemmF64; LAPACK single-threaded`);
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
    const tr = seconds(() => k.gram!(x, H, 128, n));
    console.log(`  n=${n}  gram 128 rows    ${tr.toFixed(2)} s  (${((128 * n * n) / tr / 1e9).toFixed(1)} GFLOP/s)`);
    const L = A.slice();
    const tc = seconds(() => { if (!k.cholesky!(L, n)) throw new Error('not SPD'); });
    console.log(`  n=${n}  cholesky         ${tc.toFixed(2)} s  (${((2 * n ** 3) / 3 / tc / 1e9).toFixed(1)} GFLOP/s)`);
    const ti = seconds(() => k.triangularInverse!(L, n));
    console.log(`  n=${n}  triangularInverse ${ti.toFixed(2)} s  (${(n ** 3 / 3 / ti / 1e9).toFixed(1)} GFLOP/s)`);
    if (name === 'wasm') continue; // eigen and qr are the js references there
    if (!skip.has('eigen')) console.log(`  n=${n}  symmetricEigen   ${seconds(() => k.symmetricEigen!(A, n)).toFixed(2)} s`);
    if (!skip.has('qr')) console.log(`  n=${n}  qr               ${seconds(() => k.qr!(B, n, n)).toFixed(2)} s`);
  }
}
process.exit(0);
