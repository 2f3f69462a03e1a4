/**
 * The dense matrix operations of the forward pass and of LoRA's product (docs/model.md §7), on
 * host Float32Arrays in row-major layout. Unlike `ChunkOps` (one chunk of one tensor, elementwise
 * and reductions), these take whole activation matrices and one block of a weight at a time; the
 * caller streams weights and keeps activations. The CPU reference (`cpuMatrixOps`) and WebGPU
 * implement the interface; results agree within the tolerances docs/model.md §7 states.
 */

/** The gated MLP activations: SiLU, GELU with the tanh approximation, exact GELU. */
export type GatedActivationKind = 'silu' | 'gelu_tanh' | 'gelu';

/** Shape and scoring of a batch of causal grouped-query attention. */
export interface AttentionShape {
  readonly batch: number;
  /** Columns of the padded [batch, tokens] grid. */
  readonly tokens: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Scores are q·k · scale … */
  readonly scale: number;
  /** … then cap · tanh(score / cap) when a cap is given (Gemma 2). */
  readonly softcap: number | null;
}

export interface MatrixOps {
  readonly name: 'cpu' | 'webgpu';
  /** Most elements one operand or result may hold (a GPU's binding limit); undefined: no limit. */
  readonly maxElements?: number;
  /** y[rows×outDim] = x[rows×inDim] · wᵀ (+ bias), w [outDim×inDim] in `nn.Linear` layout. */
  matmulTransposed(x: Float32Array, rows: number, inDim: number, w: Float32Array, outDim: number, bias?: Float32Array): Promise<Float32Array>;
  /** out[m×n] = a[m×k] · b[k×n]. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array>;
  /** x / sqrt(mean(x²) + eps) · (offset + weight) per row of `dim` values. */
  rmsNorm(x: Float32Array, rows: number, dim: number, weight: Float32Array, eps: number, offset: number): Promise<Float32Array>;
  /**
   * Rotary embedding ("rotate half" layout) of x [tokens, heads, headDim] at `positions` (one per
   * token), with 2·invFreq.length rotary dimensions and cos/sin scaled by `attentionScaling`.
   */
  rope(
    x: Float32Array,
    tokens: number,
    heads: number,
    headDim: number,
    positions: ArrayLike<number>,
    invFreq: Float32Array,
    attentionScaling: number,
  ): Promise<Float32Array>;
  /** act(gate[i]) · up[i]. */
  gatedActivation(gate: Float32Array, up: Float32Array, activation: GatedActivationKind): Promise<Float32Array>;
  /**
   * Causal attention of q [batch·tokens, heads, headDim] over k, v [batch·tokens, kvHeads,
   * headDim] within each sequence: query t attends to keys s ≤ t with valid[s] ≠ 0; a query that
   * is not valid gets zeros. Query head h reads key/value head ⌊h / (heads / kvHeads)⌋.
   */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, valid: Uint8Array, shape: AttentionShape): Promise<Float32Array>;
}
