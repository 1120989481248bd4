/**
 * One decoder block as a method's `transformBlock` sees it: its weights as float32 host arrays
 * (norms included) that the method may change in place, and ways to run the block or its parts on
 * the calibration inputs through the backend: capture each linear's input, evaluate the attention
 * half, the MLP half or one linear with candidate weights. Whatever the method leaves in `weights`
 * is what the pipeline then quantizes layer by layer and stores.
 */
import type { Backend, BTensor } from '../backend/backend.js';
import { attentionPart, blockForward, mlpPart, type LinearFn, type LinearName } from '../model/block.js';
import type { LlamaConfig } from '../io/config.js';
import type { ModelCheckpoint } from '../io/checkpoint.js';
import { LINEAR_INPUT, LINEAR_PART, type InputName } from '../model/layout.js';
import type { BlockWeights } from '../model/weights.js';
import { NAMES } from '../io/source.js';
import { FormatError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';

export interface HostMatrix {
  data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

/** A block's weights as float32 host arrays: norms [D], linears [out, in]. */
export interface HostBlock {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  q: HostMatrix; k: HostMatrix; v: HostMatrix; o: HostMatrix;
  gate: HostMatrix; up: HostMatrix; down: HostMatrix;
}

/** Reads block i of `ckpt` as float32 host copies (any stored dtype), checking the shapes the config implies. */
export function readHostBlock(ckpt: ModelCheckpoint, i: number): HostBlock {
  const c = ckpt.config;
  const D = c.hiddenSize, qd = c.numHeads * c.headDim, kvd = c.numKvHeads * c.headDim, F = c.intermediateSize;
  const read = (name: string, shape: readonly number[]): Float32Array => {
    const t = ckpt.weights.read(name);
    if (t.shape.length !== shape.length || t.shape.some((d, j) => d !== shape[j])) {
      throw new FormatError(ckpt.weights.path, `tensor ${name} has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`);
    }
    return t.dtype === 'f32' ? (t.data as Float32Array).slice() : t.toF32();
  };
  const lin = (l: LinearName, rows: number, cols: number): HostMatrix => ({ data: read(NAMES.layer(i, LINEAR_PART[l]), [rows, cols]), rows, cols });
  return {
    inputNorm: read(NAMES.layer(i, 'input_layernorm'), [D]), postNorm: read(NAMES.layer(i, 'post_attention_layernorm'), [D]),
    q: lin('q', qd, D), k: lin('k', kvd, D), v: lin('v', kvd, D), o: lin('o', D, qd),
    gate: lin('gate', F, D), up: lin('up', F, D), down: lin('down', D, F),
  };
}

function uploadMatrix(be: Backend, m: HostMatrix): BTensor {
  return be.uploadWeight(new Tensor('f32', [m.rows, m.cols], m.data));
}

/** The block's host weights uploaded to the backend (float32). */
export function uploadHostBlock(be: Backend, h: HostBlock): BlockWeights {
  const norm = (g: Float32Array) => be.uploadWeight(new Tensor('f32', [g.length], g));
  return {
    inputNorm: norm(h.inputNorm), postNorm: norm(h.postNorm),
    q: uploadMatrix(be, h.q), k: uploadMatrix(be, h.k), v: uploadMatrix(be, h.v), o: uploadMatrix(be, h.o),
    gate: uploadMatrix(be, h.gate), up: uploadMatrix(be, h.up), down: uploadMatrix(be, h.down),
  };
}

/** What a BlockJob's method records for the quantization report: notes, and named values (AWQ's ratios and clips). */
export interface BlockRecord {
  readonly notes: string[];
  readonly values: Record<string, unknown>;
}

export class BlockJob {
  readonly record: BlockRecord = { notes: [], values: {} };
  constructor(
    readonly be: Backend,
    readonly cfg: LlamaConfig,
    /** block index */
    readonly index: number,
    /** the block's float weights: change them in place */
    readonly weights: HostBlock,
    /** the calibration sequences' hidden states entering the block (equal lengths) */
    private readonly inputs: readonly BTensor[],
    private readonly rope: { cos: BTensor; sin: BTensor },
  ) {}

  get sequences(): number { return this.inputs.length; }

  /** `model.layers.<index>.<part>` of a linear, for messages and records. */
  layerName(l: LinearName): string { return NAMES.layer(this.index, LINEAR_PART[l]).replace(/\.weight$/, ''); }

  /**
   * Runs the block with the current `weights` over every calibration sequence, each in its own scope, and
   * calls `seen(key, input)` with the first tensor each requested input takes in that sequence; the tensors
   * for which it returns true are the scope's result, so they outlive it, and are handed to `done`, which
   * runs after each sequence's forward (the caller frees them).
   */
  private async forEachInput(
    want: ReadonlySet<InputName>, seen: (key: InputName, input: BTensor) => boolean | void,
    done?: (kept: ReadonlyMap<InputName, BTensor>) => Promise<void> | void,
  ): Promise<void> {
    const be = this.be;
    const w = uploadHostBlock(be, this.weights);
    try {
      for (const x of this.inputs) {
        const first = new Set<InputName>();
        const kept = new Map<InputName, BTensor>();
        const linear: LinearFn = (name, input, weight) => {
          const key = LINEAR_INPUT[name];
          if (want.has(key) && !first.has(key)) {
            first.add(key);
            if (seen(key, input)) kept.set(key, input);
          }
          return be.linear(input, weight);
        };
        be.scope(() => { be.free(blockForward(be, this.cfg, w, x, this.rope, { linear }).out); return [...kept.values()]; });
        await done?.(kept);
      }
    } finally {
      freeAll(be, Object.values(w));
    }
  }

  /**
   * Runs the block with the current `weights` over every calibration sequence and returns the rows
   * each requested input takes (host arrays [T, width], one per sequence).
   */
  async capture(names: readonly InputName[]): Promise<Map<InputName, Float32Array[]>> {
    const want = new Set(names);
    const out = new Map<InputName, Float32Array[]>([...want].map((n) => [n, []]));
    let pending: Promise<void>[] = [];
    await this.forEachInput(want, (key, input) => {
      pending.push(this.be.read(input).then((d) => { out.get(key)!.push(d.slice()); }));
    }, async () => { await Promise.all(pending); pending = []; });
    return out;
  }

  /**
   * As `capture`, the rows left on the backend: one [T, width] tensor per sequence and input, nothing read
   * back (free them with `free`; if this throws, what it kept is freed).
   */
  async captureOn(names: readonly InputName[]): Promise<Map<InputName, BTensor[]>> {
    const want = new Set(names);
    const out = new Map<InputName, BTensor[]>([...want].map((n) => [n, []]));
    try {
      await this.forEachInput(want, (key, input) => {
        if (this.inputs.includes(input)) throw new Error(`captureOn: ${key} is the block's own input, which the pipeline owns`);
        return true;
      }, (kept) => { for (const [k, t] of kept) out.get(k)!.push(t); });
    } catch (e) {
      for (const ts of out.values()) freeAll(this.be, ts);
      throw e;
    }
    return out;
  }

  /**
   * Per-channel max |x| of each requested input over every calibration sequence, the block run with
   * the current `weights`: on the backend (columnAbsMax, read back once per input) when it has the
   * op, else from the captured rows on the host (the same comparison, so the same bits).
   */
  async captureAbsMax(names: readonly InputName[]): Promise<Map<InputName, Float32Array>> {
    const be = this.be;
    const width = (n: InputName) => this.weights[(Object.keys(LINEAR_INPUT) as LinearName[]).find((l) => LINEAR_INPUT[l] === n)!].cols;
    if (!be.columnAbsMax) {
      const rows = await this.capture(names);
      return new Map([...rows].map(([n, xs]) => [n, hostAbsMax(xs, width(n))]));
    }
    // made outside the sequences' scopes, which free everything else they make
    const acc = new Map<InputName, BTensor>([...new Set(names)].map((n) => [n, be.upload(new Float32Array(width(n)), [width(n)])]));
    try {
      await this.forEachInput(new Set(acc.keys()), (key, input) => { be.columnAbsMax!(input, acc.get(key)!); });
      const out = new Map<InputName, Float32Array>();
      for (const [n, a] of acc) out.set(n, await be.read(a));
      return out;
    } finally {
      freeAll(be, [...acc.values()]);
    }
  }

  /**
   * attentionPart (o-projection output, no residual), mlpPart (down-projection output, no residual) or one
   * linear of each sequence's rows already on the backend (`uploadRows`), weights already uploaded: one output
   * tensor per sequence, left on the backend for the caller to free (a search keeps its inputs and reference
   * outputs there across candidates instead of moving them for each).
   */
  attentionOn(w: Pick<BlockWeights, 'q' | 'k' | 'v' | 'o'>, xs: readonly BTensor[]): BTensor[] {
    return xs.map((x) => this.be.scope(() => attentionPart(this.be, this.cfg, w as BlockWeights, x, this.rope).out));
  }

  mlpOn(w: Pick<BlockWeights, 'gate' | 'up' | 'down'>, xs: readonly BTensor[]): BTensor[] {
    return xs.map((x) => this.be.scope(() => mlpPart(this.be, w as BlockWeights, x)));
  }

  linearOn(w: BTensor, xs: readonly BTensor[]): BTensor[] {
    return xs.map((x) => this.be.linear(x, w));
  }

  /** Each sequence's rows [T, width] uploaded once (free them with `free`). */
  uploadRows(xs: readonly Float32Array[], width: number): BTensor[] {
    return xs.map((x) => this.be.upload(x, [x.length / width, width]));
  }

  /** A host matrix uploaded as a float32 weight. */
  uploadWeight(m: HostMatrix): BTensor { return uploadMatrix(this.be, m); }

  free(ts: readonly BTensor[]): void { freeAll(this.be, ts); }
}

/** Per-channel max |x| over the rows of every [T, C] array (`a > m`, so NaN is skipped, as columnAbsMax). */
function hostAbsMax(xs: readonly Float32Array[], C: number): Float32Array {
  const m = new Float32Array(C);
  for (const x of xs) for (let i = 0; i < x.length; i++) { const a = Math.abs(x[i]!); if (a > m[i % C]!) m[i % C] = a; }
  return m;
}

function freeAll(be: Backend, ts: readonly BTensor[]): void {
  for (const t of ts) be.free(t);
}
