// Serves what web/eval.html needs (web/, dist/web/ from npm run build:web, assets/data/) on 127.0.0.1, with the
// cross-origin isolation headers (COOP/COEP): the wasm kernels' memory is shared, which some browsers allow only
// to an isolated page (Chromium allows it anyway); where the wasm kernels cannot start, the page runs the js kernels and says why.
// Usage: node scripts/serve-web.mjs [port]   (default 8000), then open http://127.0.0.1:PORT/web/eval.html
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVED = ['web', join('dist', 'web'), join('assets', 'data')].map((d) => join(ROOT, d) + sep);
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json', '.json': 'application/json' };
const port = Number(process.argv[2] ?? 8000);

createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^[/\\]+/, '');
  const file = join(ROOT, path);
  if (!SERVED.some((d) => file.startsWith(d)) || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
  res.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp',
  }).end(readFileSync(file));
}).listen(port, '127.0.0.1', () => console.log(`lowbit: serving on http://127.0.0.1:${port}/web/eval.html (Ctrl-C to stop)`));
