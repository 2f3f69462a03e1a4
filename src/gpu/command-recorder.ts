import type { BufferPool } from './buffer-pool';
import type { Kernel } from './kernels';
import { QueueActivity } from './queue-activity';

/** A buffer range bound at `binding` (size in bytes, a multiple of 4). */
export interface Binding {
  readonly binding: number;
  readonly buffer: GPUBuffer;
  readonly size: number;
}

/** Writes one dispatch's uniform parameters (a 256-byte slot) by 4-byte word index. */
export class ParamSlot {
  constructor(
    private readonly u32s: Uint32Array,
    private readonly f32s: Float32Array,
    private readonly base: number,
  ) {}
  u32(word: number, value: number): this {
    this.u32s[this.base + word] = value >>> 0;
    return this;
  }
  f32(word: number, value: number): this {
    this.f32s[this.base + word] = value;
    return this;
  }
}

const SLOT_BYTES = 256; // minUniformBufferOffsetAlignment's default, the largest it may be
const SLOTS = 256;
const SLOT_WORDS = SLOT_BYTES / 4;

/** A region of a buffer to read back to the host. */
export interface ReadRegion {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

/**
 * Records dispatches, copies and clears into one command encoder and submits them together.
 * Dispatch parameters go to slots of a CPU-side arena that is written to a uniform buffer just
 * before each submit (queue order makes reusing that buffer for the next batch safe). Grids are
 * 2-D when a dispatch needs more workgroups than one dimension allows.
 */
export class CommandRecorder {
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena = new ArrayBuffer(SLOT_BYTES * SLOTS);
  private readonly u32s = new Uint32Array(this.arena);
  private readonly f32s = new Float32Array(this.arena);
  private slots = 0;
  private readonly uniform: GPUBuffer;
  /** Commands recorded since the last submit. */
  private pending = 0;
  readonly activity: QueueActivity;

  constructor(
    private readonly device: GPUDevice,
    private readonly pool: BufferPool,
    private readonly maxGroupsPerDimension: number,
  ) {
    this.uniform = pool.acquire('uniform', SLOT_BYTES * SLOTS, 'alloy params');
    this.activity = new QueueActivity(device.queue);
  }

  get hasPending(): boolean {
    return this.pending > 0;
  }

  dispatch(kernel: Kernel, bindings: readonly Binding[], groups: number, params?: (p: ParamSlot) => void): void {
    if (groups <= 0) return;
    if (this.slots === SLOTS) this.flush();
    const slot = this.slots++;
    this.u32s.fill(0, slot * SLOT_WORDS, (slot + 1) * SLOT_WORDS);
    params?.(new ParamSlot(this.u32s, this.f32s, slot * SLOT_WORDS));
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: this.uniform, offset: slot * SLOT_BYTES, size: SLOT_BYTES } },
      ...bindings.map((b) => ({ binding: b.binding, resource: { buffer: b.buffer, offset: 0, size: b.size } })),
    ];
    const bindGroup = this.device.createBindGroup({ layout: kernel.layout, entries });
    const pass = this.computePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    const x = Math.min(groups, this.maxGroupsPerDimension);
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    this.pending++;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.commands().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.pending++;
  }

  clear(buffer: GPUBuffer, offset: number, size: number): void {
    this.commands().clearBuffer(buffer, offset, size);
    this.pending++;
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.pass = null;
    if (this.slots > 0) this.device.queue.writeBuffer(this.uniform, 0, new Uint8Array(this.arena, 0, this.slots * SLOT_BYTES));
    this.device.queue.submit([this.encoder.finish()]);
    this.activity.submitted();
    this.encoder = null;
    this.slots = 0;
    this.pending = 0;
  }

  /**
   * Copies the regions into one staging buffer, submits, maps it and returns a copy of each
   * region's bytes. `guard` wraps the wait (device loss, timeouts).
   */
  async read(
    regions: readonly ReadRegion[],
    guard: <T>(p: Promise<T>) => Promise<T>,
    onSubmitted: () => void = () => undefined,
  ): Promise<Uint8Array[]> {
    const padded = regions.map((r) => Math.ceil(r.size / 4) * 4);
    const total = padded.reduce((a, b) => a + b, 0);
    if (total === 0) return regions.map(() => new Uint8Array(0));
    const staging = this.pool.acquire('staging', total, 'alloy readback');
    try {
      let offset = 0;
      regions.forEach((r, i) => {
        if (padded[i] > 0) this.copy(r.buffer, r.offset, staging, offset, padded[i]);
        offset += padded[i];
      });
      this.flush();
      onSubmitted();
      await guard(staging.mapAsync(1 /* GPUMapMode.READ */, 0, total));
      const mapped = staging.getMappedRange(0, total);
      offset = 0;
      const out = regions.map((r, i) => {
        const bytes = new Uint8Array(mapped, offset, r.size).slice();
        offset += padded[i];
        return bytes;
      });
      staging.unmap();
      return out;
    } finally {
      if (staging.mapState === 'mapped') staging.unmap();
      this.pool.release(staging);
    }
  }

  dispose(): void {
    this.encoder = null;
    this.pass = null;
    this.pool.release(this.uniform);
  }

  private commands(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    return this.pass;
  }
}
