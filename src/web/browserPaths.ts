/**
 * src/paths.ts in the web bundle (scripts/build-web.mjs substitutes this file for it): the package root
 * is the folder /lowbit of the tab's in-memory file system (vfs.ts), which holds what the readers look
 * for under it: assets/data/ (the dataset files, fetched from the server that serves the page) and the
 * wasm kernels. Same exports as src/paths.ts.
 */
export const PACKAGE_ROOT = '/lowbit';
export const ASSETS = `${PACKAGE_ROOT}/assets`;
export const DEFAULT_MODEL = `${ASSETS}/models/TinyStories-656K`;
/** No environment variables in a tab: always the bundled layout under ASSETS. */
export function defaultDataDir(): string {
  return `${ASSETS}/data`;
}
