/**
 * `node:zlib` in the web bundle. Nothing is decompressed synchronously in a tab: a gzip-compressed
 * dataset file is decompressed when it is fetched or picked (DecompressionStream, ../evalWorker.ts)
 * and stored under its name without ".gz", so the readers find the plain file first.
 */
export function gunzipSync(): never {
  throw new Error('lowbit in a browser tab: zlib.gunzipSync is not available (.gz files are decompressed when fetched or picked)');
}
