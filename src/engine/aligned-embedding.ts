import type { TensorJob, VocabularyAlignment } from '../plan/types';
import { decodeToF32, dtypeSize } from '../storage';
import type { ByteSource, FloatDtype } from '../storage/types';

/** Rows read at once when gathering scattered rows: a gap this small is read rather than skipped. */
const GAP_BYTES = 64 * 1024;
/** Largest single read when gathering rows. */
const SPAN_BYTES = 8 * 1024 * 1024;

/** First index of `sorted` whose value is ≥ `value`. */
function lowerBound(sorted: Int32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Rows of one input's aligned matrix, as the engine hands them to a backend. */
export interface AlignedRows {
  readonly bytes: Uint8Array;
  /** The input's own dtype when every row is its own; F32 when any row is substituted or padding. */
  readonly dtype: FloatDtype;
}

/**
 * Reads the inputs of an embedding job aligned to a new vocabulary (docs/tokenizers.md §3): rows
 * `[r0, r1)` of input i's aligned matrix, assembled from the plan's row map. A token row the
 * input has is its own row; a default row is the mean of other inputs' rows and a padding row the
 * mean of the input's aligned token rows (computed once per input by one extra pass), both in f32.
 * mergekit builds these rows in the merge dtype, and Alloy merges in f32, so a range holding one
 * of them is handed over in f32: rounding it to the input's storage dtype would lose precision
 * (a bf16 base taking an f16 model's row, a mean of two rows). A range of only own rows keeps the
 * input's bytes as stored. Only the rows of the chunk being read and one mean row per input are
 * held, never a whole matrix.
 */
export class AlignedEmbeddingReader {
  private readonly cols: number;
  private readonly alignment: VocabularyAlignment;
  private readonly paddingRows = new Map<number, Promise<Float32Array>>();
  /** Default rows of the last two row ranges (the inputs of one chunk share them). */
  private readonly defaultsCache: { key: string; rows: Promise<Map<number, Float32Array>> }[] = [];

  constructor(
    private readonly job: TensorJob,
    private readonly sources: readonly Promise<ByteSource>[],
    private readonly onRead: (bytes: number) => void,
    /** Bytes one block of the padding-mean pass may use. */
    private readonly blockBytes: number,
  ) {
    if (!job.alignment) throw new Error(`internal: ${job.name} has no vocabulary alignment`);
    this.alignment = job.alignment;
    this.cols = job.shape[job.shape.length - 1];
    for (const input of job.inputs) {
      if (input.tensor.shape.length !== 2 || input.tensor.shape[1] !== this.cols) {
        throw new Error(`internal: ${job.name}: input ${input.model} [${input.tensor.shape.join(', ')}] cannot be aligned to width ${this.cols}`);
      }
    }
  }

  /** Rows `[r0, r1)` of input `i`'s aligned matrix. */
  async read(i: number, r0: number, r1: number): Promise<AlignedRows> {
    const input = this.job.inputs[i];
    const rowMap = input.rowMap;
    if (!rowMap) throw new Error(`internal: ${this.job.name}: input ${input.model} has no row map`);
    const dtype = input.tensor.dtype as FloatDtype;
    const tokenEnd = Math.min(r1, this.alignment.tokens);

    const ownRows: number[] = [];
    const ownAt: number[] = [];
    let defaults = false;
    for (let r = r0; r < tokenEnd; r++) {
      if (rowMap[r] >= 0) {
        ownRows.push(rowMap[r]);
        ownAt.push(r - r0);
      } else defaults = true;
    }
    const padding = r1 > this.alignment.tokens;

    if (!defaults && !padding) {
      const rowBytes = this.cols * dtypeSize(dtype);
      const out = new Uint8Array((r1 - r0) * rowBytes);
      await this.gatherRows(i, ownRows, ownAt, (at, bytes) => out.set(bytes, at * rowBytes));
      return { bytes: out, dtype };
    }

    const cols = this.cols;
    const values = new Float32Array((r1 - r0) * cols);
    await this.gatherRows(i, ownRows, ownAt, (at, bytes) => decodeToF32(bytes, dtype, values.subarray(at * cols, (at + 1) * cols)));
    if (defaults) {
      const rows = await this.defaultRows(r0, tokenEnd);
      for (let r = r0; r < tokenEnd; r++) {
        if (rowMap[r] >= 0) continue;
        // A default without terms (a token no model has) stays zero.
        const row = rows.get(r);
        if (row) values.set(row, (r - r0) * cols);
      }
    }
    if (padding) {
      const row = await this.paddingRow(i);
      for (let r = Math.max(r0, this.alignment.tokens); r < r1; r++) values.set(row, (r - r0) * cols);
    }
    // Little-endian like every byte the storage layer decodes (it asserts so).
    return { bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength), dtype: 'F32' };
  }

  /**
   * Reads rows `rows[k]` of input i's own tensor and hands each to `visit(at[k], bytes)`, merging
   * nearby rows into one read.
   */
  private async gatherRows(i: number, rows: readonly number[], at: readonly number[], visit: (at: number, bytes: Uint8Array) => void): Promise<void> {
    if (rows.length === 0) return;
    const tensor = this.job.inputs[i].tensor;
    const rowBytes = this.cols * dtypeSize(tensor.dtype);
    let order = rows.map((_, k) => k);
    if (rows.some((r, k) => k > 0 && r < rows[k - 1])) order = order.sort((a, b) => rows[a] - rows[b]);
    const maxGap = Math.floor(GAP_BYTES / rowBytes);
    const maxSpan = Math.max(1, Math.floor(SPAN_BYTES / rowBytes));
    const source = await this.sources[i];
    let k = 0;
    while (k < order.length) {
      const first = rows[order[k]];
      let end = k + 1;
      while (end < order.length) {
        const next = rows[order[end]];
        if (next - rows[order[end - 1]] - 1 > maxGap || next - first + 1 > maxSpan) break;
        end++;
      }
      const last = rows[order[end - 1]];
      const length = (last - first + 1) * rowBytes;
      const bytes = await source.read(tensor.offset + first * rowBytes, length);
      this.onRead(length);
      for (let j = k; j < end; j++) {
        const offset = (rows[order[j]] - first) * rowBytes;
        visit(at[order[j]], bytes.subarray(offset, offset + rowBytes));
      }
      k = end;
    }
  }

  /** The default rows among output rows `[r0, r1)`, in f32 (the mean of their terms; zeros when none). */
  private defaultRows(r0: number, r1: number): Promise<Map<number, Float32Array>> {
    const key = `${r0}:${r1}`;
    const cached = this.defaultsCache.find((c) => c.key === key);
    if (cached) return cached.rows;
    const rows = this.computeDefaultRows(r0, r1);
    rows.catch(() => undefined);
    this.defaultsCache.push({ key, rows });
    // The chunk being read and the one prefetched; anything older is recomputed if asked again.
    if (this.defaultsCache.length > 2) this.defaultsCache.shift();
    return rows;
  }

  private async computeDefaultRows(r0: number, r1: number): Promise<Map<number, Float32Array>> {
    const d = this.alignment.defaults;
    const k0 = lowerBound(d.rows, r0);
    const k1 = lowerBound(d.rows, r1);
    const result = new Map<number, Float32Array>();
    if (k0 === k1) return result;
    // Every term row needed, per input, read once.
    const needed = this.job.inputs.map(() => new Set<number>());
    for (let j = d.start[k0]; j < d.start[k1]; j++) needed[d.input[j]].add(d.row[j]);
    const values = await Promise.all(
      needed.map(async (set, i) => {
        const got = new Map<number, Float32Array>();
        const rows = [...set];
        const dtype = this.job.inputs[i].tensor.dtype as FloatDtype;
        await this.gatherRows(i, rows, rows, (row, bytes) => got.set(row, decodeToF32(bytes, dtype)));
        return got;
      }),
    );
    for (let k = k0; k < k1; k++) {
      const count = d.start[k + 1] - d.start[k];
      if (count === 0) continue;
      if (count === 1) {
        result.set(d.rows[k], values[d.input[d.start[k]]].get(d.row[d.start[k]])!);
        continue;
      }
      // As mergekit: a running sum in the compute dtype (f32 here), then one division.
      const sum = new Float32Array(this.cols);
      for (let j = d.start[k]; j < d.start[k + 1]; j++) {
        const row = values[d.input[j]].get(d.row[j])!;
        for (let c = 0; c < this.cols; c++) sum[c] += row[c];
      }
      for (let c = 0; c < this.cols; c++) sum[c] /= count;
      result.set(d.rows[k], sum);
    }
    return result;
  }

  /** Input i's padding row: the mean of its aligned token rows (one pass over them), in f32. */
  private paddingRow(i: number): Promise<Float32Array> {
    let row = this.paddingRows.get(i);
    if (!row) {
      row = this.computePaddingRow(i);
      row.catch(() => undefined);
      this.paddingRows.set(i, row);
    }
    return row;
  }

  private async computePaddingRow(i: number): Promise<Float32Array> {
    const tokens = this.alignment.tokens;
    const sum = new Float64Array(this.cols);
    // Each block holds its bytes (f32 at most), their f32 decoding and its default rows.
    const perRow = this.cols * 12;
    const block = Math.max(1, Math.floor(this.blockBytes / perRow));
    let values = new Float32Array(0);
    for (let a = 0; a < tokens; a += block) {
      const b = Math.min(tokens, a + block);
      const rows = await this.read(i, a, b);
      if (values.length !== (b - a) * this.cols) values = new Float32Array((b - a) * this.cols);
      decodeToF32(rows.bytes, rows.dtype, values);
      for (let r = 0; r < b - a; r++) {
        const base = r * this.cols;
        for (let c = 0; c < this.cols; c++) sum[c] += values[base + c];
      }
    }
    const mean = new Float32Array(this.cols);
    if (tokens > 0) for (let c = 0; c < this.cols; c++) mean[c] = sum[c] / tokens;
    return mean;
  }
}
