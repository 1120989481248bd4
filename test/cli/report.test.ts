// `lowbit report DIR [--out FILE]`: rebuilds report.html from a study folder's results.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { assertBadInput, runCli } from './helpers.js';

const FIXTURE = join(PACKAGE_ROOT, 'test', 'fixtures', 'study-html');

test('lowbit report DIR --out FILE: the page of every cell in results.json, where --out says', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowbit-report-'));
  copyFileSync(join(FIXTURE, 'results.json'), join(dir, 'results.json'));
  const out = join(dir, 'sub', 'page.html');
  const r = runCli(['report', dir, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `written: ${out} (5 cells)\n`);
  assert.equal(existsSync(join(dir, 'report.html')), false);
  const html = readFileSync(out, 'utf8');
  assert.equal([...html.matchAll(/<tr data-cell="/g)].length, 5);
  assert.match(html, /<h1>lowbit study: html-fixture on /);
});

test('lowbit report: a folder that is not a study is one line naming it, exit 2', () => {
  const empty = mkdtempSync(join(tmpdir(), 'lowbit-notstudy-'));
  assertBadInput(runCli(['report', empty]), [empty], /is not a study folder \(no results\.json/);
  assertBadInput(runCli(['report', join(empty, 'nope')]), [join(empty, 'nope')], /is not a study folder \(no such folder/);
});
