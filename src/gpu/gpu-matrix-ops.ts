import type { AttentionShape, GatedActivationKind, MatrixOps } from '../backend/matrix-ops';
import type { BufferPool } from './buffer-pool';
import { CommandRecorder, type Binding, type ParamSlot } from './command-recorder';
import { GpuOperationError } from './errors';
import type { KernelCache } from './kernels';

/** What the matrix ops borrow from the WebGPU backend they belong to. */
export interface MatrixOpsHost {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly kernels: KernelCache;
  /** Largest storage binding, in bytes. */
  readonly maxBindingBytes: number;
  readonly maxGroupsPerDimension: number;
  /** Throws when the device was lost or an earlier command failed. */
  check(): void;
  /** Waits for a GPU promise with the backend's timeout and device-loss handling. */
  guard<T>(p: Promise<T>): Promise<T>;
}

const ACTIVATION_CODE: Readonly<Record<GatedActivationKind, number>> = { silu: 0, gelu_tanh: 1, gelu: 2 };
const TILE = 16;
const WG = 256;

/**
 * `MatrixOps` on WebGPU (the kernels of src/shaders/matrix.wgsl; docs/model.md §7). Each call
 * uploads its operands, records one dispatch and reads the result back: activations live on the
 * host between calls, so the forward pass streams weights exactly as on the CPU, and every call
 * is one submission (the JS thread never holds the GPU waiting on host work). The ops have a
 * command recorder of their own, so they never mix with a merge chunk's recorded commands.
 */
export class GpuMatrixOps implements MatrixOps {
  readonly name = 'webgpu' as const;
  readonly maxElements: number;
  private readonly recorder: CommandRecorder;

  constructor(private readonly host: MatrixOpsHost) {
    this.maxElements = Math.floor(host.maxBindingBytes / 4);
    this.recorder = new CommandRecorder(host.device, host.pool, host.maxGroupsPerDimension);
  }

  async matmulTransposed(x: Float32Array, rows: number, inDim: number, w: Float32Array, outDim: number, bias?: Float32Array): Promise<Float32Array> {
    if (bias && bias.length < outDim) throw new RangeError(`matmul: the bias has ${bias.length} values, ${outDim} needed`);
    return this.product(x, w, rows, inDim, outDim, false, bias);
  }

  async matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array> {
    return this.product(a, b, m, k, n, true);
  }

