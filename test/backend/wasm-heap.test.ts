import { describe, expect, it } from 'vitest';
import { WasmHeap, blockSize } from '../../src/backend/cpu/simd/wasm-heap';

describe('WasmHeap', () => {
  it('hands out 64-byte aligned, non-overlapping blocks and grows the memory to hold them', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 100 });
    const heap = new WasmHeap(memory, 1000);
    const a = heap.alloc(1);
    const b = heap.alloc(100_000);
    const c = heap.alloc(65);
    expect(a).toBe(1024); // 1000 rounded up to 64
    expect(b).toBe(1024 + 64);
    expect(c).toBe(1024 + 64 + blockSize(100_000));
    expect(blockSize(100_000)).toBe(100_032);
    expect(blockSize(65)).toBe(128);
    expect(memory.buffer.byteLength).toBeGreaterThanOrEqual(c + 128);
  });

  it('reuses freed blocks first-fit, merges neighbours and lowers the top', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 100 });
    const heap = new WasmHeap(memory, 0);
    const a = heap.alloc(64);
    const b = heap.alloc(128);
    const c = heap.alloc(64);
    const d = heap.alloc(64);
    expect([a, b, c, d]).toEqual([0, 64, 192, 256]);
    heap.release(b, 128);
    expect(heap.alloc(64)).toBe(64); // first fit inside b's hole
    heap.release(64, 64);
    heap.release(c, 64); // merges with the hole before it: 64..256
    expect(heap.alloc(192)).toBe(64);
    heap.release(64, 192);
    heap.release(d, 64); // the top block: the top falls back to the merged hole, to 64
    heap.release(a, 64);
    expect(heap.alloc(300)).toBe(0); // everything is free again: bump from the start
  });

  it('says what to do when the memory cannot grow', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
    const heap = new WasmHeap(memory, 0);
    expect(() => heap.alloc(10 * 65536)).toThrow(/could not grow its WebAssembly memory to 1 MiB.*lower the memory budget/);
  });
});
