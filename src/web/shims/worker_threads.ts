/**
 * `node:worker_threads` in the web bundle: the wasm kernel pool (backend/cpu/wasm/pool.ts) runs with one
 * thread in a tab, inside the Web Worker that runs the evaluation, so it starts no worker_threads; a
 * multi-threaded pool would need them and throws here saying so.
 */
export const isMainThread = true;
export const workerData = null;
const unavailable = (name: string): never => {
  throw new Error(`lowbit in a browser tab: worker_threads.${name} is not available (the wasm kernels run with 1 thread in the tab's worker)`);
};
export class Worker { constructor() { unavailable('Worker'); } }
export class MessageChannel { constructor() { unavailable('MessageChannel'); } }
export type MessagePort = never;
export function receiveMessageOnPort(): never { return unavailable('receiveMessageOnPort'); }
