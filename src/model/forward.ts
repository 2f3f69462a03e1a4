import type { ModelFolder, TensorInfo } from '../storage';
import { ForwardModelError } from './errors';
import { modelSpecFromConfig, type ModelSpec } from './model-spec';
import { ModelWeights } from './model-weights';
import { cpuMatrixOps, type MatrixOps } from '../backend';
import { ropeFrequencies } from './rope';

/**
 * The streamed forward pass of a decoder-only transformer. Weights are read from the model's
 * safetensors files as they are needed — each matrix in blocks of at most `blockBytes` of f32 —
 * and dropped after use, so memory is the prompt batch's activations plus one weight block,
 * whatever the number of layers or the size of the vocabulary. Everything is computed in f32,
 * through a backend's matrix operations (docs/model.md §7): the CPU reference or WebGPU.
 */

/** How the sequences of a batch sit in the padded [batch, tokens] grid. */
export type PaddingSide = 'right' | 'left';

export interface ForwardOptions {
  /** Default 'right': sequence b fills tokens 0..len−1. 'left' puts the padding first. */
  readonly padding?: PaddingSide;
  /**
   * Default 'from-first-token': the first real token of every sequence is at position 0.
   * 'absolute': positions are the grid columns 0..T−1, padding included (what a transformers
   * forward call without position_ids does with left padding).
   */
  readonly positions?: 'from-first-token' | 'absolute';
  /**
   * Return the hidden states in transformers' `output_hidden_states` convention: entry i < layers is
   * the input of layer i (entry 0 the embeddings), the last entry the output of the final norm.
   * Each is [batch, tokens, hidden]. Rows of padding hold zeros-derived values with no meaning.
   * 'last': only the last real token of each sequence, [batch, hidden] per entry (what a gate
   * built from each prompt's last position needs, at a fraction of the memory).
   */
  readonly hiddenStates?: boolean | 'last';
  /** Default 'none'. 'all': [batch, tokens, vocab]; 'last': the last real token of each sequence, [batch, vocab]. */
  readonly logits?: 'all' | 'last' | 'none';
  /**
   * For each sequence, the token id each position should predict (or −1 to skip it): the result
   * then holds log p(target) per position, computed over the vocabulary in blocks without ever
   * holding [tokens, vocab] logits (what perplexity needs).
   */
  readonly targets?: readonly (readonly number[])[];
  /** Largest weight block read and decoded at once, in bytes of f32. Default 32 MiB. */
  readonly blockBytes?: number;
  readonly signal?: AbortSignal;
  /** Called after each layer (progress). */
  readonly onLayer?: (done: number, total: number) => void;
}

export interface ForwardResult {
  readonly batch: number;
  /** Columns of the padded grid (the longest sequence). */
  readonly tokens: number;
  readonly lengths: readonly number[];
  readonly padding: PaddingSide;
  readonly hiddenStates?: readonly Float32Array[];
  readonly logits?: Float32Array;
  /** Per sequence, per grid column: log p(target), NaN where there is no target. */
  readonly targetLogProbs?: readonly Float32Array[];
}

export const DEFAULT_BLOCK_BYTES = 32 * 1024 * 1024;

export interface ForwardModelOptions {
  /** Where the arithmetic runs: a backend's `matrix` ops. Default the CPU reference. */
  readonly matrix?: MatrixOps;
}

export class ForwardModel {
  readonly spec: ModelSpec;
  readonly weights: ModelWeights;
  /** The one buffer weight blocks are decoded into (grown to the largest block, at most blockBytes). */
  private block: Float32Array | null = null;
  readonly matrix: MatrixOps;

  private constructor(spec: ModelSpec, weights: ModelWeights, matrix: MatrixOps) {
    this.spec = spec;
    this.weights = weights;
    this.matrix = matrix;
  }

