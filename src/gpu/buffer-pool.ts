/** WebGPU buffer usage flags (numeric, so no GPUBufferUsage global is needed in Node). */
export const Usage = {
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;

export type BufferKind = 'storage' | 'staging' | 'uniform';

const USAGE: Readonly<Record<BufferKind, number>> = {
  storage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST,
  staging: Usage.MAP_READ | Usage.COPY_DST,
  uniform: Usage.UNIFORM | Usage.COPY_DST,
};

/**
 * Size classes: multiples of 256 bytes up to 4 KiB, then eight classes per power of two, so a
 * buffer wastes at most 12.5% and chunks of slightly different lengths share buffers.
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes));
  if (b <= 4096) return Math.ceil(b / 256) * 256;
  const step = 2 ** Math.floor(Math.log2(b)) / 8;
  return Math.ceil(b / step) * step;
}

/**
 * Reuses GPU buffers between chunks and tracks GPU memory: `allocatedBytes` is every buffer the
 * pool created and has not destroyed (in use or free), `highWaterBytes` its maximum. Free buffers
 * are destroyed, oldest first, whenever keeping them would push the total past `budgetBytes`;
 * buffers in use are never refused (the engine sizes chunks to the budget).
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  /** Free buffers, oldest first. */
  private readonly freeOrder: GPUBuffer[] = [];
  private readonly kinds = new WeakMap<GPUBuffer, BufferKind>();
  private allocated = 0;
  private highWater = 0;
  private live = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly budgetBytes: number,
  ) {}

  get allocatedBytes(): number {
    return this.allocated;
  }
  get highWaterBytes(): number {
    return this.highWater;
  }
  /** Buffers handed out and not yet given back. */
  get liveBuffers(): number {
    return this.live;
  }

  acquire(kind: BufferKind, bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    const key = `${kind}:${size}`;
    const list = this.free.get(key);
    const reused = list?.pop();
    this.live++;
    if (reused) {
      this.freeOrder.splice(this.freeOrder.indexOf(reused), 1);
      return reused;
    }
    this.evictFor(size);
    const buffer = this.device.createBuffer({ size, usage: USAGE[kind], label });
    this.kinds.set(buffer, kind);
    this.allocated += size;
    this.highWater = Math.max(this.highWater, this.allocated);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const kind = this.kinds.get(buffer);
    if (!kind) throw new Error('internal: buffer does not belong to this pool');
    this.live--;
    const key = `${kind}:${buffer.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buffer);
    this.freeOrder.push(buffer);
    if (this.allocated > this.budgetBytes) this.evictFor(0);
  }

  /** Destroys every free buffer (buffers in use stay valid). */
  trim(): void {
    this.evictFor(Infinity);
  }

  destroyAll(): void {
    this.trim();
    this.free.clear();
  }

  private evictFor(size: number): void {
    while (this.freeOrder.length > 0 && this.allocated + size > this.budgetBytes) {
      const victim = this.freeOrder.shift()!;
      const key = `${this.kinds.get(victim)}:${victim.size}`;
      const list = this.free.get(key)!;
      list.splice(list.indexOf(victim), 1);
      this.allocated -= victim.size;
      victim.destroy();
    }
  }
}
