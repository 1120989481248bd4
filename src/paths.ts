import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json), found from this compiled file's location. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'assets'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('lowbit: cannot find the package root (package.json + assets/)');
}

export const PACKAGE_ROOT = findRoot();
/** Bundled models and data (assets/data/README.md lists the data files). */
export const ASSETS = join(PACKAGE_ROOT, 'assets');
export const DEFAULT_MODEL = join(ASSETS, 'models', 'TinyStories-656K');
/** Data directory: $LOWBIT_DATA, else the bundled assets/data (layout: assets/data/README.md). */
export function defaultDataDir(): string {
  return process.env.LOWBIT_DATA ? resolve(process.env.LOWBIT_DATA) : join(ASSETS, 'data');
}
