// Builds the 'wasm' kernel provider: src/backend/cpu/wasm/kernels.c -> src/backend/cpu/wasm/lowbit_kernels.wasm
// with clang --target=wasm32 (128-bit SIMD, atomics, shared imported memory, no libc) and lld's wasm-ld.
//
// The built .wasm is committed: WebAssembly is portable, so a machine without clang still gets the
// SIMD kernels, and installing lowbit builds nothing for them.
//   node scripts/build-wasm.mjs          rebuild the committed file (after changing kernels.c)
//   node scripts/build-wasm.mjs --check  rebuild into build/ and fail (exit 1) unless it equals the committed
//                                        file byte for byte (CI runs this; Debian bookworm's clang 14 + lld)
// Needs Debian clang and lld (clang-14 or later). CC=... picks another clang.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'backend', 'cpu', 'wasm', 'kernels.c');
const committed = join(root, 'src', 'backend', 'cpu', 'wasm', 'lowbit_kernels.wasm');
const check = process.argv.includes('--check');
const out = join(root, 'build');
mkdirSync(out, { recursive: true });
const built = join(out, 'lowbit_kernels.wasm');
rmSync(built, { force: true });

function fail(reason, log = '') {
  console.error(`lowbit: wasm kernels: ${reason}${log ? `\n${log}` : ''}`);
  process.exit(1);
}

const candidates = process.env.CC ? [process.env.CC] : ['clang', 'clang-19', 'clang-18', 'clang-17', 'clang-16', 'clang-15', 'clang-14'];
const cc = candidates.find((c) => spawnSync(c, ['--version']).status === 0);
if (!cc) fail('clang not found (install Debian clang and lld)');

const args = [
  '--target=wasm32', '-O3', '-std=c11', '-Wall', '-Werror',
  '-msimd128', '-matomics', '-mbulk-memory', '-mnontrapping-fptoint', '-mmutable-globals',
  '-nostdlib', '-ffreestanding', '-fno-builtin',
  '-Wl,--no-entry', '-Wl,--import-memory', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296',
  '-Wl,--export=__heap_base', '-Wl,-z,stack-size=65536',
  source, '-o', built,
];
const r = spawnSync(cc, args, { encoding: 'utf8' });
const log = `${cc} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}`;
if (r.status !== 0 || !existsSync(built)) {
  fail(/wasm-ld|lld/.test(r.stderr ?? '') && !existsSync('/usr/bin/wasm-ld') ? 'wasm-ld not found (install Debian lld)' : `clang failed (exit ${r.status})`, log);
}
// Instances on several threads share one memory but not a C stack: the kernels must not use one.
const asm = spawnSync(cc, [...args.filter((a) => !a.startsWith('-Wl,') && a !== built && a !== '-o'), '-S', '-o', '-'], { encoding: 'utf8' });
if (asm.status !== 0 || /__stack_pointer/.test(asm.stdout)) fail('kernels.c uses the C stack (not safe with shared memory threads)', log + (asm.stderr ?? ''));

const version = spawnSync(cc, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
if (check) {
  if (!existsSync(committed)) fail(`${committed} is missing: run node scripts/build-wasm.mjs and commit it`);
  if (!readFileSync(built).equals(readFileSync(committed))) {
    fail(`${committed} differs from what ${version} builds from kernels.c: run node scripts/build-wasm.mjs and commit the result`);
  }
  console.log(`lowbit: wasm kernels: the committed lowbit_kernels.wasm equals the build from kernels.c (${version})`);
} else {
  copyFileSync(built, committed);
  console.log(`lowbit: wasm kernels built into ${committed} (${version}); commit it`);
}
