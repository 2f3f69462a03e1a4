import type { MatrixOps } from '../backend/matrix-ops';
import { addScaledProduct } from '../lora';
import type { TensorAdapter, TensorJob } from '../plan/types';
import { decodeToF32, dtypeSize } from '../storage';
import type { ByteSource, FloatDtype, TensorInfo } from '../storage/types';

type LoraAdapter = Extract<TensorAdapter, { kind: 'lora' }>;

/** The factors of one input's LoRA held for the whole job: `right` is rank×cols; `aT` is A when W is transposed. */
interface Factors {
  readonly right: Float32Array;
  /** A as stored, [rank, rows of W]: row i of W takes column i of A (transposed layout only). */
  readonly a?: Float32Array;
}

/**
 * Reads the inputs of a job that carry a LoRA adapter (`model+lora`, docs/lora.md): rows
 * `[r0, r0+rows)` of `W + scale·ΔW`, in f32, where ΔW = B·A, or (B·A)ᵀ for fan_in_fan_out
 * weights and embeddings. W's chunk rows are decoded to f32 and the product of B's matching
 * rows with A is added in f32: on the host (addScaledProduct, the CPU reference) for CPU
 * backends, by the backend's matmul on WebGPU (docs/lora.md §1, docs/model.md §7: equal within
 * its stated tolerance). The backend receives f32 bytes, so it merges the adapted weight unchanged. Memory per input: A (rank×in)
 * and, per chunk, B's rows (rows×rank); a transposed adapter holds both factors (rank×(rows+cols)).
 */
export class LoraInputReader {
  private readonly factors = new Map<number, Promise<Factors>>();

  constructor(
    private readonly job: TensorJob,
    /** The inputs' own tensor sources (W). */
    private readonly sources: readonly Promise<ByteSource>[],
    private readonly open: (key: string, file: string) => Promise<ByteSource>,
    private readonly onRead: (bytes: number) => void,
    /** The backend's matrix ops: a WebGPU one computes B·A; absent or CPU, the host reference does. */
    private readonly matrix?: MatrixOps,
  ) {}

  /** f32 bytes of rows `[r0, r0 + rows)` of input i with its adapter applied. */
  async read(i: number, r0: number, rows: number): Promise<Uint8Array> {
    const input = this.job.inputs[i];
    const adapter = this.adapterOf(i);
    const [totalRows, cols] = input.tensor.shape;
    const dtype = input.tensor.dtype as FloatDtype;
    const [wBytes, factors, left] = await Promise.all([
      this.readRange(this.sources[i], input.tensor, r0 * cols, rows * cols),
      this.factorsOf(i),
      adapter.transposed ? Promise.resolve(null) : this.readMatrix(adapter, adapter.b, r0 * adapter.rank, rows * adapter.rank),
    ]);
    const w = decodeToF32(wBytes, dtype);
    let l = left;
    if (!l) {
      // Row i of a transposed W takes column r0+i of A.
      const a = factors.a!;
      l = new Float32Array(rows * adapter.rank);
      for (let r = 0; r < rows; r++) for (let k = 0; k < adapter.rank; k++) l[r * adapter.rank + k] = a[k * totalRows + r0 + r];
    }
    if (this.matrix && this.matrix.name !== 'cpu') {
      const product = await this.matrix.matmul(l, factors.right, rows, adapter.rank, cols);
      const scale = adapter.scale;
      for (let j = 0; j < product.length; j++) w[j] += scale * product[j];
    } else {
      addScaledProduct(w, l, factors.right, rows, adapter.rank, cols, adapter.scale);
    }
    return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  }

  private adapterOf(i: number): LoraAdapter {
    const adapter = this.job.inputs[i].adapter;
    if (adapter?.kind !== 'lora') throw new Error(`internal: ${this.job.name}: input ${i} has no LoRA adapter`);
    if (this.job.inputs[i].tensor.shape.length !== 2) throw new Error(`internal: ${this.job.name}: a LoRA applies to a matrix`);
    return adapter;
  }

  private factorsOf(i: number): Promise<Factors> {
    let f = this.factors.get(i);
    if (!f) {
      f = this.loadFactors(this.adapterOf(i));
      f.catch(() => undefined);
      this.factors.set(i, f);
    }
    return f;
  }

  private async loadFactors(adapter: LoraAdapter): Promise<Factors> {
    const a = await this.readMatrix(adapter, adapter.a, 0, adapter.a.shape[0] * adapter.a.shape[1]);
    if (!adapter.transposed) return { right: a };
    // ΔW = (B·A)ᵀ = Aᵀ·Bᵀ: the right factor is Bᵀ (rank × cols), from B stored [cols, rank].
    const b = await this.readMatrix(adapter, adapter.b, 0, adapter.b.shape[0] * adapter.b.shape[1]);
    const [cols, rank] = adapter.b.shape;
    const right = new Float32Array(rank * cols);
    for (let c = 0; c < cols; c++) for (let k = 0; k < rank; k++) right[k * cols + c] = b[c * rank + k];
    return { right, a };
  }

  /** Elements `[start, start + count)` of one of the adapter's tensors, in f32. */
  private async readMatrix(adapter: LoraAdapter, tensor: TensorInfo, start: number, count: number): Promise<Float32Array> {
    const bytes = await this.readRange(this.open(adapter.source, tensor.file), tensor, start, count);
    return decodeToF32(bytes, tensor.dtype as FloatDtype);
  }

  private async readRange(source: Promise<ByteSource>, tensor: TensorInfo, start: number, count: number): Promise<Uint8Array> {
    const size = dtypeSize(tensor.dtype);
    const bytes = await (await source).read(tensor.offset + start * size, count * size);
    this.onRead(bytes.length);
    return bytes;
  }
}