  /** Reads config.json and the safetensors headers; checks every tensor the pass will read. */
  static async open(folder: ModelFolder, options: ForwardModelOptions = {}): Promise<ForwardModel> {
    const text = await folder.readText('config.json');
    if (text === null) throw new ForwardModelError(folder.id, 'config.json is missing: the folder is not a Hugging Face model');
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (error) {
      throw new ForwardModelError(folder.id, `config.json is not valid JSON (${(error as Error).message.slice(0, 100)})`);
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new ForwardModelError(folder.id, 'config.json is not a JSON object');
    }
    const spec = modelSpecFromConfig(config as Record<string, unknown>, folder.id);
    const weights = await ModelWeights.open(folder);
    const model = new ForwardModel(spec, weights, options.matrix ?? cpuMatrixOps);
    try {
      model.checkTensors();
    } catch (error) {
      await weights.close();
      throw error;
    }
    return model;
  }

  close(): Promise<void> {
    return this.weights.close();
  }

  /** Fails early (before any arithmetic) when a tensor is missing or misshapen. */
  private checkTensors(): void {
    const s = this.spec;
    this.weights.info(EMBED, [s.vocab, s.hidden]);
    for (let i = 0; i < s.layers; i++) for (const [name, shape] of layerTensors(s, i)) this.weights.info(name, shape);
    this.weights.info('model.norm.weight', [s.hidden]);
    this.lmHead();
  }

  private lmHead(): TensorInfo {
    const s = this.spec;
    const name = !s.tied && this.weights.has(LM_HEAD) ? LM_HEAD : EMBED;
    return this.weights.info(name, [s.vocab, s.hidden]);
  }

  private running = false;

  /**
   * Runs the batch of token-id sequences through the model. One run at a time per ForwardModel
   * (runs share the weight block buffer); batch prompts instead, which also reads the weights once.
   */
  async run(sequences: readonly (readonly number[])[], options: ForwardOptions = {}): Promise<ForwardResult> {
    if (this.running) throw new Error('forward: this model is already running a batch; await it first (or put the prompts in one batch)');
    this.running = true;
    try {
      return await this.runBatch(sequences, options);
    } finally {
      this.running = false;
    }
  }

