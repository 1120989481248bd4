// `npm run bench`: runs each benchmark in its own process (so peak memory is its own) and prints figures.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const runs: [string, string[]][] = [
  ['pplSpeed.js', ['bundled']],
  ['pplSpeed.js', ['llama3-8b', '1', quick ? '32' : '128']],
];
for (const [file, args] of runs) {
  console.log(`\n# ${file} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, ['--max-old-space-size=16384', join(here, file), ...args], { stdio: 'inherit' });
  if (r.status !== 0) console.log(`(benchmark exited with ${r.status})`);
}
