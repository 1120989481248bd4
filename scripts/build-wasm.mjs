// Builds the 'wasm' kernel provider: src/backend/cpu/wasm/kernels.c -> build/lowbit_kernels.wasm with
// clang --target=wasm32 (128-bit SIMD, atomics, shared imported memory, no libc) and lld's wasm-ld.
// Never fails the install: on any problem it exits 0 and writes the reason to build/wasm-status.json,
// which src/backend/cpu/kernels/wasm.ts reports as "wasm unavailable: …".
// Needs Debian clang and lld (clang-14 or later). CC=... picks another clang.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build');
mkdirSync(out, { recursive: true });
const wasm = join(out, 'lowbit_kernels.wasm');

rmSync(wasm, { force: true }); // a failed build must not leave a stale artifact behind

function finish(ok, reason, log = '') {
  writeFileSync(join(out, 'wasm-status.json'), JSON.stringify({ ok, reason, builtAt: new Date().toISOString(), log: log.slice(-4000) }, null, 2) + '\n');
  console.log(ok ? `lowbit: wasm kernels built (build/lowbit_kernels.wasm)` : `lowbit: wasm kernels not built: ${reason}`);
  process.exit(0);
}

const candidates = process.env.CC ? [process.env.CC] : ['clang', 'clang-19', 'clang-18', 'clang-17', 'clang-16', 'clang-15', 'clang-14'];
const cc = candidates.find((c) => spawnSync(c, ['--version']).status === 0);
if (!cc) finish(false, 'clang not found at build time (install Debian clang and lld)');

const args = [
  '--target=wasm32', '-O3', '-std=c11', '-Wall', '-Werror',
  '-msimd128', '-matomics', '-mbulk-memory', '-mnontrapping-fptoint', '-mmutable-globals',
  '-nostdlib', '-ffreestanding', '-fno-builtin',
  '-Wl,--no-entry', '-Wl,--import-memory', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296',
  '-Wl,--export=__heap_base', '-Wl,-z,stack-size=65536',
  join(root, 'src', 'backend', 'cpu', 'wasm', 'kernels.c'), '-o', wasm,
];
const r = spawnSync(cc, args, { encoding: 'utf8' });
const log = `${cc} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}`;
if (r.status !== 0 || !existsSync(wasm)) {
  const first = (r.stderr ?? '').split('\n').find((l) => /error/.test(l));
  finish(false, /wasm-ld|lld/.test(r.stderr ?? '') && !existsSync('/usr/bin/wasm-ld')
    ? 'wasm-ld not found (install Debian lld)' : `clang failed: ${first?.trim() ?? `exit ${r.status}`}`, log);
}
// Instances on several threads share one memory but not a C stack: the kernels must not use one.
const asm = spawnSync(cc, [...args.filter((a) => !a.startsWith('-Wl,') && a !== wasm && a !== '-o'), '-S', '-o', '-'], { encoding: 'utf8' });
if (asm.status !== 0 || /__stack_pointer/.test(asm.stdout)) finish(false, 'kernels.c uses the C stack (not safe with shared memory threads); see log', log + (asm.stderr ?? ''));
finish(true, 'built', log);