  async rmsNorm(x: Float32Array, rows: number, dim: number, weight: Float32Array, eps: number, offset: number): Promise<Float32Array> {
    if (weight.length !== dim) throw new RangeError(`rmsNorm: weight has ${weight.length} values, dimension is ${dim}`);
    this.need('rmsNorm', x, rows * dim);
    const step = this.rowsPerCall(rows, dim);
    if (step < rows) {
      const out = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r += step) {
        const n = Math.min(step, rows - r);
        out.set(await this.rmsNorm(x.subarray(r * dim, (r + n) * dim), n, dim, weight, eps, offset), r * dim);
      }
      return out;
    }
    return this.run('rmsnorm', [x.subarray(0, rows * dim), weight], rows * dim, rows, (p) => p.u32(0, rows).u32(1, dim).f32(8, eps).f32(9, offset));
  }

  async rope(
    x: Float32Array,
    tokens: number,
    heads: number,
    headDim: number,
    positions: ArrayLike<number>,
    invFreq: Float32Array,
    attentionScaling: number,
  ): Promise<Float32Array> {
    const half = invFreq.length;
    if (2 * half > headDim) throw new RangeError(`rope: ${2 * half} rotary dimensions exceed the head dimension ${headDim}`);
    const n = tokens * heads * headDim;
    this.need('rope', x, n);
    const step = this.rowsPerCall(tokens, heads * headDim);
    if (step < tokens) {
      const out = new Float32Array(n);
      const width = heads * headDim;
      for (let t = 0; t < tokens; t += step) {
        const count = Math.min(step, tokens - t);
        const part = await this.rope(x.subarray(t * width, (t + count) * width), count, heads, headDim, Array.from({ length: count }, (_, j) => positions[t + j]), invFreq, attentionScaling);
        out.set(part, t * width);
      }
      return out;
    }
    // The (cos, sin) table the CPU reference computes per token, in the same roundings.
    const table = new Float32Array(Math.max(1, tokens * half * 2));
    for (let t = 0; t < tokens; t++) {
      for (let k = 0; k < half; k++) {
        const angle = Math.fround(positions[t] * invFreq[k]);
        table[(t * half + k) * 2] = Math.cos(angle) * attentionScaling;
        table[(t * half + k) * 2 + 1] = Math.sin(angle) * attentionScaling;
      }
    }
    return this.run('rope', [x.subarray(0, n), table], n, Math.ceil(n / WG), (p) => p.u32(0, tokens).u32(1, heads).u32(2, headDim).u32(3, half));
  }

  async gatedActivation(gate: Float32Array, up: Float32Array, activation: GatedActivationKind): Promise<Float32Array> {
    if (up.length < gate.length) throw new RangeError(`gatedActivation: up has ${up.length} values, gate ${gate.length}`);
    const n = gate.length;
    if (n > this.maxElements) {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i += this.maxElements) {
        const end = Math.min(n, i + this.maxElements);
        out.set(await this.gatedActivation(gate.subarray(i, end), up.subarray(i, end), activation), i);
      }
      return out;
    }
    return this.run('gated', [gate, up.subarray(0, n)], n, Math.ceil(n / WG), (p) => p.u32(0, n).u32(1, ACTIVATION_CODE[activation]));
  }

  async attention(q: Float32Array, k: Float32Array, v: Float32Array, valid: Uint8Array, shape: AttentionShape): Promise<Float32Array> {
    const { batch, tokens, heads, kvHeads, headDim } = shape;
    if (heads % kvHeads !== 0) throw new RangeError(`attention: ${heads} heads are not a multiple of ${kvHeads} key/value heads`);
    const cells = batch * tokens;
    this.need('attention', q, cells * heads * headDim);
    this.need('attention', k, cells * kvHeads * headDim);
    this.need('attention', v, cells * kvHeads * headDim);
    if (valid.length < cells) throw new RangeError(`attention: ${valid.length} validity flags, ${cells} needed`);
    const perSequence = tokens * heads * headDim;
    const sequences = this.rowsPerCall(batch, perSequence);
    if (sequences < batch) {
      const out = new Float32Array(cells * heads * headDim);
      const qs = tokens * heads * headDim;
      const kvs = tokens * kvHeads * headDim;
      for (let b = 0; b < batch; b += sequences) {
        const n = Math.min(sequences, batch - b);
        const part = await this.attention(
          q.subarray(b * qs, (b + n) * qs), k.subarray(b * kvs, (b + n) * kvs), v.subarray(b * kvs, (b + n) * kvs),
          valid.subarray(b * tokens, (b + n) * tokens), { ...shape, batch: n },
        );
        out.set(part, b * qs);
      }
      return out;
    }
    const flags = Uint32Array.from(valid.subarray(0, cells));
    const threads = cells * heads;
    return this.run(
      'attention',
      [q.subarray(0, cells * heads * headDim), k.subarray(0, cells * kvHeads * headDim), v.subarray(0, cells * kvHeads * headDim), flags],
      cells * heads * headDim,
      Math.ceil(threads / WG),
      (p) => {
        p.u32(0, batch).u32(1, tokens).u32(2, heads).u32(3, kvHeads).u32(4, headDim).u32(5, shape.softcap === null ? 0 : 1);
        p.f32(8, shape.scale).f32(9, shape.softcap ?? 1);
      },
    );
  }

  private async product(a: Float32Array, b: Float32Array, m: number, k: number, n: number, plain: boolean, bias?: Float32Array): Promise<Float32Array> {
    this.need('matmul', a, m * k);
    this.need('matmul', b, k * n);
    const step = this.rowsPerCall(m, Math.max(k, n));
    if (step < m) {
      // More rows than one binding holds: the product in row bands (each row's sum is unchanged).
      const out = new Float32Array(m * n);
      for (let r = 0; r < m; r += step) {
        const rows = Math.min(step, m - r);
        out.set(await this.product(a.subarray(r * k, (r + rows) * k), b, rows, k, n, plain, bias), r * n);
      }
      return out;
    }
    const tilesN = Math.ceil(n / TILE);
    const operands = [a.subarray(0, m * k), b.subarray(0, k * n)];
    // Without a bias, A is bound in its place (a binding must name some buffer).
    const biasIndex = bias ? operands.push(bias.subarray(0, n)) - 1 : 0;
    return this.run('matmul', operands, m * n, Math.ceil(m / TILE) * tilesN, (p) => {
      p.u32(0, m).u32(1, k).u32(2, n).u32(3, plain ? 1 : 0).u32(4, bias ? 1 : 0).u32(5, tilesN);
    }, [0, 1, biasIndex]);
  }

  /** Rows of `width` values one call may bind (at least 1; a row too wide fails in `run`). */
  private rowsPerCall(rows: number, width: number): number {
    return Math.max(1, Math.min(rows, Math.floor(this.maxElements / Math.max(1, width))));
  }

  private need(op: string, values: ArrayLike<number>, count: number): void {
    if (values.length < count) throw new RangeError(`${op}: an operand holds ${values.length} values, ${count} needed`);
  }

  /**
   * Uploads the operands, dispatches `entry` with the operands bound at 1… (`order` picks which
   * operand each binding gets) and the output after them, and reads the output back.
   */
  private async run(
    entry: 'matmul' | 'rmsnorm' | 'rope' | 'gated' | 'attention',
    operands: readonly (Float32Array | Uint32Array)[],
    outElements: number,
    groups: number,
    params: (p: ParamSlot) => void,
    order: readonly number[] = operands.map((_, i) => i),
  ): Promise<Float32Array> {
    this.host.check();
    if (outElements === 0) return new Float32Array(0);
    for (const o of [...operands.map((x) => x.length), outElements]) {
      if (o > this.maxElements) {
        throw new GpuOperationError(
          `${entry}: an operand of ${o} values is larger than the GPU's storage binding limit (${this.maxElements} values); use a smaller batch or block size`,
        );
      }
    }
    const { pool, device } = this.host;
    const buffers = operands.map((x) => {
      const buffer = pool.acquire('storage', Math.max(4, x.byteLength), `alloy ${entry} operand`);
      if (x.byteLength > 0) device.queue.writeBuffer(buffer, 0, x.buffer, x.byteOffset, x.byteLength);
      return buffer;
    });
    const out = pool.acquire('storage', outElements * 4, `alloy ${entry} result`);
    try {
      const bindings: Binding[] = order.map((i, j) => ({ binding: j + 1, buffer: buffers[i], size: Math.max(4, operands[i].byteLength) }));
      bindings.push({ binding: order.length + 1, buffer: out, size: outElements * 4 });
      this.recorder.dispatch(this.host.kernels.get('matrix', entry), bindings, groups, params);
      const [bytes] = await this.recorder.read([{ buffer: out, offset: 0, size: outElements * 4 }], (p) => this.host.guard(p));
      this.host.check();
      return new Float32Array(bytes.buffer, bytes.byteOffset, outElements);
    } finally {
      for (const b of buffers) pool.release(b);
      pool.release(out);
    }
  }

  dispose(): void {
    this.recorder.dispose();
  }
}
