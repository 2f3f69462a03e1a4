import { DTYPE_SIZES, isSafetensorsDtype } from './dtype';
import type { ByteSink, SafetensorsDtype } from './types';

/**
 * Streaming safetensors writer. The plan knows every output tensor's name, dtype and shape
 * before any data exists, so the header is written first and the data follows front to back:
 * no seeking, no second pass, which is what OPFS, File System Access and pipes allow.
 */

/** One tensor of a file to be written, in data order. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** What mergekit writes (`{"format": "pt"}`), and what transformers expects to find. */
export const DEFAULT_METADATA: Readonly<Record<string, string>> = { format: 'pt' };

/**
 * The 8-byte little-endian length followed by the JSON header. Tensors get contiguous
 * `data_offsets` in the given order; `__metadata__` comes first (omitted when empty); the JSON
 * is padded with spaces so that data starts at a multiple of 8, as the Rust writer does.
 */
export function encodeSafetensorsHeader(
  entries: readonly SafetensorsEntry[],
  metadata: Readonly<Record<string, string>> = DEFAULT_METADATA,
): Uint8Array {
  const header: Record<string, unknown> = {};
  const define = (key: string, value: unknown): void => {
    // defineProperty, not assignment: a tensor named "__proto__" must stay an ordinary key.
    Object.defineProperty(header, key, { value, enumerable: true, writable: true, configurable: true });
  };
  if (Object.keys(metadata).length > 0) define('__metadata__', { ...metadata });
  let offset = 0;
  for (const entry of entries) {
    checkEntry(entry);
    if (Object.prototype.hasOwnProperty.call(header, entry.name)) {
      throw new Error(
        entry.name === '__metadata__'
          ? 'a tensor cannot be named "__metadata__" (the name is reserved by safetensors)'
          : `tensor "${entry.name}" is listed twice`,
      );
    }
    define(entry.name, {
      dtype: entry.dtype,
      shape: [...entry.shape],
      data_offsets: [offset, offset + entry.byteLength],
    });
    offset += entry.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return bytes;
}

function checkEntry(entry: SafetensorsEntry): void {
  if (!isSafetensorsDtype(entry.dtype)) {
    throw new Error(`tensor "${entry.name}": unknown dtype ${JSON.stringify(entry.dtype)}`);
  }
  if (!entry.shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw new Error(`tensor "${entry.name}": shape ${JSON.stringify(entry.shape)} is not a list of non-negative integers`);
  }
  const expected = entry.shape.reduce((product, dim) => product * dim, 1) * DTYPE_SIZES[entry.dtype];
  if (entry.byteLength !== expected) {
    throw new Error(
      `tensor "${entry.name}": byteLength ${entry.byteLength} does not match shape ` +
        `${JSON.stringify(entry.shape)} of ${entry.dtype} (${expected} bytes)`,
    );
  }
}

/** Small writes are gathered into blocks of this size before they reach the sink. */
export const WRITE_BLOCK_BYTES = 8 * 1024 * 1024;

/**
 * Writes one safetensors file to a sink: `begin()`, then every tensor's bytes in entry order
 * through `write()` (any number of calls per tensor, none crossing into the next tensor), then
 * `finish()`. It refuses a byte too many or too few, so a buggy producer cannot leave a file
 * whose header disagrees with its data. Await each call before the next.
 *
 * Writes go behind: `write()` returns once its bytes are in a block or handed to the sink, while
 * the sink may still be writing them (one sink write at a time, two blocks), so a producer computes
 * the next bytes while the previous ones reach the disk. A caller therefore never changes bytes it
 * has passed to `write()`. A failed sink write is thrown by the next call; `finish` returns only
 * once every byte is in the sink, and `handOffAtTensorBoundary` says when they are.
 */
export class SafetensorsStreamWriter {
  private readonly entries: readonly SafetensorsEntry[];
  private readonly header: Uint8Array;
  /** The block being filled, and the other one (which the sink may still be writing). */
  private block: Uint8Array;
  private spare: Uint8Array | null = null;
  private blockUsed = 0;
  /** The sink write in progress, if any. */
  private writing: Promise<void> | null = null;
  private state: 'new' | 'writing' | 'finished' | 'failed' = 'new';
  /** Index of the tensor now receiving bytes, and how many it has received. */
  private current = 0;
  private currentWritten = 0;
  private readonly sink: ByteSink;

  constructor(
    sink: ByteSink,
    entries: readonly SafetensorsEntry[],
    metadata?: Readonly<Record<string, string>>,
    blockBytes: number = WRITE_BLOCK_BYTES,
  ) {
    this.sink = sink;
    this.entries = entries;
    this.header = encodeSafetensorsHeader(entries, metadata);
    // A small file never needs a full block.
    this.block = new Uint8Array(Math.max(1, Math.min(blockBytes, this.fileSize)));
  }

  /** Total file size: header plus data. */
  get fileSize(): number {
    return this.header.byteLength + this.entries.reduce((sum, entry) => sum + entry.byteLength, 0);
  }

  /** Name of the tensor the next `write` belongs to, or null when all data has been written. */
  get currentTensor(): string | null {
    this.skipEmptyTensors();
    return this.current < this.entries.length ? this.entries[this.current].name : null;
  }

  async begin(): Promise<void> {
    if (this.state !== 'new') throw new Error('SafetensorsStreamWriter.begin() called twice');
    this.state = 'writing';
    await this.append(this.header);
  }

  /** Bytes of the file up to the data of tensor `index` (the header and the tensors before it). */
  offsetOfTensor(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index > this.entries.length) throw new RangeError(`no tensor ${index} in a file of ${this.entries.length}`);
    let offset = this.header.byteLength;
    for (let i = 0; i < index; i++) offset += this.entries[i].byteLength;
    return offset;
  }

  /**
   * Continues a file whose header and first `tensorsDone` tensors are already written (a merge
   * resumed after a reload): `sink` must append at `offsetOfTensor(tensorsDone)`.
   */
  resumeAfter(tensorsDone: number): void {
    if (this.state !== 'new') throw new Error('SafetensorsStreamWriter.resumeAfter() on a file already begun');
    this.offsetOfTensor(tensorsDone);
    this.state = 'writing';
    this.current = tensorsDone;
    this.currentWritten = 0;
  }

  /**
   * Hands every buffered byte to the sink, at a tensor boundary, without waiting for the sink to
   * write them: `written` resolves once the file holds the header and every tensor before
   * `currentTensor` (a resume point; later bytes may follow them), and rejects when that write
   * fails (which the next call also throws). Writing goes on meanwhile.
   */
  async handOffAtTensorBoundary(): Promise<{ readonly written: Promise<void> }> {
    if (this.state !== 'writing') throw new Error('SafetensorsStreamWriter.handOffAtTensorBoundary() outside writing');
    if (this.currentWritten !== 0) throw new Error('internal: handOffAtTensorBoundary() inside a tensor');
    await this.sendBlock();
    // Sink writes are one at a time, in order: the last one ends after every one before it.
    return { written: this.writing ?? Promise.resolve() };
  }

  /**
   * Appends bytes of the current tensor. When `tensor` is given it must be the current tensor's
   * name: a cheap guard against producers that lose track of the order. A block's worth of bytes
   * goes to the sink as it is, and the sink may still be writing it when this resolves:
   * `released` is called once the writer no longer holds `bytes` (never after a failure).
   */
  async write(bytes: Uint8Array, tensor?: string, released?: () => void): Promise<void> {
    if (this.state !== 'writing') {
      const when = { new: 'before begin()', finished: 'after finish()', failed: 'after a failed write' }[this.state];
      throw new Error(`SafetensorsStreamWriter.write() ${when}`);
    }
    const expected = this.currentTensor;
    if (tensor !== undefined && tensor !== expected) {
      this.state = 'failed';
      throw new Error(
        expected === null
          ? `got bytes for tensor "${tensor}" but every tensor of the file has been written`
          : `got bytes for tensor "${tensor}" but the file expects tensor "${expected}" next`,
      );
    }
    if (bytes.byteLength === 0) {
      released?.();
      return;
    }
    if (expected === null) {
      this.state = 'failed';
      throw new Error(`${bytes.byteLength} bytes written after the last tensor: the file is already complete`);
    }
    const entry = this.entries[this.current];
    const remaining = entry.byteLength - this.currentWritten;
    if (bytes.byteLength > remaining) {
      this.state = 'failed';
      throw new Error(
        `tensor "${entry.name}" is ${entry.byteLength} bytes but received ` +
          `${this.currentWritten + bytes.byteLength}: its data would spill into the next tensor`,
      );
    }
    this.currentWritten += bytes.byteLength;
    if (this.currentWritten === entry.byteLength) {
      this.current++;
      this.currentWritten = 0;
    }
    await this.append(bytes, released);
  }

  /** Flushes and closes the sink; throws (after closing it) when a tensor is short of bytes. */
  async finish(): Promise<void> {
    if (this.state === 'finished') throw new Error('SafetensorsStreamWriter.finish() called twice');
    if (this.state === 'new') throw new Error('SafetensorsStreamWriter.finish() before begin()');
    const missing = this.currentTensor;
    if (this.state === 'failed' || missing !== null) {
      await this.abandon();
      this.state = 'failed';
      await this.sink.close();
      if (missing === null) throw new Error('the file was abandoned after a failed write');
      const entry = this.entries[this.current];
      throw new Error(
        `the file is incomplete: tensor "${missing}" received ${this.currentWritten} of its ${entry.byteLength} bytes` +
          (this.current + 1 < this.entries.length ? `, and ${this.entries.length - this.current - 1} tensors after it none` : ''),
      );
    }
    this.state = 'finished';
    await this.flush();
    await this.sink.close();
  }

  /** Stops writing after a failure elsewhere: waits for the sink write in progress, whatever its outcome. */
  async abandon(): Promise<void> {
    if (this.state === 'writing') this.state = 'failed';
    await this.writing?.catch(() => undefined);
    this.writing = null;
  }

  private skipEmptyTensors(): void {
    while (this.current < this.entries.length && this.entries[this.current].byteLength === 0) this.current++;
  }

  /** Copies into the block, handing full blocks to the sink; large writes, and all to a sink that gathers, bypass the copy. */
  private async append(bytes: Uint8Array, released?: () => void): Promise<void> {
    const capacity = this.block.byteLength;
    let offset = 0;
    while (offset < bytes.byteLength) {
      if (this.blockUsed === 0 && (this.sink.gathersWrites === true || bytes.byteLength - offset >= capacity)) {
        // Nothing buffered and at least a block to write, or a sink that gathers: skip the copy.
        await this.send(bytes.subarray(offset));
        // The sink holds the bytes until that write ends.
        if (released) this.writing?.then(released, () => undefined);
        return;
      }
      const take = Math.min(capacity - this.blockUsed, bytes.byteLength - offset);
      this.block.set(bytes.subarray(offset, offset + take), this.blockUsed);
      this.blockUsed += take;
      offset += take;
      if (this.blockUsed === capacity) await this.sendBlock();
    }
    released?.();
  }

  /** Every byte into the sink: the block, then the wait for the last sink write. */
  private async flush(): Promise<void> {
    await this.sendBlock();
    await this.settle();
  }

  /** Hands the filled part of the block to the sink and goes on filling the other block. */
  private async sendBlock(): Promise<void> {
    if (this.blockUsed === 0) return;
    const full = this.block;
    // send() first waits for the write of the other block, which is then free to fill.
    await this.send(full.subarray(0, this.blockUsed));
    this.block = this.spare ?? new Uint8Array(full.byteLength);
    this.spare = full;
    this.blockUsed = 0;
  }

  /** Starts a sink write once the previous one is done, without waiting for it (`writing`). */
  private async send(bytes: Uint8Array): Promise<void> {
    await this.settle();
    const writing = this.sink.write(bytes);
    // Thrown by the next settle(); until then it is not an unhandled rejection.
    writing.catch(() => undefined);
    this.writing = writing;
  }

  /** Waits for the sink write in progress; its failure fails the writer. */
  private async settle(): Promise<void> {
    const writing = this.writing;
    if (writing === null) return;
    try {
      await writing;
    } catch (error) {
      this.state = 'failed';
      throw error;
    } finally {
      if (this.writing === writing) this.writing = null;
    }
  }
}
