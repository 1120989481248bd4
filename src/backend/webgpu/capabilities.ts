/// <reference types="@webgpu/types" />
/**
 * The one place that finds a WebGPU implementation and reads what it can do: a browser's
 * `navigator.gpu`, or in Node the optional `webgpu` package (Dawn), imported dynamically so that an
 * install without it still works ("no adapter", with the reason). The adapter, its features and
 * limits are read once per process; the device is requested with the adapter's own limits for
 * everything the kernels depend on (a device otherwise gets the spec's defaults, e.g. 128 MiB
 * bindings and 16 KiB of workgroup memory, whatever the hardware has). Right after, one small dispatch
 * finds whether the device's WGSL fma() is fused (fmaProbe.ts; LOWBIT_WEBGPU_FMA=off skips it). Optional
 * features are requested where the adapter has them: 'timestamp-query' (benchmarks) and 'subgroups' (the
 * `shuffle` GEMM design).
 */
import { fmaChoice, probeFma } from './fmaProbe.js';
import { SOFTWARE_TUNE_SHAPE, TUNE_SHAPE, tuneGemm, tuneTimes, type GemmTune } from './gemmTune.js';

/** What the kernels need; an adapter below any of these is refused with the limit's name. */
export const REQUIRED_LIMITS = Object.freeze({
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 8192,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxStorageBufferBindingSize: 1 << 20,
  maxBufferSize: 1 << 20,
  maxComputeWorkgroupsPerDimension: 65535,
});

/** Limits requested from the adapter at its own values (the ones the backend reads). */
const REQUESTED_LIMITS = [...Object.keys(REQUIRED_LIMITS), 'maxBindGroups', 'minStorageBufferOffsetAlignment'] as const;

/** Features requested where the adapter has them; nothing needs them. */
const OPTIONAL_FEATURES = ['timestamp-query', 'subgroups'] as const;

/** Features the kernels need: none (f16/bf16 are decoded from u32 words, so `shader-f16` is not used). */
export const REQUIRED_FEATURES: readonly string[] = Object.freeze([]);

export interface GpuCapabilities {
  /** 'node (Dawn, npm webgpu)' or 'browser (navigator.gpu)' */
  readonly runtime: string;
  /** vendor / architecture / description as the adapter reports them (may be empty strings) */
  readonly adapterName: string;
  /**
   * The adapter is a software one (GPUAdapterInfo.isFallbackAdapter: Mesa lavapipe, SwiftShader): it runs on the
   * same cores as the CPU backend, slower, so `--backend auto` (and the page's auto) leave it (autoPicksWebGpu).
   */
  readonly software: boolean;
  readonly features: readonly string[];
  readonly limits: Readonly<Record<string, number>>;
  readonly maxBinding: number;
  readonly maxBufferSize: number;
  /** Which kernels run where a fast version exists: LOWBIT_WEBGPU_KERNELS=reference|fast, read once (default fast). */
  readonly kernels: KernelChoice;
  /**
   * The device's WGSL fma() is fused, by the probe at acquisition (fmaProbe.ts; false under
   * LOWBIT_WEBGPU_FMA=off): the fast Gram then takes TwoProduct's error as fma(a, b, −p).
   */
  readonly fmaFused: boolean;
  /** What the probe found, one line: 'fused', 'off (LOWBIT_WEBGPU_FMA=off)' or 'not fused: <the first miss>'. */
  readonly fmaProbe: string;
  /**
   * Tests only: run the fma-path kernels with fma() replaced by its exact emulation (Dekker's split
   * products), so that their text is checked on a device whose fma is not fused (createWebGpuBackend's `fma`).
   */
  readonly fmaEmulated?: boolean;
  /**
   * Which design the fast tiled GEMM runs (kernels/linear.ts: GEMM_DESIGNS): LOWBIT_WEBGPU_GEMM, read once; unset,
   * the fastest on this device (`auto`, gemmTune.ts) on a hardware adapter and `tiled` on a software one.
   */
  readonly gemm: GemmChoice;
  /** How `auto` chose `gemm`: each design's time on this device (absent when the design was named or defaulted). */
  readonly gemmTune?: GemmTune;
  /** How `gemm` was chosen, one line: the times `auto` compared, LOWBIT_WEBGPU_GEMM=…, or a default and why. */
  readonly gemmChosen: string;
  /**
   * Where the device has the feature 'subgroups' (requested whenever the adapter has it): the adapter's
   * smallest and largest subgroup size ([4, 128] where it does not say), and the lanes the `shuffle`
   * design groups (its smallest subgroup, within 4..16). Absent without the feature.
   */
  readonly subgroups?: { readonly minSize: number; readonly maxSize: number; readonly shuffleLanes: 4 | 8 | 16 };
  /**
   * Bytes of rebuilt QuIP weights kept for reuse (quipCache.ts): LOWBIT_WEBGPU_QUIP_CACHE_MIB, read once
   * (default QUIP_CACHE_MIB); 0 rebuilds the weight for every multiply.
   */
  readonly quipCacheBytes: number;
  /**
   * Tests only: LOWBIT_WEBGPU_LOSE_AFTER=N destroys the device at the N-th dispatch of this thread (counted over
   * its devices, so once), as a lost device mid-run (a driver reset, a GPU taken away) would stop it. Absent when unset.
   */
  readonly loseAfter?: number;
  /**
   * Tests only: where QuIP's butterflies live, overriding the rule of kernels/quipRebuild.ts
   * (quipButterfliesOnDevice): 'device' kept with the layer, 'host' uploaded for each rebuild.
   */
  readonly quipButterflies?: 'device' | 'host';
}