  private async runBatch(sequences: readonly (readonly number[])[], options: ForwardOptions): Promise<ForwardResult> {
    const s = this.spec;
    const padding = options.padding ?? 'right';
    const batch = sequences.length;
    if (batch === 0) throw new RangeError('forward: the batch is empty');
    const lengths = sequences.map((seq) => seq.length);
    const T = Math.max(...lengths);
    if (lengths.some((n) => n === 0)) throw new RangeError('forward: a sequence of the batch is empty');
    if (T > s.maxSequence) {
      throw new ForwardModelError(
        this.weights.model,
        `a sequence of ${T} tokens is longer than the sliding window (${s.maxSequence}); sliding-window attention is not implemented, so use shorter sequences`,
      );
    }
    if (options.targets && options.targets.length !== batch) throw new RangeError('forward: targets must have one list per sequence');
    const N = batch * T;
    const H = s.hidden;

    // Grid layout: which cells hold a token, and at which position.
    const valid = new Uint8Array(N);
    const ids = new Int32Array(N).fill(-1);
    const positions = new Float64Array(N);
    for (let b = 0; b < batch; b++) {
      const seq = sequences[b];
      const first = padding === 'right' ? 0 : T - seq.length;
      for (let j = 0; j < seq.length; j++) {
        const id = seq[j];
        if (!Number.isInteger(id) || id < 0 || id >= s.vocab) {
          throw new RangeError(`forward: token id ${id} of sequence ${b} is outside the vocabulary (0..${s.vocab - 1})`);
        }
        const cell = b * T + first + j;
        valid[cell] = 1;
        ids[cell] = id;
      }
      for (let t = 0; t < T; t++) {
        const cell = b * T + t;
        positions[cell] = options.positions === 'absolute' ? t : valid[cell] ? t - first : 0;
      }
    }
    let maxPosition = 0;
    for (let i = 0; i < N; i++) maxPosition = Math.max(maxPosition, positions[i]);
    const rope = ropeFrequencies(s.rope, maxPosition + 1, this.weights.model);
    const blockBytes = options.blockBytes ?? DEFAULT_BLOCK_BYTES;

    const lastCells = lengths.map((n, b) => (padding === 'right' ? b * T + n - 1 : b * T + T - 1));
    const lastRows = (h: Float32Array): Float32Array => {
      const rows = new Float32Array(batch * H);
      lastCells.forEach((cell, b) => rows.set(h.subarray(cell * H, cell * H + H), b * H));
      return rows;
    };
    const keep = (h: Float32Array): Float32Array => (options.hiddenStates === 'last' ? lastRows(h) : h.slice());

    const x = await this.embed(ids);
    const hidden: Float32Array[] = [];
    for (let layer = 0; layer < s.layers; layer++) {
      if (options.signal?.aborted) throw options.signal.reason ?? new Error('forward pass cancelled');
      if (options.hiddenStates) hidden.push(keep(x));
      await this.layer(layer, x, batch, T, valid, positions, rope.invFreq, rope.attentionScaling, blockBytes);
      options.onLayer?.(layer + 1, s.layers);
    }
    const normed = await this.matrix.rmsNorm(x, N, H, await this.weights.read('model.norm.weight', [H]), s.eps, s.normOffset);
    if (options.hiddenStates) hidden.push(keep(normed));

    const result: { -readonly [K in keyof ForwardResult]: ForwardResult[K] } = { batch, tokens: T, lengths, padding };
    if (options.hiddenStates) result.hiddenStates = hidden;
    const mode = options.logits ?? 'none';
    if (mode === 'all') result.logits = await this.logits(normed, N, blockBytes);
    if (mode === 'last') result.logits = await this.logits(lastRows(normed), batch, blockBytes);
    if (options.targets) {
      const targets = new Int32Array(N).fill(-1);
      options.targets.forEach((list, b) => {
        const first = padding === 'right' ? 0 : T - lengths[b];
        if (list.length !== lengths[b]) throw new RangeError(`forward: sequence ${b} has ${lengths[b]} tokens but ${list.length} targets`);
        list.forEach((id, j) => {
          if (id >= s.vocab) throw new RangeError(`forward: target id ${id} is outside the vocabulary`);
          targets[b * T + first + j] = id < 0 ? -1 : id;
        });
      });
      const logProbs = await this.targetLogProbs(normed, N, targets, blockBytes);
      result.targetLogProbs = Array.from({ length: batch }, (_, b) => logProbs.slice(b * T, (b + 1) * T));
    }
    return result;
  }

  /** Embedding rows of the valid cells (only the rows of tokens present are read), scaled for Gemma. */
  private async embed(ids: Int32Array): Promise<Float32Array> {
    const H = this.spec.hidden;
    const info = this.weights.info(EMBED, [this.spec.vocab, H]);
    const x = new Float32Array(ids.length * H);
    const unique = [...new Set(ids)].filter((id) => id >= 0);
    const rows = new Map<number, Float32Array>();
    for (let i = 0; i < unique.length; i += 64) {
      const part = unique.slice(i, i + 64);
      const read = await Promise.all(part.map((id) => this.weights.readRows(info, id, id + 1)));
      part.forEach((id, j) => rows.set(id, read[j]));
    }
    const scale = this.spec.embedScale;
    ids.forEach((id, cell) => {
      if (id < 0) return;
      const row = rows.get(id)!;
      for (let i = 0; i < H; i++) x[cell * H + i] = row[i] * scale;
    });
    return x;
  }

