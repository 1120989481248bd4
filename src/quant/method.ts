/**
 * The contract between the block-streamed pipeline (pipeline.ts) and a quantization method.
 * A method sees one linear layer at a time: its weight W [rows = out, cols = in] and, when it asks
 * for them, statistics of the layer's calibration inputs. It returns integer codes and the grid
 * plus the fake-quantized weights the rest of the model runs with. Adding a method (AWQ,
 * SmoothQuant, QuIP, ...) means adding a file and a registry entry, not changing the pipeline.
 */
import type { QuantSpec, QuantizedMatrix } from './core/grid.js';
import type { QuantLinalg } from './core/linalgProvider.js';

export type { QuantSpec };

export interface MethodOptions {
  readonly spec: QuantSpec;
  readonly actOrder: boolean;
  readonly staticGroups: boolean;
  readonly percdamp: number;
  readonly blocksize: number;
  /** fast float64 linear algebra (the backend's host kernels); the pure TypeScript path when absent */
  readonly linalg?: QuantLinalg | undefined;
}

export interface LayerInput {
  /** e.g. "model.layers.3.self_attn.q_proj" */
  readonly name: string;
  readonly W: Float32Array;
  readonly rows: number;
  readonly cols: number;
  /** H = 2XXᵀ/n over the calibration sequences (float64 [cols, cols]) when the method needs it */
  readonly H: Float64Array | undefined;
}

export interface LayerOutput extends QuantizedMatrix {
  /** fake-quantized weights [rows, cols]: exactly what dequantizing the stored codes gives */
  readonly Q: Float32Array;
  readonly dampUsed?: number;
  readonly notes: readonly string[];
}

export interface QuantMethod {
  readonly name: string;
  /** one line, with the paper */
  readonly description: string;
  /** whether quantizeLayer needs H (then the pipeline runs calibration data through each block) */
  readonly needsHessian: boolean;
  quantizeLayer(layer: LayerInput, opts: MethodOptions): LayerOutput;
}