/** The default budget of rebuilt QuIP weights, MiB: one LLaMA-7B/8B block's seven (808 / 872 MiB as float32). */
export const QUIP_CACHE_MIB = 1024;

/** LOWBIT_WEBGPU_LOSE_AFTER (tests): a whole number of dispatches, 1 or more; unset or empty: undefined. */
export function loseAfterOf(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`LOWBIT_WEBGPU_LOSE_AFTER is '${v}'; expected a whole number of dispatches (1 or more)`);
  return Number(v);
}

/** LOWBIT_WEBGPU_QUIP_CACHE_MIB: a whole number of MiB, 0 or more (unset or empty: QUIP_CACHE_MIB); anything else is refused in one line. */
export function quipCacheBytesOf(v: string | undefined): number {
  if (v === undefined || v === '') return QUIP_CACHE_MIB * 1024 * 1024;
  if (!/^[0-9]+$/.test(v)) throw new Error(`LOWBIT_WEBGPU_QUIP_CACHE_MIB is '${v}'; expected a whole number of MiB (0: rebuild for every multiply)`);
  return Number(v) * 1024 * 1024;
}

export type KernelChoice = 'fast' | 'reference';

/** LOWBIT_WEBGPU_KERNELS: 'reference' selects the reference kernels, anything else (or unset) the fast ones. */
function kernelChoice(): KernelChoice {
  const v = typeof process === 'undefined' ? undefined : process.env?.LOWBIT_WEBGPU_KERNELS;
  if (v !== undefined && v !== '' && v !== 'fast' && v !== 'reference') {
    throw new Error(`LOWBIT_WEBGPU_KERNELS is '${v}'; expected 'fast' or 'reference'`);
  }
  return v === 'reference' ? 'reference' : 'fast';
}

/**
 * The fast tiled GEMM's designs, all giving the same bits: `tiled` (BK 16, load then compute), `tiled8`
 * (BK 8), `prefetch` (the next K slice loaded into registers during the compute), `double` (prefetch into
 * a second workgroup buffer, one barrier a step), `shuffle` (B in registers, passed between a subgroup's
 * lanes by subgroupShuffle; needs the feature 'subgroups').
 */
export const GEMM_CHOICES = Object.freeze(['tiled', 'tiled8', 'prefetch', 'double', 'shuffle'] as const);
export type GemmChoice = (typeof GEMM_CHOICES)[number];

/** LOWBIT_WEBGPU_GEMM's values: a design, or `auto` (the fastest on the device, timed once: gemmTune.ts). */
export type GemmSetting = GemmChoice | 'auto';

function gemmChoice(): GemmSetting | undefined {
  return gemmChoiceOf(typeof process === 'undefined' ? undefined : process.env?.LOWBIT_WEBGPU_GEMM);
}

/**
 * A LOWBIT_WEBGPU_GEMM value: one of GEMM_CHOICES or `auto` (unset or empty: undefined, the adapter's default:
 * auto on a hardware adapter, tiled on a software one); anything else is refused in one line.
 */
export function gemmChoiceOf(v: string | undefined): GemmSetting | undefined {
  if (v === undefined || v === '') return undefined;
  if (v !== 'auto' && !(GEMM_CHOICES as readonly string[]).includes(v)) throw new Error(`LOWBIT_WEBGPU_GEMM is '${v}'; expected auto or one of ${GEMM_CHOICES.join(', ')}`);
  return v as GemmSetting;
}

/** Why a device cannot run GEMM design `gemm` (one line), or undefined: `shuffle` needs the feature 'subgroups'. */
export function gemmShortfall(gemm: GemmChoice, caps: Pick<GpuCapabilities, 'subgroups' | 'adapterName'>): string | undefined {
  if (gemm === 'shuffle' && !caps.subgroups) return `LOWBIT_WEBGPU_GEMM=shuffle needs the WebGPU feature 'subgroups', which ${caps.adapterName} lacks`;
  return undefined;
}

