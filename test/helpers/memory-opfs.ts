/**
 * An in-memory stand-in for the origin private file system, with the parts Alloy uses:
 * directory handles (get/remove/entries), file handles (getFile, createSyncAccessHandle with its
 * exclusive lock, move) and an optional quota that makes writes fail with QuotaExceededError,
 * as Chromium's do. Node tests of the shard cache and output store run against it; the e2e tests
 * run the same code against the real OPFS in Chromium.
 */

interface Quota {
  limit: number;
  used: () => number;
}

class MemoryFile {
  bytes = new Uint8Array(0);
  size = 0;
  locked = false;
  lastModified = Date.now();
  /** How many times an access handle flushed it to the (pretend) disk, and cut it to a length. */
  flushes = 0;
  truncates = 0;

  ensureCapacity(n: number): void {
    if (n <= this.bytes.byteLength) return;
    const grown = new Uint8Array(Math.max(n, this.bytes.byteLength * 2, 1024));
    grown.set(this.bytes.subarray(0, this.size));
    this.bytes = grown;
  }
}

function domError(name: string, message: string): DOMException {
  return new DOMException(message, name);
}

class MemorySyncAccessHandle {
  private closed = false;

  constructor(
    private readonly file: MemoryFile,
    private readonly quota: Quota,
  ) {}

  read(buffer: ArrayBufferView, options?: { at?: number }): number {
    this.check();
    const at = options?.at ?? 0;
    const target = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const n = Math.max(0, Math.min(target.byteLength, this.file.size - at));
    target.set(this.file.bytes.subarray(at, at + n));
    return n;
  }

  write(buffer: ArrayBufferView, options?: { at?: number }): number {
    this.check();
    const at = options?.at ?? 0;
    const source = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const end = at + source.byteLength;
    this.grow(end);
    this.file.bytes.set(source, at);
    this.file.lastModified = Date.now();
    return source.byteLength;
  }

  truncate(size: number): void {
    this.check();
    this.file.truncates++;
    if (size > this.file.size) this.grow(size);
    else {
      this.file.bytes.fill(0, size, this.file.size);
      this.file.size = size;
    }
  }

  getSize(): number {
    this.check();
    return this.file.size;
  }

  flush(): void {
    this.check();
    this.file.flushes++;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.locked = false;
  }

  private grow(end: number): void {
    if (end <= this.file.size) return;
    if (this.quota.used() + (end - this.file.size) > this.quota.limit) {
      throw domError('QuotaExceededError', 'The quota has been exceeded.');
    }
    this.file.ensureCapacity(end);
    this.file.size = end;
  }

  private check(): void {
    if (this.closed) throw domError('InvalidStateError', 'The access handle was closed.');
  }
}

class MemoryWritable {
  private data: Uint8Array;
  private size: number;
  private position = 0;
  private state: 'open' | 'closed' | 'aborted' = 'open';

  constructor(
    private readonly file: MemoryFile,
    private readonly quota: Quota,
    initial: Uint8Array,
  ) {
    this.data = initial;
    this.size = initial.byteLength;
  }

  /** Bytes written and not yet closed (they count against the quota, as the swap file does). */
  get pending(): number {
    return this.state === 'open' ? this.size : 0;
  }

  async write(chunk: Uint8Array | ArrayBuffer): Promise<void> {
    if (this.state !== 'open') throw new TypeError('The stream is closed.');
    const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
    const end = this.position + bytes.byteLength;
    if (end > this.size && this.quota.used() + (end - this.size) > this.quota.limit) {
      throw domError('QuotaExceededError', 'The quota has been exceeded.');
    }
    if (end > this.data.byteLength) {
      const grown = new Uint8Array(Math.max(end, this.data.byteLength * 2, 1024));
      grown.set(this.data.subarray(0, this.size));
      this.data = grown;
    }
    this.data.set(bytes, this.position);
    this.position = end;
    this.size = Math.max(this.size, end);
  }

  async close(): Promise<void> {
    if (this.state !== 'open') throw new TypeError('The stream is closed.');
    this.state = 'closed';
    this.file.bytes = this.data.slice(0, this.size);
    this.file.size = this.size;
    this.file.lastModified = Date.now();
  }

  async abort(): Promise<void> {
    this.state = 'aborted';
  }
}

class MemoryFileHandle {
  readonly kind = 'file';

  constructor(
    public name: string,
    public parent: MemoryDirectoryHandle,
    readonly file: MemoryFile,
    private readonly quota: Quota,
  ) {}

  async getFile(): Promise<File> {
    if (this.file.locked) throw domError('NoModificationAllowedError', 'The file is locked by an access handle.');
    return new File([this.file.bytes.slice(0, this.file.size)], this.name, { lastModified: this.file.lastModified });
  }

  async createSyncAccessHandle(): Promise<MemorySyncAccessHandle> {
    if (this.file.locked) throw domError('NoModificationAllowedError', 'Access Handles cannot be created if there is another open Access Handle.');
    this.file.locked = true;
    return new MemorySyncAccessHandle(this.file, this.quota);
  }

