import type { ByteSource } from './types';

/**
 * A ByteSource over a Blob: a File the user picked or dropped, or a disk-backed File of an OPFS
 * file (`FileSystemFileHandle.getFile()`). Reads are slices, so nothing is loaded whole.
 *
 * Each `slice().arrayBuffer()` crosses into the browser process, and small ones are slow: headless
 * Chromium reads a 337 MB file at about 200 MB/s in 1 MiB slices, 480 MB/s in 8 MiB ones and
 * 590 MB/s in 32 MiB ones. So reads smaller than a block go through `ReadAhead`: whole aligned
 * blocks, the next one fetched while the current one is used (a merge reads each file in order).
 */
export class BlobByteSource implements ByteSource {
  readonly name: string;
  private readonly blob: Blob;

  constructor(
    name: string,
    blob: Blob,
    private readonly readAhead: ReadAhead | null = sharedReadAhead,
  ) {
    this.name = name;
    this.blob = blob;
  }

  get size(): number {
    return this.blob.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`${this.name}: invalid read of ${length} bytes at ${offset}`);
    }
    if (offset + length > this.blob.size) {
      throw new Error(
        `${this.name}: cannot read bytes ${offset}..${offset + length}, the file is only ${this.blob.size} bytes: ` +
          'it is truncated; pick or download it again',
      );
    }
    if (this.readAhead && length > 0 && length < this.readAhead.blockBytes) {
      return this.readAhead.read(this, (start, end) => this.readSlice(start, end), offset, length);
    }
    return this.readSlice(offset, offset + length);
  }

  private async readSlice(start: number, end: number): Promise<Uint8Array> {
    let buffer: ArrayBuffer;
    try {
      buffer = await this.blob.slice(start, end).arrayBuffer();
    } catch (error) {
      // A File snapshot becomes unreadable when the file changes or is deleted underneath it.
      throw new Error(
        `${this.name}: the file could not be read (${(error as Error).message}); it was changed, moved or deleted ` +
          'since it was opened: pick or download it again',
        { cause: error },
      );
    }
    if (buffer.byteLength !== end - start) {
      throw new Error(`${this.name}: read ${buffer.byteLength} bytes at ${start} instead of ${end - start}`);
    }
    return new Uint8Array(buffer);
  }
}

/**
 * Aligned blocks of the sources that read through it, at most `maxBlocks` held at once over all
 * of them (least recently used dropped first), so its memory is bounded however many files are
 * open. The next block is fetched ahead only into free room (and is the first to go when a block
 * is needed now), and a source that would need a block while every block belongs to another
 * source reads directly: many inputs read side by side never
 * evict each other's blocks before use. A read returns a copy, never a view of a block (the
 * engine may transfer what it gets).
 */
export class ReadAhead {
  /** Held blocks, least recently used first. */
  private readonly held: { readonly source: object; readonly index: number; readonly bytes: Promise<Uint8Array>; used: boolean }[] = [];

  constructor(
    readonly blockBytes: number,
    readonly maxBlocks: number,
  ) {}

  async read(source: ByteSource, fetch: (start: number, end: number) => Promise<Uint8Array>, offset: number, length: number): Promise<Uint8Array> {
    const first = Math.floor(offset / this.blockBytes);
    const last = Math.floor((offset + length - 1) / this.blockBytes);
    const crowded = !this.held.some((b) => b.source === source) && new Set(this.held.map((b) => b.source)).size >= this.maxBlocks;
    if (crowded || last - first + 1 > this.maxBlocks) return fetch(offset, offset + length);
    const wanted: Promise<Uint8Array>[] = [];
    for (let index = first; index <= last; index++) wanted.push(this.block(source, fetch, index, true));
    if ((last + 1) * this.blockBytes < source.size) void this.block(source, fetch, last + 1, false)?.catch(() => undefined);
    const out = new Uint8Array(length);
    for (let i = 0; i < wanted.length; i++) {
      const block = await wanted[i];
      const blockStart = (first + i) * this.blockBytes;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + length, blockStart + block.byteLength);
      out.set(block.subarray(from - blockStart, to - blockStart), from - offset);
    }
    return out;
  }

  /** The block, fetched if needed; `demand` evicts for room, a read-ahead (false) only takes free room. */
  private block(source: ByteSource, fetch: (start: number, end: number) => Promise<Uint8Array>, index: number, demand: true): Promise<Uint8Array>;
  private block(source: ByteSource, fetch: (start: number, end: number) => Promise<Uint8Array>, index: number, demand: false): Promise<Uint8Array> | null;
  private block(source: ByteSource, fetch: (start: number, end: number) => Promise<Uint8Array>, index: number, demand: boolean): Promise<Uint8Array> | null {
    const at = this.held.findIndex((b) => b.source === source && b.index === index);
    if (at >= 0) {
      const [entry] = this.held.splice(at, 1);
      entry.used ||= demand;
      this.held.push(entry);
      return entry.bytes;
    }
    if (!demand && this.held.length >= this.maxBlocks) return null;
    while (this.held.length >= this.maxBlocks) {
      // Room for a block that is needed now: a block read ahead and not used yet goes first.
      const unused = this.held.findIndex((b) => !b.used);
      this.held.splice(unused >= 0 ? unused : 0, 1);
    }
    const start = index * this.blockBytes;
    const entry = { source, index, bytes: fetch(start, Math.min(source.size, start + this.blockBytes)), used: demand };
    this.held.push(entry);
    // A failed block is forgotten, so that a later read tries again.
    entry.bytes.catch(() => {
      const stale = this.held.indexOf(entry);
      if (stale >= 0) this.held.splice(stale, 1);
    });
    return entry.bytes;
  }
}

/** Every Blob source's read-ahead: 8 blocks of 16 MiB (128 MiB at most, two per file for four files). */
const sharedReadAhead = new ReadAhead(16 * 2 ** 20, 8);
