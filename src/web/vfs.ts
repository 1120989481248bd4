/**
 * The file system lowbit's readers see in a browser tab: an in-memory map from path to file, behind
 * the `node:fs` shim (shims/fs.ts) that the web bundle uses instead of Node's module (scripts/build-web.mjs).
 * Two kinds of entry: bytes already in memory (the fetched dataset files, the wasm kernels) and the
 * user's picked files (File/Blob), read lazily by range with FileReaderSync, so a checkpoint is never
 * copied whole: the readers' positioned reads (io/fileBytes.ts) read only the tensors they need.
 * FileReaderSync exists in Web Workers only, which is where the evaluation runs (evalWorker.ts).
 *
 * Paths are POSIX; the working directory is "/", so "a/b" and "/a/b" name the same file. Folders
 * exist implicitly: a folder is any prefix of a file's path.
 */

export interface VfsFile {
  readonly size: number;
  /** bytes [offset, offset + length) of the file, the range already checked by the caller */
  read(offset: number, length: number): Uint8Array;
}

const files = new Map<string, VfsFile>();

/** The map key of `path`: "." and ".." resolved, no leading or trailing "/". */
export function vfsKey(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

export function addBytes(path: string, bytes: Uint8Array): void {
  files.set(vfsKey(path), { size: bytes.byteLength, read: (o, n) => bytes.slice(o, o + n) });
}

interface FileReaderSyncApi { readAsArrayBuffer(b: Blob): ArrayBuffer }
/** A picked file, read by range on demand (FileReaderSync: Web Workers only). */
export function addBlob(path: string, blob: Blob): void {
  files.set(vfsKey(path), {
    size: blob.size,
    read(o, n) {
      const Reader = (globalThis as { FileReaderSync?: new () => FileReaderSyncApi }).FileReaderSync;
      if (!Reader) throw new Error(`${path}: a picked file can be read synchronously only inside a Web Worker (FileReaderSync)`);
      return new Uint8Array(new Reader().readAsArrayBuffer(blob.slice(o, o + n)));
    },
  });
}

/** Forgets every file whose path starts with `prefix` (all files when it is empty). */
export function removeUnder(prefix: string): void {
  const k = vfsKey(prefix);
  for (const f of [...files.keys()]) if (k === '' || f === k || f.startsWith(k + '/')) files.delete(f);
}

export function vfsFile(path: string): VfsFile | undefined {
  return files.get(vfsKey(path));
}

export function vfsIsDir(path: string): boolean {
  const k = vfsKey(path);
  if (k === '') return true;
  for (const f of files.keys()) if (f.startsWith(k + '/')) return true;
  return false;
}

/** Names directly inside folder `path` (files and folders), sorted; undefined when it is no folder. */
export function vfsList(path: string): { name: string; dir: boolean }[] | undefined {
  if (!vfsIsDir(path)) return undefined;
  const k = vfsKey(path), start = k === '' ? '' : k + '/';
  const seen = new Map<string, boolean>();
  for (const f of files.keys()) {
    if (!f.startsWith(start)) continue;
    const rest = f.slice(start.length), slash = rest.indexOf('/');
    const name = slash < 0 ? rest : rest.slice(0, slash);
    seen.set(name, (seen.get(name) ?? false) || slash >= 0);
  }
  return [...seen].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, dir]) => ({ name, dir }));
}
