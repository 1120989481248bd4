// The web bundle's node: shims (src/web/shims) against Node's own modules: sha256 equal to node:crypto's, the
// path functions equal to path.posix on a table of inputs, and the fs shim over the in-memory file system (vfs.ts)
// giving Node's results and error codes; what cannot work in a tab throws saying so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import * as shimPath from '../../src/web/shims/path.js';
import { createHash as shimHash } from '../../src/web/shims/crypto.js';
import * as fs from '../../src/web/shims/fs.js';
import { addBlob, addBytes, removeUnder, vfsKey } from '../../src/web/vfs.js';

test('shims/crypto: sha256 equals node:crypto for lengths around the block boundaries', () => {
  let seed = 7;
  const byte = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 86_434]) {
    const data = Uint8Array.from({ length: n }, byte);
    assert.equal(shimHash('sha256').update(data).digest('hex'), createHash('sha256').update(data).digest('hex'), `${n} bytes`);
  }
  assert.equal(shimHash('sha256').update('naïve café 😀').digest('hex'), createHash('sha256').update('naïve café 😀').digest('hex'));
  assert.throws(() => shimHash('md5'), /not available \(sha256 only\)/);
});

test('shims/path: the same results as path.posix', () => {
  const paths = ['', '.', '/', 'a', 'a/', '/a/b/', 'a/b/../c', './a/./b', '../a', 'a/../..', '/..', 'x/y.tar.gz', '.hidden', 'a/.b', 'dir/f.', '//a//b//'];
  for (const p of paths) {
    for (const f of ['normalize', 'dirname', 'basename', 'extname', 'isAbsolute'] as const) {
      assert.deepEqual((shimPath[f] as (s: string) => unknown)(p), (posix[f] as (s: string) => unknown)(p), `${f}(${JSON.stringify(p)})`);
    }
  }
  for (const parts of [['a', 'b'], ['/a', '../b', 'c/'], ['', 'a'], ['a', '', 'b'], [], ['..', '..', 'x'], ['/']]) {
    assert.equal(shimPath.join(...parts), posix.join(...parts), `join ${JSON.stringify(parts)}`);
  }
  // Node resolves against process.cwd(); the shim against "/": compare with cwd "/"
  for (const parts of [['a'], ['/x', 'y'], ['/x', '/y', 'z/..'], ['a/b/', '../c'], ['..']]) {
    assert.equal(shimPath.resolve(...parts), posix.resolve('/', ...parts), `resolve ${JSON.stringify(parts)}`);
  }
  assert.equal(shimPath.basename('a/b.json', '.json'), 'b');
  assert.equal(shimPath.relative('/a/b', '/a/c/d'), posix.relative('/a/b', '/a/c/d'));
});

test('shims/fs over the in-memory file system: reads, listings, descriptors and Node\'s error codes', () => {
  removeUnder('');
  addBytes('/m/config.json', new TextEncoder().encode('{"a": "é"}'));
  addBytes('m/sub/x.bin', Uint8Array.from([1, 2, 3, 4, 5]));
  assert.equal(vfsKey('/m/./sub/../config.json'), 'm/config.json');
  assert.equal(fs.existsSync('m'), true);
  assert.equal(fs.existsSync('/m/sub'), true);
  assert.equal(fs.existsSync('m/none'), false);
  assert.equal(fs.statSync('m').isDirectory(), true);
  assert.equal(fs.statSync('m/sub/x.bin').size, 5);
  assert.equal(fs.readFileSync('m/config.json', 'utf8'), '{"a": "é"}');
  assert.equal(fs.readFileSync('m/config.json').toString('utf8'), '{"a": "é"}');
  assert.deepEqual(fs.readdirSync('m'), ['config.json', 'sub']);
  assert.deepEqual((fs.readdirSync('m', { withFileTypes: true }) as fs.Dirent[]).map((d) => [d.name, d.isFile()]), [['config.json', true], ['sub', false]]);
  const fd = fs.openSync('m/sub/x.bin', 'r');
  const out = new Uint8Array(4);
  assert.equal(fs.readSync(fd, out, 1, 3, 3), 2);
  assert.deepEqual([...out], [0, 4, 5, 0]);
  assert.equal(fs.fstatSync(fd).size, 5);
  fs.closeSync(fd);
  const code = (f: () => unknown): string | undefined => { try { f(); } catch (e) { return (e as { code?: string }).code; } return undefined; };
  assert.equal(code(() => fs.statSync('m/none')), 'ENOENT');
  assert.equal(code(() => fs.readFileSync('m/none')), 'ENOENT');
  assert.equal(code(() => fs.readFileSync('m/sub')), 'EISDIR');
  assert.equal(code(() => fs.readdirSync('m/config.json')), 'ENOTDIR');
  assert.equal(code(() => fs.readSync(fd, out, 0, 1, 0)), 'EBADF');
  assert.throws(() => fs.openSync('m/config.json', 'w'), /read-only/);
  assert.throws(() => fs.writeFileSync(), /fs\.writeFileSync is not available/);
  assert.throws(() => fs.readFileSync('m/config.json').toString('latin1'), /UTF-8 only/);
  // a picked file is read by range with FileReaderSync, which only a Web Worker has
  addBlob('m/picked.bin', new Blob([new Uint8Array(8)]));
  assert.equal(fs.statSync('m/picked.bin').size, 8);
  assert.throws(() => fs.readFileSync('m/picked.bin'), /only inside a Web Worker \(FileReaderSync\)/);
  removeUnder('m');
  assert.equal(fs.existsSync('m'), false);
});