  /**
   * A writable stream as in the File System Access API: the data goes to a swap copy and
   * replaces the file on `close()` (Chromium writes a `.crswap` file); `abort()` drops it.
   */
  async createWritable(options?: { keepExistingData?: boolean }): Promise<MemoryWritable> {
    if (this.file.locked) throw domError('NoModificationAllowedError', 'The file is locked by an access handle.');
    return new MemoryWritable(this.file, this.quota, options?.keepExistingData ? this.file.bytes.slice(0, this.file.size) : new Uint8Array(0));
  }

  async move(target: MemoryDirectoryHandle | string, newName?: string): Promise<void> {
    if (this.file.locked) throw domError('NoModificationAllowedError', 'The file is locked.');
    const dir = typeof target === 'string' ? this.parent : target;
    const name = typeof target === 'string' ? target : (newName ?? this.name);
    if (dir.children.has(name)) throw domError('InvalidModificationError', `${name} exists`);
    this.parent.children.delete(this.name);
    dir.children.set(name, this);
    this.parent = dir;
    this.name = name;
  }

  async isSameEntry(other: unknown): Promise<boolean> {
    return other === this;
  }
}

export class MemoryDirectoryHandle {
  readonly kind = 'directory';
  readonly children = new Map<string, MemoryDirectoryHandle | MemoryFileHandle>();

  constructor(
    readonly name: string,
    private readonly quota: Quota,
  ) {}

  async getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<MemoryDirectoryHandle> {
    checkName(name);
    const found = this.children.get(name);
    if (found instanceof MemoryDirectoryHandle) return found;
    if (found) throw domError('TypeMismatchError', `${name} is a file`);
    if (!options?.create) throw domError('NotFoundError', `${name} not found`);
    const dir = new MemoryDirectoryHandle(name, this.quota);
    this.children.set(name, dir);
    return dir;
  }

  async getFileHandle(name: string, options?: { create?: boolean }): Promise<MemoryFileHandle> {
    checkName(name);
    const found = this.children.get(name);
    if (found instanceof MemoryFileHandle) return found;
    if (found) throw domError('TypeMismatchError', `${name} is a directory`);
    if (!options?.create) throw domError('NotFoundError', `${name} not found`);
    const file = new MemoryFileHandle(name, this, new MemoryFile(), this.quota);
    this.children.set(name, file);
    return file;
  }

  async removeEntry(name: string, options?: { recursive?: boolean }): Promise<void> {
    const found = this.children.get(name);
    if (!found) throw domError('NotFoundError', `${name} not found`);
    if (found instanceof MemoryDirectoryHandle) {
      if (found.children.size > 0 && !options?.recursive) throw domError('InvalidModificationError', `${name} is not empty`);
      if (found.anyLocked()) throw domError('NoModificationAllowedError', `${name} holds a locked file`);
    } else if (found.file.locked) {
      throw domError('NoModificationAllowedError', `${name} is locked`);
    }
    this.children.delete(name);
  }

  async *entries(): AsyncGenerator<[string, MemoryDirectoryHandle | MemoryFileHandle]> {
    for (const entry of [...this.children.entries()]) yield entry;
  }

  async *keys(): AsyncGenerator<string> {
    for (const key of [...this.children.keys()]) yield key;
  }

  async *values(): AsyncGenerator<MemoryDirectoryHandle | MemoryFileHandle> {
    for (const value of [...this.children.values()]) yield value;
  }

  anyLocked(): boolean {
    for (const child of this.children.values()) {
      if (child instanceof MemoryDirectoryHandle ? child.anyLocked() : child.file.locked) return true;
    }
    return false;
  }

  /** Releases every access handle's lock, as the browser does when the worker holding them dies. */
  unlockAll(): void {
    for (const child of this.children.values()) {
      if (child instanceof MemoryDirectoryHandle) child.unlockAll();
      else child.file.locked = false;
    }
  }

  /** Total bytes of the files below. */
  usage(): number {
    let total = 0;
    for (const child of this.children.values()) total += child instanceof MemoryDirectoryHandle ? child.usage() : child.file.size;
    return total;
  }
}

function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\')) {
    throw new TypeError(`Name is not allowed: ${name}`);
  }
}

/** A fresh in-memory OPFS root, typed as the DOM's. `quotaBytes` caps the total file size. */
export function memoryOpfs(quotaBytes = Infinity): {
  root: FileSystemDirectoryHandle;
  usage: () => number;
  setQuota: (bytes: number) => void;
  /** What a reload does to the worker's open access handles: their locks go (the files stay). */
  releaseLocks: () => void;
} {
  let root: MemoryDirectoryHandle | null = null;
  const quota: Quota = { limit: quotaBytes, used: () => root?.usage() ?? 0 };
  root = new MemoryDirectoryHandle('', quota);
  const r = root;
  return {
    root: r as unknown as FileSystemDirectoryHandle,
    usage: () => r.usage(),
    setQuota: (bytes) => {
      quota.limit = bytes;
    },
    releaseLocks: () => r.unlockAll(),
  };
}
