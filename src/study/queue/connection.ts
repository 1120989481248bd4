import type { RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { UsageError } from '../../errors.js';

/** A parsed `--queue` URL: the Redis connection, and the URL as it may be printed (password hidden). */
export interface QueueUrl {
  readonly redis: RedisOptions;
  readonly shown: string;
}

/** The one queue every study and worker uses; a job's id (src/study/queue/job.ts) keeps studies apart. */
export const QUEUE_NAME = 'lowbit-cells';

const FORM = 'redis://[user:password@]host:port/db (rediss:// for TLS)';

/** Hides what sits between `//` and `@` (a password) in a string that looked like a URL. */
function redact(s: string): string {
  return s.replace(/\/\/[^/@]*@/, '//***@');
}

/** Parses `redis://[user:password@]host:port/db` or `rediss://...` (TLS); UsageError naming what is wrong. */
export function parseQueueUrl(s: string): QueueUrl {
  let u: URL;
  try { u = new URL(s); } catch { throw new UsageError(`--queue: '${redact(s)}' is not a URL like ${FORM}`); }
  const where = `--queue ${redact(s)}`;
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UsageError(`${where}: the scheme must be redis:// or rediss:// (got ${u.protocol}//)`);
  if (!u.hostname) throw new UsageError(`${where}: no host (${FORM})`);
  if (u.search || u.hash) throw new UsageError(`${where}: no query or fragment is read (${FORM})`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!/^\d*$/.test(path) || !Number.isSafeInteger(db)) throw new UsageError(`${where}: the database must be a number (got '/${path}')`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const user = decodeURIComponent(u.username), password = decodeURIComponent(u.password);
  const redis: RedisOptions = {
    host, port, db,
    ...(user ? { username: user } : {}), ...(password ? { password } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
  };
  const auth = user || password ? `${user}${password ? ':***' : ''}@` : '';
  return { redis, shown: `${u.protocol}//${auth}${u.host}/${db}` };
}

/** Connects once and pings, so that a wrong password or an unreachable server is one line, not endless retries. */
export async function checkRedis(q: QueueUrl, timeoutMs = 5000): Promise<void> {
  const client = new Redis({ ...q.redis, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let lastError: Error | undefined;
  client.on('error', (e: Error) => { lastError = e; });
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    const err = lastError ?? (e as Error);
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`--queue ${q.shown}: cannot use Redis: ${code && !err.message.includes(code) ? `${code} ` : ''}${err.message.replace(/\s+/g, ' ').trim()}`);
  } finally {
    client.disconnect();
  }
}

/** How soon a killed worker's cell is handed to another: BullMQ's lock and stalled-job check (LOWBIT_QUEUE_LOCK_MS; default 60 s). */
export function queueTiming(): { lockDuration: number; stalledInterval: number } {
  const v = process.env.LOWBIT_QUEUE_LOCK_MS;
  const lockDuration = v === undefined ? 60_000 : Number(v);
  if (!Number.isSafeInteger(lockDuration) || lockDuration < 200) throw new UsageError(`LOWBIT_QUEUE_LOCK_MS must be an integer ≥ 200 (milliseconds; got '${v}')`);
  return { lockDuration, stalledInterval: Math.max(100, Math.floor(lockDuration / 2)) };
}

/**
 * How long a waiting study lets Redis go unanswered before it stops (LOWBIT_QUEUE_TIMEOUT_MS; default 60 s): a
 * server that went away mid-study is then one line and exit 2, not a wait without end.
 */
export function queueAnswerTimeout(): number {
  const v = process.env.LOWBIT_QUEUE_TIMEOUT_MS;
  const ms = v === undefined ? 60_000 : Number(v);
  if (!Number.isSafeInteger(ms) || ms < 100) throw new UsageError(`LOWBIT_QUEUE_TIMEOUT_MS must be an integer ≥ 100 (milliseconds; got '${v}')`);
  return ms;
}
