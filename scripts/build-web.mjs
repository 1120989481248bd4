// Bundles the browser evaluation page (web/eval.html) with esbuild: src/web/evalPage.ts → eval.js,
// src/web/evalWorker.ts → evalWorker.js and src/web/wasmThread.ts → wasmThread.js (each extra wasm
// thread), into dist/web/ (or --outdir DIR).
// The io/ and data/ readers import node:fs, node:path, node:crypto...; here those imports resolve to
// src/web/shims/ (the tab's in-memory file system of the picked files, src/web/vfs.ts), and src/paths.ts
// to src/web/browserPaths.ts. A node: module without a shim stops the build, naming it. The wasm kernels
// are inlined as bytes (binary loader). Node's own build (tsc) is untouched.
// Usage: node scripts/build-web.mjs [--outdir DIR]
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEB = join(ROOT, 'src', 'web');
const PATHS = join(ROOT, 'src', 'paths.ts');

const browserNode = {
  name: 'lowbit-browser-node',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => {
      const shim = join(WEB, 'shims', `${args.path.slice('node:'.length)}.ts`);
      if (existsSync(shim)) return { path: shim };
      return { errors: [{ text: `${args.path} (imported by ${args.importer}) has no browser shim in src/web/shims/` }] };
    });
    b.onResolve({ filter: /paths\.js$/ }, (args) => {
      if (resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts')) === PATHS) return { path: join(WEB, 'browserPaths.ts') };
      return undefined;
    });
  },
};

/** Builds the page and its worker into `outdir`; returns esbuild's result (metafile included). */
export async function buildWeb(outdir = join(ROOT, 'dist', 'web')) {
  return build({
    entryPoints: { eval: join(WEB, 'evalPage.ts'), evalWorker: join(WEB, 'evalWorker.ts'), wasmThread: join(WEB, 'wasmThread.ts') },
    outdir, bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
    // the optional Dawn package: imported by capabilities.ts only in Node (a tab has navigator.gpu or none)
    external: ['webgpu'],
    loader: { '.wasm': 'binary' }, plugins: [browserNode], sourcemap: true, metafile: true, logLevel: 'warning',
    tsconfig: join(ROOT, 'tsconfig.json'),
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--outdir');
  const outdir = at > 0 ? resolve(process.argv[at + 1] ?? '') : undefined;
  const r = await buildWeb(outdir);
  for (const [file, o] of Object.entries(r.metafile.outputs)) if (file.endsWith('.js')) console.log(`${file}: ${(o.bytes / 1024).toFixed(0)} KiB`);
}
