/**
 * `--model org/name[@revision]`: the files a lowbit model needs, from the Hugging Face hub into its cache (hfCache.ts),
 * with the hub's HTTP semantics as huggingface_hub uses them:
 *
 * 1. GET  {endpoint}/api/models/{repo}/revision/{revision} → the commit (`sha`) and the file list (`siblings`).
 * 2. HEAD {endpoint}/{repo}/resolve/{commit}/{file}, redirects not followed → ETag (X-Linked-Etag for LFS files: their
 *    sha256), size (X-Linked-Size or Content-Length), X-Repo-Commit.
 * 3. GET the same URL, redirects followed (LFS files: 302 to a CDN), into blobs/<etag>.incomplete; a partial file is
 *    resumed with `Range: bytes=<have>-` (a dropped connection is retried at once, and a later run resumes too). Once
 *    its size (and, for LFS, its sha256) is right it is renamed to blobs/<etag>, then linked from
 *    snapshots/<commit>/<file>. A snapshot never points at an unfinished blob.
 *
 * Only config.json, generation_config.json, the tokenizer files and the safetensors weights (the index and its shards,
 * else model.safetensors, else every top-level .safetensors) are fetched. HF_TOKEN is sent as a bearer token;
 * HF_HUB_OFFLINE=1 resolves from the cache alone (refs/<revision> → snapshots/<commit>). Every failure is a UsageError
 * naming the repository, the file and the problem.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { UsageError } from '../../errors.js';
import { makeDirs, writeFailure, writeFileAtomic } from '../atomic.js';
import { hubEndpoint, hubToken, isCommitHash, isOffline, repoCacheDir, type Env, type HubId } from './hfCache.js';

export interface HubProgress { readonly file: string; readonly done: number; readonly total: number | null }

export interface HubOptions {
  readonly env?: Env;
  /** progress of each file as it downloads (bytes) */
  readonly onProgress?: (p: HubProgress) => void;
  /** attempts per file when the connection drops (each resumes where the last stopped); default 3 */
  readonly attempts?: number;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model'];
const CONFIG_FILES = ['config.json', 'generation_config.json'];
const INDEX = 'model.safetensors.index.json';

/** The snapshot folder of `id` in the cache, downloading what is missing unless offline. */
export async function resolveHubModel(id: HubId, opts: HubOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const name = `${id.repo}@${id.revision}`;
  const root = repoCacheDir(env, id.repo);
  if (isOffline(env)) return offlineSnapshot(id, root);
  const hub = new Hub(id.repo, hubEndpoint(env), hubToken(env));
  const info = await hub.revision(id.revision);
  const commit = info.sha;
  const snap = join(root, 'snapshots', commit);
  const have = new Set(info.siblings);
  if (!have.has('config.json')) throw new UsageError(`${name}: the repository has no config.json at commit ${commit}`);
  const files = [...CONFIG_FILES, ...TOKENIZER_FILES].filter((f) => have.has(f));
  for (const f of files) await hub.download(f, commit, root, opts);
  let weights: string[];
  if (have.has(INDEX)) {
    await hub.download(INDEX, commit, root, opts);
    weights = shardsOf(join(snap, INDEX), name);
    for (const w of weights) if (!have.has(w)) throw new UsageError(`${name}: ${INDEX} names ${w}, which the repository does not have`);
  } else if (have.has('model.safetensors')) {
    weights = ['model.safetensors'];
  } else {
    weights = info.siblings.filter((f) => !f.includes('/') && f.endsWith('.safetensors'));
  }
  if (weights.length === 0) throw new UsageError(`${name}: no .safetensors weights at commit ${commit} (lowbit reads safetensors checkpoints from the hub)`);
  for (const w of weights) await hub.download(w, commit, root, opts);
  if (id.revision !== commit) writeAtomic(join(root, 'refs', id.revision), commit);
  return snap;
}

function offlineSnapshot(id: HubId, root: string): string {
  const name = `${id.repo}@${id.revision}`;
  let commit = id.revision;
  if (!isCommitHash(commit)) {
    const ref = join(root, 'refs', id.revision);
    if (!existsSync(ref)) throw new UsageError(`${name}: not in the Hugging Face cache (${ref} is missing) and HF_HUB_OFFLINE=1 forbids downloading`);
    commit = readFileSync(ref, 'utf8').trim();
  }
  const snap = join(root, 'snapshots', commit);
  if (!existsSync(join(snap, 'config.json'))) {
    throw new UsageError(`${name}: snapshot ${snap} is not in the Hugging Face cache (no config.json) and HF_HUB_OFFLINE=1 forbids downloading`);
  }
  return snap;
}