  /** y = x · W[rowStart:rowEnd]ᵀ (+ bias), streaming W in row blocks. */
  private async linear(
    x: Float32Array,
    rows: number,
    name: string,
    shape: readonly [number, number],
    blockBytes: number,
    rowStart = 0,
    rowEnd = shape[0],
    biasName?: string,
  ): Promise<Float32Array> {
    const info = this.weights.info(name, shape);
    const inDim = shape[1];
    const outDim = rowEnd - rowStart;
    const bias = biasName ? (await this.weights.read(biasName, [shape[0]])).subarray(rowStart, rowEnd) : undefined;
    const step = this.blockRows(inDim, blockBytes);
    if (step >= outDim) {
      const w = await this.weights.readRows(info, rowStart, rowEnd, this.blockBuffer(outDim * inDim));
      return this.matrix.matmulTransposed(x, rows, inDim, w, outDim, bias);
    }
    const y = new Float32Array(rows * outDim);
    for (let r = rowStart; r < rowEnd; r += step) {
      const end = Math.min(rowEnd, r + step);
      const w = await this.weights.readRows(info, r, end, this.blockBuffer((end - r) * inDim));
      const part = await this.matrix.matmulTransposed(x, rows, inDim, w, end - r, bias?.subarray(r - rowStart, end - rowStart));
      scatterColumns(part, rows, end - r, y, outDim, r - rowStart);
    }
    return y;
  }

  private async layer(
    i: number,
    x: Float32Array,
    batch: number,
    T: number,
    valid: Uint8Array,
    positions: Float64Array,
    invFreq: Float32Array,
    attentionScaling: number,
    blockBytes: number,
  ): Promise<void> {
    const s = this.spec;
    const N = batch * T;
    const H = s.hidden;
    const hd = s.headDim;
    const qDim = s.heads * hd;
    const kvDim = s.kvHeads * hd;
    const p = `model.layers.${i}.`;
    const norm = async (name: string, dim = H) => this.weights.read(p + name, [dim]);

    const ops = this.matrix;
    const h = await ops.rmsNorm(x, N, H, await norm('input_layernorm.weight'), s.eps, s.normOffset);
    let q: Float32Array;
    let k: Float32Array;
    let v: Float32Array;
    if (s.fused) {
      const shape = [qDim + 2 * kvDim, H] as const;
      const name = p + 'self_attn.qkv_proj.weight';
      q = await this.linear(h, N, name, shape, blockBytes, 0, qDim);
      k = await this.linear(h, N, name, shape, blockBytes, qDim, qDim + kvDim);
      v = await this.linear(h, N, name, shape, blockBytes, qDim + kvDim, qDim + 2 * kvDim);
    } else {
      const bias = (proj: string) => (s.qkvBias ? p + `self_attn.${proj}.bias` : undefined);
      q = await this.linear(h, N, p + 'self_attn.q_proj.weight', [qDim, H], blockBytes, 0, qDim, bias('q_proj'));
      k = await this.linear(h, N, p + 'self_attn.k_proj.weight', [kvDim, H], blockBytes, 0, kvDim, bias('k_proj'));
      v = await this.linear(h, N, p + 'self_attn.v_proj.weight', [kvDim, H], blockBytes, 0, kvDim, bias('v_proj'));
    }
    if (s.qkNorm) {
      q = await ops.rmsNorm(q, N * s.heads, hd, await norm('self_attn.q_norm.weight', hd), s.eps, s.normOffset);
      k = await ops.rmsNorm(k, N * s.kvHeads, hd, await norm('self_attn.k_norm.weight', hd), s.eps, s.normOffset);
    }
    q = await ops.rope(q, N, s.heads, hd, positions, invFreq, attentionScaling);
    k = await ops.rope(k, N, s.kvHeads, hd, positions, invFreq, attentionScaling);
    const attn = await ops.attention(q, k, v, valid, {
      batch, tokens: T, heads: s.heads, kvHeads: s.kvHeads, headDim: hd, scale: s.attentionScale, softcap: s.attentionSoftcap,
    });
    let o = await this.linear(attn, N, p + 'self_attn.o_proj.weight', [H, qDim], blockBytes, 0, H, s.oBias ? p + 'self_attn.o_proj.bias' : undefined);
    if (s.sandwichNorms) o = await ops.rmsNorm(o, N, H, await norm('post_attention_layernorm.weight'), s.eps, s.normOffset);
    addInPlace(x, o);

    const m = await ops.rmsNorm(x, N, H, await norm(s.sandwichNorms ? 'pre_feedforward_layernorm.weight' : 'post_attention_layernorm.weight'), s.eps, s.normOffset);
    const I = s.intermediate;
    let gate: Float32Array;
    let up: Float32Array;
    const mlpBias = (proj: string) => (s.mlpBias ? p + `mlp.${proj}.bias` : undefined);
    if (s.fused) {
      gate = await this.linear(m, N, p + 'mlp.gate_up_proj.weight', [2 * I, H], blockBytes, 0, I);
      up = await this.linear(m, N, p + 'mlp.gate_up_proj.weight', [2 * I, H], blockBytes, I, 2 * I);
    } else {
      gate = await this.linear(m, N, p + 'mlp.gate_proj.weight', [I, H], blockBytes, 0, I, mlpBias('gate_proj'));
      up = await this.linear(m, N, p + 'mlp.up_proj.weight', [I, H], blockBytes, 0, I, mlpBias('up_proj'));
    }
    const act = await ops.gatedActivation(gate, up, s.activation);
    let down = await this.linear(act, N, p + 'mlp.down_proj.weight', [H, I], blockBytes, 0, H, mlpBias('down_proj'));
    if (s.sandwichNorms) down = await ops.rmsNorm(down, N, H, await norm('post_feedforward_layernorm.weight'), s.eps, s.normOffset);
    addInPlace(x, down);
  }

