/**
 * The Hugging Face hub cache layout, as huggingface_hub (Python) writes it, so that Python and lowbit share downloads:
 *
 *   <cache>/models--<org>--<name>/blobs/<etag>                 file contents, named by the hub's ETag (sha256 for LFS files)
 *   <cache>/models--<org>--<name>/snapshots/<commit>/<file>    relative symlinks to ../../blobs/<etag>
 *   <cache>/models--<org>--<name>/refs/<revision>              the commit a branch or tag resolved to, last time
 *
 * <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. A blob being downloaded is
 * `blobs/<etag>.incomplete` (huggingface_hub's name, so either tool resumes the other's partial download); it is renamed
 * to its final name only once complete and checked, and only then linked from a snapshot.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** A model repository on the hub and the revision asked for (branch, tag or commit; default main). */
export interface HubId { readonly repo: string; readonly revision: string }

const PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;

/** `org/name[@revision]` → HubId, or undefined when `s` does not look like a hub id. */
export function parseHubId(s: string): HubId | undefined {
  const at = s.indexOf('@');
  const repo = at < 0 ? s : s.slice(0, at), revision = at < 0 ? 'main' : s.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every((p) => PART.test(p) && !p.includes('..'))) return undefined;
  if (revision === '' || /[\s\\]|\.\./.test(revision)) return undefined;
  return { repo, revision };
}

function hfHome(env: Env): string {
  return env.HF_HOME || join(homedir(), '.cache', 'huggingface');
}

/** $HF_HUB_CACHE (or its legacy name HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: Env): string {
  return env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), 'hub');
}

/** $HF_TOKEN, else the token `hf auth login` saved in $HF_HOME/token, else none. */
export function hubToken(env: Env): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN;
  const file = join(hfHome(env), 'token');
  if (!existsSync(file)) return undefined;
  const t = readFileSync(file, 'utf8').trim();
  return t || undefined;
}

export function repoCacheDir(env: Env, repo: string): string {
  return join(hubCacheDir(env), `models--${repo.split('/').join('--')}`);
}

export function isCommitHash(rev: string): boolean {
  return /^[0-9a-f]{40}$/.test(rev);
}

/** HF_HUB_OFFLINE: 1, true, yes, on (huggingface_hub's truthy values). */
export function isOffline(env: Env): boolean {
  return ['1', 'true', 'yes', 'on'].includes((env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

export function hubEndpoint(env: Env): string {
  const e = env.HF_ENDPOINT ?? 'https://huggingface.co';
  if (!/^https?:\/\//.test(e)) throw new UsageError(`HF_ENDPOINT must be an http(s) URL (got '${e}')`);
  return e.replace(/\/+$/, '');
}
