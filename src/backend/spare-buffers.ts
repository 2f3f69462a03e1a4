/**
 * Buffers of output bytes the engine has written and handed back (ComputeBackend.recycle), for
 * the next chunks to encode into instead of allocating: a few, the most recent first.
 */
export class SpareBuffers {
  private readonly buffers: ArrayBuffer[] = [];

  constructor(private readonly most = 4) {}

  /** Takes the buffer of `bytes` back (a detached or shared one is left alone). */
  put(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return;
    if (this.buffers.includes(buffer)) return;
    if (this.buffers.length >= this.most) this.buffers.shift();
    this.buffers.push(buffer);
  }

  /**
   * `length` bytes at the start of a spare buffer that holds them and is at most twice as large
   * (a smaller chunk does not pin a large buffer), or of a new buffer of exactly that size.
   */
  take(length: number): Uint8Array {
    for (let i = this.buffers.length - 1; i >= 0; i--) {
      const buffer = this.buffers[i];
      if (buffer.byteLength >= length && buffer.byteLength <= 2 * length) {
        this.buffers.splice(i, 1);
        return new Uint8Array(buffer, 0, length);
      }
    }
    return new Uint8Array(length);
  }
}