  /** Logits [rows, vocab] of final hidden states, soft-capped for Gemma 2. */
  private async logits(h: Float32Array, rows: number, blockBytes: number): Promise<Float32Array> {
    const s = this.spec;
    const info = this.lmHead();
    const out = new Float32Array(rows * s.vocab);
    await this.forVocabBlocks(info, blockBytes, async (w, start, count) => {
      scatterColumns(await this.matrix.matmulTransposed(h, rows, s.hidden, w, count), rows, count, out, s.vocab, start);
    });
    if (s.finalSoftcap !== null) {
      const cap = s.finalSoftcap;
      for (let i = 0; i < out.length; i++) out[i] = cap * Math.tanh(out[i] / cap);
    }
    return out;
  }

  /** log softmax(logits)[target] per row, by a running log-sum-exp over vocabulary blocks. */
  private async targetLogProbs(h: Float32Array, rows: number, targets: Int32Array, blockBytes: number): Promise<Float32Array> {
    const s = this.spec;
    const wanted: number[] = [];
    for (let r = 0; r < rows; r++) if (targets[r] >= 0) wanted.push(r);
    const packed = new Float32Array(wanted.length * s.hidden);
    wanted.forEach((r, j) => packed.set(h.subarray(r * s.hidden, (r + 1) * s.hidden), j * s.hidden));
    const max = new Float64Array(wanted.length).fill(-Infinity);
    const sum = new Float64Array(wanted.length);
    const targetLogit = new Float64Array(wanted.length);
    await this.forVocabBlocks(this.lmHead(), blockBytes, async (w, start, count) => {
      const block = await this.matrix.matmulTransposed(packed, wanted.length, s.hidden, w, count);
      for (let j = 0; j < wanted.length; j++) {
        const row = block.subarray(j * count, (j + 1) * count);
        if (s.finalSoftcap !== null) for (let c = 0; c < count; c++) row[c] = s.finalSoftcap * Math.tanh(row[c] / s.finalSoftcap);
        let m = max[j];
        for (let c = 0; c < count; c++) if (row[c] > m) m = row[c];
        let acc = sum[j] * Math.exp(max[j] - m);
        for (let c = 0; c < count; c++) acc += Math.exp(row[c] - m);
        max[j] = m;
        sum[j] = acc;
        const t = targets[wanted[j]];
        if (t >= start && t < start + count) targetLogit[j] = row[t - start];
      }
    });
    const out = new Float32Array(rows).fill(Number.NaN);
    wanted.forEach((r, j) => (out[r] = targetLogit[j] - (max[j] + Math.log(sum[j]))));
    return out;
  }

