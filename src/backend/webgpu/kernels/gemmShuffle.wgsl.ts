/**
 * The `shuffle` GEMM design's K loop (linearFast.wgsl.ts: tiledGemm with pipe 'shuffle'): the B operand
 * (the weight of a linear) is not staged in workgroup memory. The 16×16 invocations are numbered e =
 * 0..255 by subgroup (below); invocation e owns the register tile (ty, tx) = (e % 16, e / 16), so each
 * aligned group of G = `lanes` consecutive e is G lanes of one subgroup that share their columns (tx) and
 * differ in rows. For each full K slice of BK, lane g of a group reads B from storage at k = k0 + g + G·t
 * (t < BK/G) for the group's 4·VN columns into registers, and step kk takes its b vec4s from lane kk % G of
 * the group by subgroupShuffle instead of from workgroup memory; A is staged and read as in `single`. The
 * last, partial slice stages B in workgroup memory and runs the `single` steps (one copy of the step
 * fewer to compile). Every output is the same float32 sum in k order of the same products as the `tiled`
 * design (the same b(c, j) reads, zero past the column edge; only products with k < J added).
 *
 * Subgroups: WGSL leaves the size (4..128) and which invocations form a subgroup to the implementation, and
 * a subgroup may be partial. So the numbering does not use local_invocation_index: each subgroup's elected
 * lane takes a base from a workgroup atomic counter (atomicAdd of its active count), and e = base +
 * subgroup_invocation_id. Where every subgroup's active lanes are 0..a−1 with a a multiple of G (a full
 * subgroup, as on NVIDIA; or a partial one whose lanes start at 0, as lavapipe runs 16 active lanes of its
 * 32-wide subgroups), the bases are multiples of G and e runs over 0..255 with each G-block inside one subgroup
 * at lanes g0..g0+G−1 (g0 = lane − lane % G). Otherwise (active lanes not from 0 up, or fewer than G, or not a
 * multiple of G) the workgroup-uniform flag `sg_bad_all` (1), read once into `shuffles` (false; a store may
 * read it, the tests do), sends every slice of the workgroup through the staged `single` steps with e = the
 * local index: the same sums, no shuffles. Subgroup operations sit only in workgroup-uniform control flow
 * (the flag from workgroupUniformLoad, the slice bounds from uniforms).
 */

/** Module-scope declarations of the design: the subgroup numbering's counter and the fallback flag. */
export const SHUFFLE_DECLS = /* wgsl */ `
var<workgroup> sg_next: atomic<u32>;
var<workgroup> sg_bad: atomic<u32>;
var<workgroup> sg_bad_all: u32;`;

/**
 * The builtins main() takes in addition to the tiled kernel's. The check reads `subgroup_size` (a full subgroup
 * passes without the lane test); it matters on lavapipe (Mesa 25), which ran this kernel 8 lanes wide whatever
 * its native width (LP_NATIVE_VECTOR_WIDTH=512 or 1024) when the check did not read it, and at that width
 * (subgroups of 16, or 16 active lanes of 32) when it does.
 */
export const SHUFFLE_BUILTINS = '@builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32';

/**
 * The K loop: `xDirect` / `wDirect` load the A / B slice into xs / ws (the `single` design's loads, spread by
 * local_invocation_index), `wsSteps` the `single` design's steps over one staged slice (reading the roles ty,
 * tx), `b(c, j)` B in bounds; `step(kk, bOf)` one k of the register tile reading xs at row kk and the vec4s
 * b0..b{VN−1} from `bOf(j)`; `vn` vec4s per invocation along n; `bk` the K step; `lanes` G.
 */
export function shuffleLoop(o: {
  lanes: number; bk: number; vn: number; xDirect: string; wDirect: string; wsSteps: string;
  b: (c: string, j: string) => string; step: (kk: string, bOf: (j: number) => string) => string;
}): string {
  const G = o.lanes, T = o.bk / G;
  if (!Number.isInteger(T) || T < 1) throw new Error(`shuffle GEMM: K step ${o.bk} is not a multiple of ${G} lanes`);
  const reg = (t: number, j: number) => `wr${t}_${j}`;
  const load = [...Array(T).keys()].flatMap((t) => [...Array(o.vn).keys()].map((j) => `{
        let k = k0 + g + ${G * t}u;
        let c = n0 + 4u * tx + ${64 * j}u;
        var v = vec4f(0.0);
        for (var q = 0u; q < 4u; q++) { if (c + q < C) { v[q] = ${o.b('c + q', 'k')}; } }
        ${reg(t, j)} = v;
      }`)).join('\n      ');
  // a full slice: the group's steps t·G + gg, b from lane g0 + gg's registers of block t
  const full = [...Array(T).keys()].map((t) => `for (var gg = 0u; gg < ${G}u; gg++) {
        let kk = ${G * t}u + gg;
        ${o.step('kk', (j) => `subgroupShuffle(${reg(t, j)}, g0 + gg)`)}
      }`).join('\n      ');
  // the counters zeroed here too: Dawn's toggle disable_workgroup_init would leave them as they were
  return /* wgsl */ `if (li == 0u) { atomicStore(&sg_next, 0u); atomicStore(&sg_bad, 0u); }
  workgroupBarrier();
  let sg_active = subgroupAdd(1u);
  let sg_top = subgroupMax(lane) + 1u; // == sg_active exactly when the active lanes are 0..sg_active-1
  var base = 0u;
  if (subgroupElect()) {
    base = atomicAdd(&sg_next, sg_active);
    if ((sg_active != sg_size && sg_top != sg_active) || sg_active % ${G}u != 0u) { atomicOr(&sg_bad, 1u); }
  }
  base = subgroupBroadcastFirst(base);
  workgroupBarrier();
  if (li == 0u) { sg_bad_all = atomicLoad(&sg_bad); }
  let shuffles = workgroupUniformLoad(&sg_bad_all) == 0u;
  let e = select(li, base + lane, shuffles);
  let ty = e % 16u;
  let tx = e / 16u;
  let g = lane % ${G}u;
  let g0 = lane - g;
  ${[...Array(T).keys()].flatMap((t) => [...Array(o.vn).keys()].map((j) => `var ${reg(t, j)} = vec4f(0.0);`)).join(' ')}
  for (var k0 = 0u; k0 < J; k0 += BK) {
    let fast = shuffles && k0 + BK <= J;
    ${o.xDirect}
    if (fast) {
      ${load}
    } else {
    ${o.wDirect}
    }
    workgroupBarrier();
    if (fast) {
      ${full}
    } else {
      ${o.wsSteps}
    }
    workgroupBarrier();
  }`;
}
