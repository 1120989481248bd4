/**
 * mulberry32: a small seeded generator of uniforms on [0, 1), for reproducible test and parity cases (the browser
 * parity page, the kernel and model test fixtures). Not the project's main generator (xoshiro.ts).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
