/**
 * Recycles the buffers chunk inputs are read into. A fresh `new Uint8Array(n)` per read costs
 * page faults on zeroed pages, an munmap and garbage collection every chunk (a 337 MB file read
 * three times in 8 MiB pieces: 450 ms into fresh buffers, 210 ms into one reused buffer); reading
 * into the buffer of a chunk already finished costs none of that.
 *
 * `take(n)` hands out a view of exactly n bytes at the start of a buffer that is the caller's
 * alone until it gives it back with `release` (any view of it, even one that travelled to a worker
 * and back: the whole ArrayBuffer is what is recycled). At most `maxFreeBytes` and `MAX_FREE`
 * buffers wait to be reused; beyond that the smallest are dropped (to the garbage collector), so
 * the recycler never holds more than a few chunks' worth of memory that nothing uses.
 */
export class ReadBuffers {
  /** Most free buffers kept, whatever their size (tiny tensors' reads would otherwise pile up). */
  static readonly MAX_FREE = 64;
  /** Free buffers, smallest first. */
  private readonly free: ArrayBuffer[] = [];
  private freeBytes = 0;
  private reused = 0;
  private allocated = 0;

  constructor(readonly maxFreeBytes: number) {}

  /** Bytes waiting in the free list. */
  get idleBytes(): number {
    return this.freeBytes;
  }

  /** How many takes were served by a released buffer, and how many allocated a new one. */
  get stats(): { readonly reused: number; readonly allocated: number } {
    return { reused: this.reused, allocated: this.allocated };
  }

  /** A buffer of exactly `length` bytes (a view of a free buffer when one fits, its contents undefined). */
  take(length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`internal: cannot take a read buffer of ${length} bytes`);
    // The smallest free buffer that holds `length`, unless it would waste more than half of itself.
    for (let k = 0; k < this.free.length; k++) {
      const buffer = this.free[k];
      if (buffer.byteLength < length) continue;
      if (buffer.byteLength > 2 * length + MIN_CAPACITY) break;
      this.free.splice(k, 1);
      this.freeBytes -= buffer.byteLength;
      this.reused++;
      return new Uint8Array(buffer, 0, length);
    }
    this.allocated++;
    return new Uint8Array(new ArrayBuffer(capacityFor(length)), 0, length);
  }

  /**
   * Gives back the buffer `bytes` views (all of it). Only buffers from `take` may be given back,
   * each once per take, and only when nothing reads or writes them any more. A detached buffer
   * (transferred to a worker that kept it) is ignored.
   */
  release(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return;
    if (buffer.byteLength > this.maxFreeBytes) return;
    let at = this.free.length;
    for (let k = 0; k < this.free.length; k++) {
      if (this.free[k] === buffer) throw new Error('internal: a read buffer was released twice');
      if (at === this.free.length && this.free[k].byteLength >= buffer.byteLength) at = k;
    }
    this.free.splice(at, 0, buffer);
    this.freeBytes += buffer.byteLength;
    while (this.freeBytes > this.maxFreeBytes || this.free.length > ReadBuffers.MAX_FREE) {
      this.freeBytes -= this.free.shift()!.byteLength;
    }
  }

  /** Drops every free buffer. */
  clear(): void {
    this.free.length = 0;
    this.freeBytes = 0;
  }
}

/** Capacities are rounded up (to an eighth of a power of two) so that chunks of nearby sizes share buffers. */
const MIN_CAPACITY = 4096;

function capacityFor(length: number): number {
  if (length <= MIN_CAPACITY) return MIN_CAPACITY;
  const step = 2 ** Math.max(12, Math.floor(Math.log2(length)) - 3);
  return Math.ceil(length / step) * step;
}