function shardsOf(indexPath: string, name: string): string[] {
  let map: unknown;
  try { map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown }).weight_map; } catch (e) {
    throw new UsageError(`${name}: ${INDEX} is not JSON (${(e as Error).message})`);
  }
  if (!map || typeof map !== 'object') throw new UsageError(`${name}: ${INDEX} has no weight_map`);
  const files = [...new Set(Object.values(map as Record<string, unknown>))];
  if (files.some((f) => typeof f !== 'string' || f.includes('..') || f.startsWith('/'))) throw new UsageError(`${name}: ${INDEX} names a file outside the repository`);
  return files as string[];
}

/** Writes `text` to `path` through a temporary and a rename. */
function writeAtomic(path: string, text: string): void {
  makeDirs(dirname(path));
  writeFileAtomic(path, text);
}

/** An ETag header as huggingface_hub normalises it: no weak prefix, no quotes. */
function normalizeEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

class Hub {
  constructor(private readonly repo: string, private readonly endpoint: string, private readonly token: string | undefined) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), 'user-agent': 'lowbit', ...extra };
  }

  private async request(url: string, init: RequestInit, what: string): Promise<Response> {
    try {
      return await fetch(url, { ...init, headers: { ...this.headers(), ...(init.headers as Record<string, string> | undefined) } });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new UsageError(`${this.repo}: ${what}: cannot reach ${this.endpoint} (${cause?.code ?? cause?.message ?? (e as Error).message}); ` +
        'set HF_HUB_OFFLINE=1 to use the cache only');
    }
  }

  /** The status of a failed response as one line naming the repository, the file and what to do. */
  private failure(res: Response, what: string): UsageError {
    const s = res.status;
    if (s === 401 || s === 403) {
      return new UsageError(`${this.repo}: ${what}: ${s} ${s === 401 ? 'Unauthorized' : 'Forbidden'}: the repository is gated or private; ` +
        (this.token ? 'the token (HF_TOKEN, else $HF_HOME/token) has no access to it (accept its terms on the hub with that account)' : 'set HF_TOKEN to a token with access'));
    }
    if (s === 404) return new UsageError(`${this.repo}: ${what}: 404 Not Found at ${this.endpoint} (no such repository, revision or file)`);
    return new UsageError(`${this.repo}: ${what}: HTTP ${s} ${res.statusText} from ${this.endpoint}`);
  }

  async revision(rev: string): Promise<{ sha: string; siblings: string[] }> {
    const what = `revision ${rev}`;
    const res = await this.request(`${this.endpoint}/api/models/${this.repo}/revision/${encodeURIComponent(rev)}`, {}, what);
    if (!res.ok) throw this.failure(res, what);
    let body: { sha?: unknown; siblings?: unknown };
    try { body = await res.json() as typeof body; } catch (e) {
      throw new UsageError(`${this.repo}: ${what}: the hub's answer is not JSON (${(e as Error).message})`);
    }
    const sha = body.sha, siblings = body.siblings;
    if (typeof sha !== 'string' || !isCommitHash(sha) || !Array.isArray(siblings)) throw new UsageError(`${this.repo}: ${what}: the hub's answer has no commit sha or file list`);
    return { sha, siblings: siblings.map((s: { rfilename?: unknown }) => String(s?.rfilename)) };
  }

  private url(commit: string, file: string): string {
    return `${this.endpoint}/${this.repo}/resolve/${commit}/${file.split('/').map(encodeURIComponent).join('/')}`;
  }

  /**
   * HEAD without following redirects to another host (an LFS file's 302 to the CDN carries the metadata), but
   * following the hub's relative ones (a renamed repository, the resolve cache), as huggingface_hub does.
   */
  private async head(url: string, file: string): Promise<Response> {
    for (let hops = 0; ; hops++) {
      const res = await this.request(url, { method: 'HEAD', redirect: 'manual' }, file);
      const loc = res.headers.get('location');
      if (!(res.status >= 300 && res.status < 400 && loc?.startsWith('/'))) return res;
      if (hops === 5) throw new UsageError(`${this.repo}: ${file}: more than 5 redirects from ${this.endpoint}`);
      url = new URL(loc, url).toString();
    }
  }

  /** Makes snapshots/<commit>/<file> a link to a complete blob, downloading the blob when it is not in the cache. */
  async download(file: string, commit: string, root: string, opts: HubOptions): Promise<void> {
    const link = join(root, 'snapshots', commit, file);
    if (existsSync(link)) return;
    const url = this.url(commit, file);
    const head = await this.head(url, file);
    if (!(head.ok || (head.status >= 300 && head.status < 400))) throw this.failure(head, file);
    const got = head.headers.get('x-repo-commit');
    if (got && got !== commit) throw new UsageError(`${this.repo}: ${file}: the hub answered for commit ${got}, not ${commit}`);
    const etag = normalizeEtag(head.headers.get('x-linked-etag') ?? head.headers.get('etag'));
    if (!etag || !/^[A-Za-z0-9._-]+$/.test(etag)) throw new UsageError(`${this.repo}: ${file}: the hub sent no usable ETag`);
    const sizeHeader = head.headers.get('x-linked-size') ?? head.headers.get('content-length');
    const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : null;
    const blob = join(root, 'blobs', etag);
    if (!existsSync(blob)) await this.fetchBlob(url, file, blob, size, /^[0-9a-f]{64}$/.test(etag) ? etag : undefined, opts);
    makeDirs(dirname(link));
    linkAtomic(blob, link);
  }

  /** Downloads `url` into `blob` through blob.incomplete, resuming it; checks size and sha256; renames into place. */
  private async fetchBlob(url: string, file: string, blob: string, size: number | null, sha256: string | undefined, opts: HubOptions): Promise<void> {
    makeDirs(dirname(blob));
    const part = `${blob}.incomplete`;
    const attempts = opts.attempts ?? 3;
    let lastDrop = '';
    for (let attempt = 0; attempt < attempts; attempt++) {
      const have = existsSync(part) ? statSync(part).size : 0;
      if (size !== null && have === size) break;
      if (size !== null && have > size) rmSync(part, { force: true });
      const from = size !== null && have > size ? 0 : have;
      const res = await this.request(url, { redirect: 'follow', headers: from > 0 ? { range: `bytes=${from}-` } : {} }, file);
      if (!(res.status === 200 || res.status === 206)) throw this.failure(res, file);
      const append = res.status === 206 && from > 0;
      const total = size ?? (res.headers.get('content-length') !== null ? Number(res.headers.get('content-length')) + (append ? from : 0) : null);
      let fd: number;
      try { fd = openSync(part, append ? 'a' : 'w'); } catch (e) { throw writeFailure(e, part); }
      let done = append ? from : 0;
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          try { writeSync(fd, chunk); } catch (e) { closeSync(fd); rmSync(part, { force: true }); throw writeFailure(e, part); }
          done += chunk.length;
          opts.onProgress?.({ file, done, total });
        }
        fsyncSync(fd);
        closeSync(fd);
        if (size === null || done === size) { lastDrop = ''; break; }
        lastDrop = `the connection closed after ${done} of ${size} bytes`;
      } catch (e) {
        if (e instanceof UsageError) throw e;
        try { closeSync(fd); } catch { /* closed already */ }
        lastDrop = `the connection dropped after ${done}${total !== null ? ` of ${total}` : ''} bytes (${(e as Error).message})`;
      }
    }
    const have = existsSync(part) ? statSync(part).size : 0;
    if (lastDrop || (size !== null && have !== size)) {
      throw new UsageError(`${this.repo}: ${file}: ${lastDrop || `${have} of ${size} bytes`} after ${attempts} attempts; ` +
        `run again to resume (the partial download is kept as ${part}, never linked into a snapshot)`);
    }
    if (sha256) {
      const got = await sha256Of(part);
      if (got !== sha256) {
        rmSync(part, { force: true });
        throw new UsageError(`${this.repo}: ${file}: sha256 ${got} does not match the hub's ${sha256}; the download was removed`);
      }
    }
    try { renameSync(part, blob); } catch (e) { throw writeFailure(e, blob); }
  }
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** snapshots/…/file → a relative symlink to the blob (huggingface_hub's layout), made under a temporary name and renamed. */
function linkAtomic(blob: string, link: string): void {
  const target = relative(dirname(link), blob);
  const tmp = `${link}.lowbit-tmp-${process.pid}`;
  try {
    rmSync(tmp, { force: true });
    symlinkSync(target, tmp);
    renameSync(tmp, link);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw writeFailure(e, link);
  }
  if (readlinkSync(link) !== target) throw new UsageError(`${link}: could not be linked to ${blob}`);
}
