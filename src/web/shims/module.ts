/**
 * `node:module` in the web bundle: createRequire loads the native N-API addon in Node
 * (backend/cpu/kernels/native.ts); a tab has no addons, so it throws (the kernel choice then says
 * "native unavailable" with this reason; the page asks for the wasm kernels anyway).
 */
export function createRequire(): never {
  throw new Error('lowbit in a browser tab: native addons cannot be loaded (node:module createRequire)');
}
