// Builds the optional native kernel addon (native/, N-API + OpenBLAS) with node-gyp and copies it to
// build/lowbit_native.node. Never fails the install: on any problem it exits 0 and writes the reason
// to build/native-status.json, which src/backend/cpu/kernels/native.ts reports as "native unavailable: …".
// Usage: node scripts/build-native.mjs   (LOWBIT_SKIP_NATIVE=1 skips the build)
import { existsSync, mkdirSync, rmSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build');
mkdirSync(out, { recursive: true });

rmSync(join(out, 'lowbit_native.node'), { force: true }); // a failed build must not leave a stale artifact behind

function finish(ok, reason, log = '') {
  const status = { ok, reason, node: process.version, builtAt: new Date().toISOString(), log: log.slice(-4000) };
  writeFileSync(join(out, 'native-status.json'), JSON.stringify(status, null, 2) + '\n');
  console.log(ok ? 'lowbit: native kernels built (build/lowbit_native.node)' : `lowbit: native kernels not built: ${reason}`);
  process.exit(0);
}

if (process.env.LOWBIT_SKIP_NATIVE) finish(false, 'skipped (LOWBIT_SKIP_NATIVE is set)');

// OpenBLAS headers: Debian/Ubuntu put cblas.h in /usr/include or the multiarch folder.
const multiarch = existsSync('/usr/include') ? readdirSync('/usr/include').filter((d) => d.endsWith('-linux-gnu')) : [];
const cblas = ['/usr/include/cblas.h', '/usr/local/include/cblas.h', ...multiarch.map((d) => `/usr/include/${d}/cblas.h`)];
if (!cblas.some((p) => existsSync(p))) finish(false, 'libopenblas not found at build time (no cblas.h; install Debian libopenblas-dev)');

// node-gyp: the copy that ships with npm, next to this node binary, else whatever `npm exec` finds.
const npmGyp = [
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((p) => existsSync(p));
const gypArgs = ['rebuild', '--directory', join(root, 'native')];
// Local headers (Debian's nodejs-dev / a source install) avoid a download of the Node headers.
const nodedir = dirname(dirname(process.execPath));
if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) gypArgs.push(`--nodedir=${nodedir}`);

const r = npmGyp
  ? spawnSync(process.execPath, [npmGyp, ...gypArgs], { encoding: 'utf8' })
  : spawnSync('npm', ['exec', '--yes', '--', 'node-gyp', ...gypArgs], { encoding: 'utf8' });
const log = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
if (r.error) finish(false, `could not run node-gyp: ${r.error.message}`, log);
if (r.status !== 0) {
  const firstError = log.split('\n').find((l) => /error/i.test(l) && !/gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
  finish(false, `node-gyp failed (exit ${r.status}): ${firstError?.trim() ?? 'see log'}`, log);
}
const built = join(root, 'native', 'build', 'Release', 'lowbit_native.node');
if (!existsSync(built)) finish(false, `node-gyp succeeded but ${built} is missing`, log);
copyFileSync(built, join(out, 'lowbit_native.node'));
finish(true, 'built', log);
