import { spawnSync } from 'node:child_process';

let cached: string | null | undefined;
/** A Python interpreter that can import torch (PATH's python3, else Debian's /usr/bin/python3), or null. */
export function torchPython(): string | null {
  if (cached !== undefined) return cached;
  cached = null;
  for (const py of ['python3', '/usr/bin/python3']) {
    if (spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) { cached = py; break; }
  }
  return cached;
}