/** The `shuffle` design's lanes for an adapter whose smallest subgroup is `minSize` (4 where not reported): within 4..16. */
export function shuffleLanesFor(minSize: number | undefined): 4 | 8 | 16 {
  const m = minSize ?? 4;
  return m >= 16 ? 16 : m >= 8 ? 8 : 4;
}

export type GpuAcquired = { ok: true; device: GPUDevice; caps: GpuCapabilities } | { ok: false; reason: string };

/** The process's WebGPU adapter, what it is called and whether it is a software one; or why there is none. */
export type GpuAdapterFound = { ok: true; gpu: GPU; adapter: GPUAdapter; runtime: string; adapterName: string; software: boolean } | { ok: false; reason: string };

let adapterFound: Promise<GpuAdapterFound> | undefined;
let acquired: Promise<GpuAcquired> | undefined;
/** Dawn's GPU instance and adapter must outlive the device (collecting them crashes Dawn): held here for the process. */
const keepAlive: unknown[] = [];

/** The process's WebGPU adapter, requested once (no device: cheap enough to decide `auto` with). */
export function findAdapter(): Promise<GpuAdapterFound> {
  adapterFound ??= requestAdapter().catch((e: unknown) => ({ ok: false as const, reason: `WebGPU failed: ${(e as Error).message ?? e}` }));
  return adapterFound;
}

/**
 * Whether `auto` runs on this adapter: on a hardware one, yes; on a software one (lavapipe, SwiftShader) no, with
 * the line saying why: the CPU backend is faster on the same cores (the README's figures: lavapipe's eval 1.5–2×
 * and GPTQ 10× the CPU's time; SwiftShader's perplexity in a tab 10× the wasm kernels').
 */
export function autoPicksWebGpu(found: Pick<GpuAdapterFound & { ok: true }, 'adapterName' | 'software'>): { ok: true } | { ok: false; reason: string } {
  if (!found.software) return { ok: true };
  return { ok: false, reason: `the WebGPU adapter (${found.adapterName}) is a software one (isFallbackAdapter), slower than the CPU kernels on the same cores` };
}

/** The process's WebGPU device and its capabilities, or why there is none. Requested once, and again after a loss. */
export function acquireGpu(): Promise<GpuAcquired> {
  if (acquired) return acquired;
  const mine = requestDevice().catch((e: unknown) => ({ ok: false as const, reason: `WebGPU failed: ${(e as Error).message ?? e}` }));
  acquired = mine;
  // a lost device is not handed out again: the next acquireGpu requests a new adapter (one device each) and device
  void mine.then((g) => {
    if (g.ok) void g.device.lost.then(() => { if (acquired === mine) { acquired = undefined; adapterFound = undefined; } });
  });
  return mine;
}

/** The first feature or limit the kernels need that an adapter lacks, as one line; undefined when it has them all. */
export function adapterShortfall(features: readonly string[], limits: Readonly<Record<string, number>>): string | undefined {
  for (const f of REQUIRED_FEATURES) if (!features.includes(f)) return `the WebGPU adapter lacks the feature '${f}'`;
  for (const [k, need] of Object.entries(REQUIRED_LIMITS)) {
    if (!((limits[k] ?? 0) >= need)) return `the WebGPU adapter's ${k} is ${limits[k] ?? 'not reported'}, below the ${need} the kernels need`;
  }
  return undefined;
}

async function findGpu(): Promise<{ gpu: GPU; runtime: string } | { reason: string }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, runtime: 'browser (navigator.gpu)' };
  if (typeof process === 'undefined' || !process.versions?.node) return { reason: 'this browser has no navigator.gpu' };
  let mod: { create(opts: string[]): GPU; globals: object };
  try {
    mod = await import('webgpu' as string) as typeof mod;
  } catch (e) {
    return { reason: `the optional npm package 'webgpu' (Dawn) is not installed (${(e as Error).message.split('\n')[0]})` };
  }
  // the GPUBufferUsage / GPUMapMode / GPUShaderStage constants live on globalThis in a browser
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const toggles = dawnToggles();
  return {
    gpu: mod.create(toggles.length ? [`enable-dawn-features=${toggles.join(',')}`] : []),
    runtime: `node (Dawn, npm webgpu${toggles.length ? `; Dawn toggles ${toggles.join(',')}` : ''})`,
  };
}

/**
 * LOWBIT_DAWN_TOGGLES: Dawn toggles to enable in Node, comma-separated (none by default). For measurements:
 * `disable_robustness` drops the bounds clamping Dawn adds to every storage access (the kernels check their
 * own bounds; the guard-word tests hold them to it), which a GEMM may feel on a GPU. The runtime line, and so
 * every result's backend description, names the toggles that ran.
 */
