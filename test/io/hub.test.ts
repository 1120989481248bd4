// --model org/name[@revision] from a hub on 127.0.0.1 (test/helpers/hubServer.ts) into the Hugging Face cache layout:
// only the needed files, relative symlinks into blobs/, refs/main, a resumed dropped download, nothing unfinished ever
// linked, 401 / 404 as one line, HF_HOME / HF_HUB_CACHE / HF_TOKEN / HF_HUB_OFFLINE honoured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, writeFileSync, readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { UsageError } from '../../src/errors.js';
import { parseHubId } from '../../src/io/hub/hfCache.js';
import { resolveHubModel } from '../../src/io/hub/hubDownload.js';
import { openModel } from '../../src/io/open.js';
import { COMMIT, FILES, LFS, TOKEN, fileBytes, startHubServer, type HubServer } from '../helpers/hubServer.js';
import { assertBadInput, cleanup, runCliAsync } from '../cli/helpers.js';

let hub: HubServer;
const root = mkdtempSync(join(tmpdir(), 'lowbit-hub-'));
let n = 0;
const fresh = () => join(root, `c${n++}`);
before(async () => { hub = await startHubServer(); });
after(async () => { await hub.close(); rmSync(root, { recursive: true, force: true }); cleanup(); });

const ID = { repo: 'lowbit-test/tiny656k', revision: 'main' };
const NEEDED = FILES.filter((f) => f !== 'README.md');
const lfsSha = createHash('sha256').update(fileBytes(LFS)).digest('hex');

test('hub ids: org/name[@revision]; paths and odd names are not ids', () => {
  assert.deepEqual(parseHubId('meta-llama/Llama-3.2-1B'), { repo: 'meta-llama/Llama-3.2-1B', revision: 'main' });
  assert.deepEqual(parseHubId('a/b@v1.0'), { repo: 'a/b', revision: 'v1.0' });
  for (const s of ['model', './a/b', 'a/b/c', '/a/b', 'a/../b', 'a/b@', '../x']) assert.equal(parseHubId(s), undefined, s);
});

test('download into HF_HUB_CACHE: needed files only, relative links to blobs, refs/main, loads; a second run downloads nothing', async () => {
  const cache = fresh();
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache };
  const snap = await resolveHubModel(ID, { env });
  const repoDir = join(cache, 'models--lowbit-test--tiny656k');
  assert.equal(snap, join(repoDir, 'snapshots', COMMIT));
  assert.deepEqual(readdirSync(snap).sort(), [...NEEDED].sort());
  for (const f of NEEDED) {
    assert.ok(lstatSync(join(snap, f)).isSymbolicLink(), f);
    assert.match(readlinkSync(join(snap, f)), /^\.\.\/\.\.\/blobs\/[0-9a-f]+$/);
    assert.ok(readFileSync(join(snap, f)).equals(fileBytes(f)), f);
  }
  assert.equal(readlinkSync(join(snap, LFS)), `../../blobs/${lfsSha}`);
  assert.equal(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), COMMIT);
  assert.ok(!readdirSync(join(repoDir, 'blobs')).some((b) => b.endsWith('.incomplete')));
  assert.equal(openModel(snap).config.vocabSize, 2048);
  const before = hub.log.length;
  await resolveHubModel(ID, { env });
  assert.ok(!hub.log.slice(before).some((l) => l.startsWith('GET /lfs') || l.includes('/resolve/')), hub.log.slice(before).join('\n'));
});

test('a renamed repository: relative redirects followed (HEAD too), cached under the name asked for', async () => {
  const cache = fresh();
  const snap = await resolveHubModel({ repo: 'lowbit-test/old-name', revision: 'main' }, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache } });
  assert.equal(snap, join(cache, 'models--lowbit-test--old-name', 'snapshots', COMMIT));
  assert.ok(readFileSync(join(snap, LFS)).equals(fileBytes(LFS)));
  assert.ok(readFileSync(join(snap, 'config.json')).equals(fileBytes('config.json')));
});

test('HF_HOME: the cache is $HF_HOME/hub', async () => {
  const home = fresh();
  const snap = await resolveHubModel({ repo: 'lowbit-test/tiny656k', revision: COMMIT }, { env: { HF_ENDPOINT: hub.url, HF_HOME: home } });
  assert.equal(snap, join(home, 'hub', 'models--lowbit-test--tiny656k', 'snapshots', COMMIT));
});

test('a connection dropped mid-file is resumed with a Range request; the blob is whole', async () => {
  const cache = fresh();
  hub.dropLfs = 1;
  const from = hub.log.length;
  const snap = await resolveHubModel(ID, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache } });
  assert.equal(hub.dropLfs, 0);
  assert.ok(hub.log.slice(from).some((l) => /^GET \/lfs\/[0-9a-f]+ bytes=[1-9]\d*-$/.test(l)), hub.log.slice(from).join('\n'));
  assert.ok(readFileSync(join(snap, LFS)).equals(fileBytes(LFS)));
});

