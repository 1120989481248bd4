/**
 * `node:worker_threads` in the web bundle: in a tab the wasm kernel pool (backend/cpu/wasm/pool.ts) gets
 * its extra threads as Web Workers from the evaluation worker (../wasmThreads.ts, passed as
 * `startThreads`), so it never starts worker_threads; a pool that tried would throw here saying so.
 */
export const isMainThread = true;
export const workerData = null;
const unavailable = (name: string): never => {
  throw new Error(`lowbit in a browser tab: worker_threads.${name} is not available (a tab's wasm threads are Web Workers: src/web/wasmThreads.ts)`);
};
export class Worker { constructor() { unavailable('Worker'); } }
export class MessageChannel { constructor() { unavailable('MessageChannel'); } }
export type MessagePort = never;
export function receiveMessageOnPort(): never { return unavailable('receiveMessageOnPort'); }