  private blockBuffer(elements: number): Float32Array {
    if (!this.block || this.block.length < elements) this.block = new Float32Array(elements);
    return this.block.subarray(0, elements);
  }

  /** Rows of a weight of `inDim` columns read at once: within blockBytes and the backend's operand limit. */
  private blockRows(inDim: number, blockBytes: number): number {
    return Math.max(1, Math.floor(Math.min(blockBytes / 4, this.matrix.maxElements ?? Infinity) / inDim));
  }

  private async forVocabBlocks(
    info: TensorInfo,
    blockBytes: number,
    use: (w: Float32Array, start: number, count: number) => Promise<void>,
  ): Promise<void> {
    const V = this.spec.vocab;
    const step = this.blockRows(this.spec.hidden, blockBytes);
    for (let start = 0; start < V; start += step) {
      const end = Math.min(V, start + step);
      await use(await this.weights.readRows(info, start, end, this.blockBuffer((end - start) * this.spec.hidden)), start, end - start);
    }
  }
}

/** The residual connection, on the host: a += b. */
function addInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

/** Copies part [rows, count] into columns [offset, offset + count) of y [rows, stride]. */
function scatterColumns(part: Float32Array, rows: number, count: number, y: Float32Array, stride: number, offset: number): void {
  for (let r = 0; r < rows; r++) y.set(part.subarray(r * count, (r + 1) * count), r * stride + offset);
}

const EMBED = 'model.embed_tokens.weight';
const LM_HEAD = 'lm_head.weight';

/** Every tensor one layer reads, with its expected shape. */
function layerTensors(s: ModelSpec, i: number): [string, number[]][] {
  const p = `model.layers.${i}.`;
  const H = s.hidden;
  const qDim = s.heads * s.headDim;
  const kvDim = s.kvHeads * s.headDim;
  const I = s.intermediate;
  const list: [string, number[]][] = [
    [p + 'input_layernorm.weight', [H]],
    [p + 'post_attention_layernorm.weight', [H]],
    [p + 'self_attn.o_proj.weight', [H, qDim]],
    [p + 'mlp.down_proj.weight', [H, I]],
  ];
  if (s.fused) {
    list.push([p + 'self_attn.qkv_proj.weight', [qDim + 2 * kvDim, H]], [p + 'mlp.gate_up_proj.weight', [2 * I, H]]);
  } else {
    list.push(
      [p + 'self_attn.q_proj.weight', [qDim, H]],
      [p + 'self_attn.k_proj.weight', [kvDim, H]],
      [p + 'self_attn.v_proj.weight', [kvDim, H]],
      [p + 'mlp.gate_proj.weight', [I, H]],
      [p + 'mlp.up_proj.weight', [I, H]],
    );
  }
  if (s.qkvBias) list.push([p + 'self_attn.q_proj.bias', [qDim]], [p + 'self_attn.k_proj.bias', [kvDim]], [p + 'self_attn.v_proj.bias', [kvDim]]);
  if (s.oBias) list.push([p + 'self_attn.o_proj.bias', [H]]);
  if (s.mlpBias) list.push([p + 'mlp.gate_proj.bias', [I]], [p + 'mlp.up_proj.bias', [I]], [p + 'mlp.down_proj.bias', [H]]);
  if (s.qkNorm) list.push([p + 'self_attn.q_norm.weight', [s.headDim]], [p + 'self_attn.k_norm.weight', [s.headDim]]);
  if (s.sandwichNorms) list.push([p + 'pre_feedforward_layernorm.weight', [H]], [p + 'post_feedforward_layernorm.weight', [H]]);
  return list;
}