function dawnToggles(): string[] {
  const v = process.env.LOWBIT_DAWN_TOGGLES;
  if (v === undefined || v === '') return [];
  if (!/^[a-z0-9_]+(,[a-z0-9_]+)*$/.test(v)) throw new Error(`LOWBIT_DAWN_TOGGLES is '${v}'; expected comma-separated Dawn toggle names such as disable_robustness`);
  return v.split(',');
}

async function requestAdapter(): Promise<GpuAdapterFound> {
  const found = await findGpu();
  if ('reason' in found) return { ok: false, reason: found.reason };
  const adapter = await found.gpu.requestAdapter();
  keepAlive.push(found.gpu, adapter);
  if (!adapter) {
    return {
      ok: false,
      reason: found.runtime.startsWith('browser')
        ? 'no WebGPU adapter (navigator.gpu.requestAdapter() returned null; Chromium on Linux needs --enable-unsafe-webgpu)'
        : 'no WebGPU adapter (Node: a Vulkan driver is needed; without a GPU, Mesa lavapipe from bookworm-backports, see the README)',
    };
  }
  const info = adapter.info as (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | undefined;
  const adapterName = (info ? [info.vendor, info.architecture, info.description].filter((s) => s).join(' ') : '') || 'unnamed adapter';
  // GPUAdapterInfo.isFallbackAdapter; older runtimes had it on the adapter
  const software = !!(info?.isFallbackAdapter ?? (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter);
  return { ok: true, gpu: found.gpu, adapter, runtime: found.runtime, adapterName, software };
}

async function requestDevice(): Promise<GpuAcquired> {
  const found = await findAdapter();
  if (!found.ok) return found;
  const { adapter } = found;
  const features = [...adapter.features].sort();
  const limits: Record<string, number> = {};
  for (const k in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === 'number') limits[k] = v;
  }
  const short = adapterShortfall(features, limits);
  if (short) return { ok: false, reason: short };
  const requiredLimits: Record<string, number> = {};
  for (const k of REQUESTED_LIMITS) if (limits[k] !== undefined) requiredLimits[k] = limits[k]!;
  // timestamp-query only lets benchmarks time passes on the device (GpuDevice.timePasses); subgroups only the shuffle GEMM
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => features.includes(f)) as GPUFeatureName[];
  const kernels = kernelChoice(), gemm = gemmChoice(), fma = fmaChoice(); // bad values are refused before any device exists
  const env = typeof process === 'undefined' ? undefined : process.env;
  const quipCacheBytes = quipCacheBytesOf(env?.LOWBIT_WEBGPU_QUIP_CACHE_MIB);
  const loseAfter = loseAfterOf(env?.LOWBIT_WEBGPU_LOSE_AFTER);
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const probe = fma === 'off' ? undefined : await probeFma(device);
  const sizes = adapter.info as { subgroupMinSize?: number; subgroupMaxSize?: number } | undefined;
  const subgroups = device.features.has('subgroups')
    ? Object.freeze({ minSize: sizes?.subgroupMinSize ?? 4, maxSize: sizes?.subgroupMaxSize ?? 128, shuffleLanes: shuffleLanesFor(sizes?.subgroupMinSize) })
    : undefined;
  const base: GpuCapabilities = Object.freeze({
    runtime: found.runtime, adapterName: found.adapterName, software: found.software, features: Object.freeze(features), limits: Object.freeze(limits),
    maxBinding: device.limits.maxStorageBufferBindingSize, maxBufferSize: device.limits.maxBufferSize,
    kernels, gemm: 'tiled', gemmChosen: '', fmaFused: !!probe?.fused, quipCacheBytes, ...(subgroups ? { subgroups } : {}), ...(loseAfter ? { loseAfter } : {}),
    fmaProbe: !probe ? 'off (LOWBIT_WEBGPU_FMA=off)' : probe.fused ? 'fused' : `not fused: ${probe.miss}`,
  });
  const setting = gemm ?? (found.software ? 'tiled' : 'auto');
  if (setting !== 'auto') {
    const gemmChosen = gemm ? `LOWBIT_WEBGPU_GEMM=${gemm}` : 'the default on a software adapter (untimed)';
    return { ok: true, device, caps: Object.freeze({ ...base, gemm: setting, gemmChosen }) };
  }
  const designs = GEMM_CHOICES.filter((c) => !gemmShortfall(c, base));
  // timing needs 128 MiB of buffers: a device that cannot time them runs `tiled` (a lost device fails at its next use)
  const tune = await tuneGemm(device, base, designs, found.software ? SOFTWARE_TUNE_SHAPE : TUNE_SHAPE).catch(() => undefined);
  return {
    ok: true, device,
    caps: Object.freeze({ ...base, ...(tune ? { gemm: tune.choice, gemmTune: tune, gemmChosen: tuneTimes(tune) } : { gemmChosen: 'auto, but the designs could not be timed on this device' }) }),
  };
}
