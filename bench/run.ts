// `npm run bench`: every benchmark in its own process (so peak memory is its own); each prints figures.
//   npm run bench            the default set (about 15-25 minutes on 2 cores)
//   npm run bench -- --quick a smaller set (a few minutes)
//   npm run bench -- --full  adds GPTQ on full LLaMA-3-8B layer shapes with 128×2048 tokens and on one whole
//                            8B block (long)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const full = process.argv.includes('--full');
const runs: [string, string[]][] = [
  ['kernels.js', ['--sizes', quick ? '1024' : '1024,2048,4096']],
  ['webgpuGemm.js', ['--sizes', quick ? '256' : '256,1024']],
  ['webgpuAttention.js', quick ? ['--shapes', '512:8:4:16', '--backward-shapes', '256:8:4:64'] : []],
  ['webgpuGram.js', ['--shapes', quick ? '1024:256,4096:256' : '1024:2048,4096:2048']],
  ['webgpuGptqSolve.js', ['--shapes', quick ? '256x512' : '512x1024', '--kernels', 'fast,reference']],
  ['pplSpeed.js', ['bundled']],
  ['pplSpeed.js', ['llama3-8b', '1', quick ? '64' : '256']],
  // the WebGPU backend on the same shapes (lavapipe here: a few tokens; exits 2 without an adapter)
  ['pplSpeed.js', ['llama3-8b', '1', quick ? '16' : '64', '--backend', 'webgpu', '--no-torch']],
  ['gptqLayer.js', full ? ['--full'] : []],
  ...(full ? [['gptqBlock.js', ['--samples', '1', '--seqlen', '256']] as [string, string[]]] : []),
  ['quipLayer.js', full ? ['--full'] : []],
  ['pbllmLayer.js', full ? ['--full'] : []],
  ['billmLayer.js', full ? ['--full'] : quick ? ['--only', 'q_proj', '--samples', '1'] : []],
  ['linalg.js', quick ? ['--skip', 'eigen,qr'] : []],
  ['quantMemory.js', ['rtn', '4', quick ? '64' : '128']],
  ['awqBlock.js', quick ? ['1', '256'] : ['4', '512']],
  ['tasks.js', []],
  ['trainStep.js', quick ? ['--quick'] : []],
  ...(quick ? [] : [['studyTime.js', ['quick']] as [string, string[]]]),
];
for (const [file, args] of runs) {
  console.log(`\n# ${file} ${args.join(' ')}`);
  // --expose-gc: block streaming collects each block before the next is read (src/backend/cpu/gc.ts)
  const r = spawnSync(process.execPath, ['--max-old-space-size=20000', '--expose-gc', join(here, file), ...args], { stdio: 'inherit' });
  if (r.status !== 0) console.log(`(benchmark exited with ${r.status})`);
}
