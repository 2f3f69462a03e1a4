import type { ByteSink, ByteSource, ModelFolder } from './types';

/**
 * In-memory sources and folders: for bytes already in memory (small uploads, generated
 * fixtures) and for tests of everything that reads models without touching a file system.
 */

export class MemoryByteSource implements ByteSource {
  readonly name: string;
  private readonly bytes: Uint8Array;

  constructor(name: string, bytes: Uint8Array) {
    this.name = name;
    this.bytes = bytes;
  }

  get size(): number {
    return this.bytes.byteLength;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.bytes.byteLength) {
      throw new RangeError(
        `${this.name}: cannot read bytes ${offset}..${offset + length} of a ${this.bytes.byteLength}-byte file`,
      );
    }
    // A copy, so callers may keep or modify what they get, as with any other source.
    return this.bytes.slice(offset, offset + length);
  }
}

/** A model folder whose files are given as bytes or text. */
export function memoryModelFolder(id: string, files: Readonly<Record<string, Uint8Array | string>>): ModelFolder {
  const bytesOf = (file: string): Uint8Array | null => {
    if (!Object.prototype.hasOwnProperty.call(files, file)) return null;
    const content = files[file];
    return typeof content === 'string' ? new TextEncoder().encode(content) : content;
  };
  return {
    id,
    async listFiles() {
      return Object.keys(files).sort();
    },
    async open(file) {
      const bytes = bytesOf(file);
      return bytes === null ? null : new MemoryByteSource(`${id}/${file}`, bytes);
    },
    async readText(file) {
      const bytes = bytesOf(file);
      return bytes === null ? null : new TextDecoder().decode(bytes);
    },
  };
}

/** A sink that keeps what is written; `bytes()` concatenates it. */
export class MemorySink implements ByteSink {
  readonly chunks: Uint8Array[] = [];
  closed = false;

  async write(bytes: Uint8Array): Promise<void> {
    if (this.closed) throw new Error('write to a closed sink');
    // Copy: the writer reuses its buffer once the promise resolves (ByteSink contract).
    this.chunks.push(bytes.slice());
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  bytes(): Uint8Array {
    const total = this.chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
    const result = new Uint8Array(total);
    let offset = 0;
    for (const chunk of this.chunks) {
      result.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return result;
  }
}