test('a connection that keeps dropping: one error naming repo and file, no blob and no link; the next run resumes', async () => {
  const cache = fresh();
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache };
  hub.dropLfs = 100;
  await assert.rejects(resolveHubModel(ID, { env, attempts: 2 }),
    (e: unknown) => e instanceof UsageError && /^lowbit-test\/tiny656k: model\.safetensors: the connection dropped after \d+ of \d+ bytes .* run again to resume/.test(e.message));
  hub.dropLfs = 0;
  const repoDir = join(cache, 'models--lowbit-test--tiny656k');
  assert.ok(!existsSync(join(repoDir, 'blobs', lfsSha)), 'no blob under its final name');
  assert.ok(!existsSync(join(repoDir, 'snapshots', COMMIT, LFS)), 'no snapshot link to an unfinished blob');
  const partial = lstatSync(join(repoDir, 'blobs', `${lfsSha}.incomplete`)).size;
  assert.ok(partial > 0 && partial < fileBytes(LFS).length);
  const from = hub.log.length;
  const snap = await resolveHubModel(ID, { env });
  assert.ok(hub.log.slice(from).includes(`GET /lfs/${lfsSha} bytes=${partial}-`), hub.log.slice(from).join('\n'));
  assert.ok(readFileSync(join(snap, LFS)).equals(fileBytes(LFS)));
});

test('a blob whose sha256 is not its ETag is removed, never linked: one line naming repo and file', async () => {
  const cache = fresh();
  hub.corruptLfs = true;
  try {
    await assert.rejects(resolveHubModel(ID, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache } }),
      (e: unknown) => e instanceof UsageError && /^lowbit-test\/tiny656k: model\.safetensors: sha256 [0-9a-f]{64} does not match the hub's [0-9a-f]{64}/.test(e.message));
  } finally { hub.corruptLfs = false; }
  const repoDir = join(cache, 'models--lowbit-test--tiny656k');
  assert.deepEqual(readdirSync(join(repoDir, 'blobs')).filter((b) => b.startsWith(lfsSha)), []);
  assert.ok(!existsSync(join(repoDir, 'snapshots', COMMIT, LFS)));
});

test('gated repo: 401 names HF_TOKEN; with HF_TOKEN it downloads', async () => {
  const cache = fresh();
  const id = { repo: 'lowbit-test/gated', revision: 'main' };
  await assert.rejects(resolveHubModel(id, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache } }),
    (e: unknown) => e instanceof UsageError && /^lowbit-test\/gated: revision main: 401 Unauthorized: .*gated or private; set HF_TOKEN/.test(e.message));
  await assert.rejects(resolveHubModel(id, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN: 'wrong' } }),
    (e: unknown) => e instanceof UsageError && /token \(HF_TOKEN, else \$HF_HOME\/token\) has no access/.test(e.message));
  const snap = await resolveHubModel(id, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN: TOKEN } });
  assert.ok(readFileSync(join(snap, LFS)).equals(fileBytes(LFS)));
  // the token a login saved in $HF_HOME/token, when HF_TOKEN is unset
  const home = fresh();
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'token'), `${TOKEN}\n`);
  const viaFile = await resolveHubModel(id, { env: { HF_ENDPOINT: hub.url, HF_HOME: home } });
  assert.equal(viaFile, join(home, 'hub', 'models--lowbit-test--gated', 'snapshots', COMMIT));
});

test('HF_HUB_OFFLINE=1: served from the cache without the network; a model not cached is one line', async () => {
  const cache = fresh();
  await resolveHubModel(ID, { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache } });
  const from = hub.log.length;
  const offline = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
  assert.equal(await resolveHubModel(ID, { env: offline }), join(cache, 'models--lowbit-test--tiny656k', 'snapshots', COMMIT));
  assert.equal(hub.log.length, from, 'no request offline');
  await assert.rejects(resolveHubModel({ repo: 'lowbit-test/other', revision: 'main' }, { env: offline }),
    (e: unknown) => e instanceof UsageError && /^lowbit-test\/other@main: not in the Hugging Face cache .* HF_HUB_OFFLINE=1/.test(e.message));
});

test('CLI: --model org/name downloads and runs; 404, 401 and offline misses are one line, exit 2', async () => {
  const cache = fresh();
  // the child inherits the environment: no token or offline setting of the machine's may leak in
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HOME: fresh(), HF_TOKEN: '', HF_HUB_OFFLINE: '' };
  const ok = await runCliAsync(['info', '--model', 'lowbit-test/tiny656k@main'], { env });
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(ok.stdout.includes(COMMIT), ok.stdout);
  const kld = await runCliAsync(['eval', '--model', 'lowbit-test/tiny656k', '--kld', 'lowbit-test/tiny656k@main', '--ppl', 'tinystories', '--limit', '1', '--seqlen', '64'], { env });
  assert.equal(kld.status, 0, kld.stderr);
  assert.match(kld.stdout, /Same top p 100\.000 ± 0\.000 %/);
  assertBadInput(await runCliAsync(['info', '--model', 'lowbit-test/missing'], { env }), ['lowbit-test/missing'], /404 Not Found/);
  assertBadInput(await runCliAsync(['info', '--model', 'lowbit-test/gated'], { env }), ['lowbit-test/gated'], /401 Unauthorized.*HF_TOKEN/);
  assertBadInput(await runCliAsync(['info', '--model', 'lowbit-test/gated'], { env: { ...env, HF_HUB_OFFLINE: '1' } }), ['lowbit-test/gated'], /HF_HUB_OFFLINE=1/);
});
