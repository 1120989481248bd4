/**
 * A local stand-in for the Hugging Face hub on 127.0.0.1, serving the bundled TinyStories-656K the way the hub does:
 * GET /api/models/{repo}/revision/{rev} (commit sha and file list); HEAD/GET /{repo}/resolve/{rev}/{file} with
 * X-Repo-Commit and ETag (git-style sha1 for small files), the LFS file (model.safetensors) answered with a 302 to an
 * absolute URL (a CDN on the real hub) /lfs/{sha256} and X-Linked-Etag / X-Linked-Size; Range requests (206) on /lfs; a gated repo that wants a bearer token
 * (401 without it); 404 for anything else. `dropLfs` drops that many LFS GETs mid-file (half the bytes, then the socket);
 * `corruptLfs` flips one byte of it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TINY656K } from './paths.js';

export const COMMIT = '0123456789abcdef0123456789abcdef01234567';
export const FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors', 'README.md'];
export const LFS = 'model.safetensors';
export const TOKEN = 'hf_test_token';

export interface HubServer {
  readonly url: string;
  /** every request as "METHOD path [range]" */
  readonly log: string[];
  /** LFS GETs still to be dropped mid-file */
  dropLfs: number;
  /** serve the LFS file with one byte changed (its sha256 no longer the ETag) */
  corruptLfs: boolean;
  close(): Promise<void>;
}

export function fileBytes(f: string): Buffer { return readFileSync(join(TINY656K, f)); }

export async function startHubServer(): Promise<HubServer> {
  const bytes = new Map(FILES.map((f) => [f, fileBytes(f)]));
  const lfsSha = createHash('sha256').update(bytes.get(LFS)!).digest('hex');
  const gitSha = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
  const repos: Record<string, { gated: boolean }> = { 'lowbit-test/tiny656k': { gated: false }, 'lowbit-test/gated': { gated: true } };
  const state = { dropLfs: 0, corruptLfs: false };
  const log: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url!, 'http://x');
    log.push(`${req.method} ${u.pathname}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    const notFound = () => { res.writeHead(404, { 'x-error-code': 'RepositoryNotFound' }); res.end('Repository not found'); };
    if (u.pathname.startsWith('/lfs/')) {
      if (u.pathname !== `/lfs/${lfsSha}`) return notFound();
      let b = bytes.get(LFS)!;
      if (state.corruptLfs) { b = Buffer.from(b); const k = b.length >> 1; b[k] = b[k]! ^ 0xff; }
      const m = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
      const from = m ? Number(m[1]) : 0;
      const body = b.subarray(from);
      res.writeHead(m ? 206 : 200, { 'content-length': body.length, ...(m ? { 'content-range': `bytes ${from}-${b.length - 1}/${b.length}` } : {}) });
      if (req.method === 'HEAD') return res.end();
      if (state.dropLfs > 0) {
        state.dropLfs--;
        res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      return res.end(body);
    }
    // a renamed repository: the hub answers with a relative redirect to the new name
    if (u.pathname.startsWith('/lowbit-test/old-name/') || u.pathname.startsWith('/api/models/lowbit-test/old-name/')) {
      res.writeHead(307, { location: u.pathname.replace('lowbit-test/old-name', 'lowbit-test/tiny656k') });
      return res.end();
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(u.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
    const repo = api?.[1] ?? resolve?.[1];
    const info = repo ? repos[repo] : undefined;
    if (!info) return notFound();
    if (info.gated && req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'x-error-code': 'GatedRepo' }); return res.end('Access to this model is restricted');
    }
    const rev = decodeURIComponent((api ?? resolve)![2]!);
    if (rev !== 'main' && rev !== COMMIT) return notFound();
    if (api) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ id: repo, sha: COMMIT, siblings: FILES.map((rfilename) => ({ rfilename })) }));
    }
    const file = decodeURIComponent(resolve![3]!);
    const b = bytes.get(file);
    if (!b) { res.writeHead(404, { 'x-error-code': 'EntryNotFound' }); return res.end('Entry not found'); }
    if (file === LFS) {
      res.writeHead(302, { location: `http://${req.headers.host}/lfs/${lfsSha}`, 'x-repo-commit': COMMIT, 'x-linked-etag': `"${lfsSha}"`, 'x-linked-size': b.length, etag: `"${gitSha(b)}"` });
      return res.end();
    }
    res.writeHead(200, { 'x-repo-commit': COMMIT, etag: `"${gitSha(b)}"`, 'content-length': b.length });
    res.end(req.method === 'HEAD' ? undefined : b);
  };
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`, log,
    get dropLfs() { return state.dropLfs; }, set dropLfs(n: number) { state.dropLfs = n; },
    get corruptLfs() { return state.corruptLfs; }, set corruptLfs(v: boolean) { state.corruptLfs = v; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
