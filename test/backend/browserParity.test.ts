// web/index.html in headless Chromium: lowbit's WebGPU backend on the tab's navigator.gpu against the CPU backend
// (js kernels) computed in the same page (src/backend/webgpu/browserParity.ts), NMSE within parity.test.ts's
// tolerances, no console error, no request leaving the local server. Without an adapter in the browser it skips
// with the reason, never passes. `--enable-unsafe-webgpu` is the one flag Chromium needs here (Linux, headless):
// it then offers SwiftShader's Vulkan (a CPU adapter); without the flag requestAdapter() returns null.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { BROWSER_TOLERANCE, type ParityReport } from '../../src/backend/webgpu/browserParity.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const CHROMIUM = process.env.LOWBIT_CHROMIUM ?? '/usr/bin/chromium';
const NO_CHROMIUM = existsSync(CHROMIUM) ? false : `needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set LOWBIT_CHROMIUM)`;
const FLAGS = ['--no-sandbox', '--enable-unsafe-webgpu']; // --no-sandbox: CI runs as root
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };

/** Serves web/ and dist/src/ of the package on 127.0.0.1 (a free port); anything else is 404. */
async function serve(): Promise<{ origin: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^[/\\]+/, '');
    const file = join(PACKAGE_ROOT, path);
    const allowed = [join(PACKAGE_ROOT, 'web') + sep, join(PACKAGE_ROOT, 'dist', 'src') + sep].some((d) => file.startsWith(d));
    if (!allowed || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(() => ok())) };
}

test('web/index.html in headless Chromium: WebGPU ops match the CPU backend in the tab', { skip: NO_CHROMIUM, timeout: 120_000 }, async (t) => {
  const { origin, close } = await serve();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    const tab = await browser.newPage();
    const problems: string[] = [];
    tab.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    tab.on('request', (r) => { if (!r.url().startsWith(origin + '/')) problems.push(`request outside the local server: ${r.url()}`); });
    await tab.goto(`${origin}/web/index.html`);
    await tab.waitForFunction(() => 'lowbitParity' in window, null, { timeout: 90_000 });
    const report = await tab.evaluate(() => (window as unknown as { lowbitParity: ParityReport | { ok: false; error: string } }).lowbitParity);
    assert.ok(!('error' in report), `the page threw: ${'error' in report ? report.error : ''}`);
    if (!report.ok) {
      assert.deepEqual(problems, []);
      console.log(`# browserParity: skipped: ${report.reason}`);
      t.skip(`no WebGPU adapter in headless Chromium (${FLAGS.join(' ')}): ${report.reason}`);
      return;
    }
    console.log(`# browserParity: ${report.adapter} (${report.runtime}), Chromium ${browser.version()}`);
    assert.equal(report.runtime, 'browser (navigator.gpu)');
    for (const c of report.cases) console.log(`#   ${c.op} ${c.what}: NMSE ${c.nmse.toExponential(2)}`);
    // every op of the page ran, each against the parity suite's bound (held here, not taken from the page)
    assert.deepEqual([...new Set(report.cases.map((c) => c.op))].sort(), Object.keys(BROWSER_TOLERANCE).sort());
    for (const c of report.cases) {
      assert.ok(c.n > 0, `${c.op} ${c.what}: empty output`);
      assert.ok(c.nmse <= BROWSER_TOLERANCE[c.op], `${c.op} ${c.what}: NMSE ${c.nmse.toExponential(2)} > ${BROWSER_TOLERANCE[c.op]}`);
    }
    assert.equal(report.pass, true);
    assert.match(await tab.textContent('#status') ?? '', /^PASS: \d+ cases on /);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await close();
  }
});
