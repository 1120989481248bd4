/**
 * `node:path` in the web bundle: the POSIX functions lowbit calls, with "/" as the working
 * directory (the tab's in-memory file system, ../vfs.ts). Same results as Node's path.posix for them.
 */
export const sep = '/';
export const delimiter = ':';

export function normalize(p: string): string {
  if (p === '') return '.';
  const abs = p.startsWith('/'), trailing = p.endsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!abs) out.push('..');
    } else out.push(part);
  }
  let s = out.join('/');
  if (s === '' && !abs) s = '.';
  if (trailing && s !== '' && s !== '.') s += '/';
  else if (trailing && s === '.') s = './';
  return abs ? '/' + s : s;
}

export function join(...parts: string[]): string {
  const joined = parts.filter((s) => s !== '').join('/');
  return joined === '' ? '.' : normalize(joined);
}

export function isAbsolute(p: string): boolean {
  return p.startsWith('/');
}

export function resolve(...parts: string[]): string {
  let r = '';
  for (let i = parts.length - 1; i >= 0 && !r.startsWith('/'); i--) {
    const s = parts[i]!;
    if (s !== '') r = r === '' ? s : `${s}/${r}`;
  }
  const n = normalize('/' + r);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

export function dirname(p: string): string {
  if (p === '') return '.';
  let end = p.length;
  while (end > 1 && p[end - 1] === '/') end--;
  const i = p.lastIndexOf('/', end - 1);
  if (i < 0) return '.';
  return i === 0 ? '/' : p.slice(0, i);
}

export function basename(p: string, ext?: string): string {
  let end = p.length;
  while (end > 1 && p[end - 1] === '/') end--;
  const base = p.slice(p.lastIndexOf('/', end - 1) + 1, end);
  return ext && base !== ext && base.endsWith(ext) ? base.slice(0, -ext.length) : base;
}

export function extname(p: string): string {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i <= 0 || b === '..' ? '' : b.slice(i);
}

export function relative(from: string, to: string): string {
  const a = resolve(from).split('/').filter(Boolean), b = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array(a.length - i).fill('..'), ...b.slice(i)].join('/');
}

export default { sep, delimiter, normalize, join, isAbsolute, resolve, dirname, basename, extname, relative };
