/**
 * Allocation of WebAssembly linear memory for the SIMD backend's vectors: first fit over a free
 * list sorted by address, merged with its neighbours on free, growing the memory when nothing
 * fits. Memory never shrinks, so a merge's steady state reuses the same bytes chunk after chunk.
 * Blocks are 64-byte multiples at 64-byte alignment: kernels run whole SIMD groups past a
 * vector's end without touching its neighbour.
 */
export const BLOCK_ALIGN = 64;
const PAGE = 65536;
const MAX_BYTES = 65536 * PAGE; // wasm32: 4 GiB

interface FreeBlock {
  ptr: number;
  size: number;
}

export class WasmHeap {
  private readonly free: FreeBlock[] = [];
  private top: number;

  constructor(
    private readonly memory: WebAssembly.Memory,
    base: number,
  ) {
    this.top = roundUp(base, BLOCK_ALIGN);
  }

  /** A block of at least `bytes` bytes (its size, a multiple of 64, is `blockSize(bytes)`). */
  alloc(bytes: number): number {
    const size = blockSize(bytes);
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i];
      if (block.size < size) continue;
      const ptr = block.ptr;
      if (block.size === size) this.free.splice(i, 1);
      else {
        block.ptr += size;
        block.size -= size;
      }
      return ptr;
    }
    const ptr = this.top;
    const end = ptr + size;
    if (end > MAX_BYTES) {
      throw new RangeError(
        `the CPU backend needs ${Math.ceil(end / 2 ** 20)} MiB of WebAssembly memory for this chunk, more than the 4 GiB a wasm32 memory can hold: lower the memory budget`,
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      // Grow by at least a quarter of the current size, so a slowly growing merge does not grow per chunk.
      const pages = Math.min(MAX_BYTES / PAGE, Math.max(Math.ceil(end / PAGE), Math.ceil((have * 1.25) / PAGE))) - have / PAGE;
      try {
        this.memory.grow(pages);
      } catch (error) {
        throw new RangeError(
          `the CPU backend could not grow its WebAssembly memory to ${Math.ceil(end / 2 ** 20)} MiB (${(error as Error).message}): lower the memory budget or close other tabs`,
        );
      }
    }
    this.top = end;
    return ptr;
  }

  release(ptr: number, bytes: number): void {
    const size = blockSize(bytes);
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.free[mid].ptr < ptr) lo = mid + 1;
      else hi = mid;
    }
    const before = this.free[lo - 1];
    const after = this.free[lo];
    if (before && before.ptr + before.size === ptr) {
      before.size += size;
      if (after && before.ptr + before.size === after.ptr) {
        before.size += after.size;
        this.free.splice(lo, 1);
      }
    } else if (after && ptr + size === after.ptr) {
      after.ptr = ptr;
      after.size += size;
    } else {
      this.free.splice(lo, 0, { ptr, size });
    }
    // A free block that reaches the top lowers it, so the next large vector bumps from there.
    const last = this.free[this.free.length - 1];
    if (last && last.ptr + last.size === this.top) {
      this.top = last.ptr;
      this.free.pop();
    }
  }
}

export function blockSize(bytes: number): number {
  return Math.max(BLOCK_ALIGN, roundUp(bytes, BLOCK_ALIGN));
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
