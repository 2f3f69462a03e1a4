import { describe, expect, it } from 'vitest';
import { memoryOpfs } from '../helpers/memory-opfs';
import { fakeWriterThread } from '../helpers/writer-thread';
import { WRITE_PIECE_BYTES } from '../../src/storage/write-pieces';

async function fileBytes(root: FileSystemDirectoryHandle, name: string): Promise<Uint8Array> {
  return new Uint8Array(await (await (await root.getFileHandle(name)).getFile()).arrayBuffer());
}

describe('output files written on a writer thread', () => {
  it('a write copies its bytes: the caller keeps its buffer and may change it at once', async () => {
    const { root } = memoryOpfs();
    const { writer } = fakeWriterThread();
    const file = await writer.open(await root.getFileHandle('a.bin', { create: true }), 0);
    const block = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const first = file.write(block.subarray(0, 4), 0);
    block.fill(0); // before the thread has even received the request
    await first;
    expect(block.byteLength).toBe(8); // not detached
    block.set([9, 9]);
    await file.write(block.subarray(0, 2), 4);
    await file.close();
    expect(await fileBytes(root, 'a.bin')).toEqual(new Uint8Array([1, 2, 3, 4, 9, 9]));
  });

  it('hands the file system at most WRITE_PIECE_BYTES per write', async () => {
    const { root } = memoryOpfs();
    const { writer } = fakeWriterThread();
    const handle = await root.getFileHandle('big.bin', { create: true });
    const probe = await handle.createSyncAccessHandle();
    const accessType = Object.getPrototypeOf(probe) as { write: (buffer: ArrayBufferView, options?: { at?: number }) => number };
    probe.close();
    const original = accessType.write;
    const writes: [number, number][] = [];
    accessType.write = function (this: unknown, buffer, options) {
      writes.push([options?.at ?? 0, buffer.byteLength]);
      return original.call(this, buffer, options);
    };
    const bytes = Uint8Array.from({ length: 2 * WRITE_PIECE_BYTES + 10 }, (_, i) => (i * 11) & 255);
    try {
      const file = await writer.open(handle, 0);
      await file.write(bytes, 5);
      await file.close();
    } finally {
      accessType.write = original;
    }
    expect(writes).toEqual([[5, WRITE_PIECE_BYTES], [5 + WRITE_PIECE_BYTES, WRITE_PIECE_BYTES], [5 + 2 * WRITE_PIECE_BYTES, 10]]);
    expect((await fileBytes(root, 'big.bin')).subarray(5)).toEqual(bytes);
  });

  it('does the requests in the order they were sent, over several files', async () => {
    const { root } = memoryOpfs();
    const { writer } = fakeWriterThread();
    const [a, b] = await Promise.all(['a.bin', 'b.bin'].map(async (name) => writer.open(await root.getFileHandle(name, { create: true }), 0)));
    // Buffers of several sizes, so that returned buffers are taken up again for smaller and larger writes.
    const writes: Promise<void>[] = [];
    let at = 0;
    for (let i = 1; i <= 12; i++) {
      const bytes = new Uint8Array(i * 100).fill(i);
      writes.push(a.write(bytes, at), b.write(bytes.subarray(0, 3), 3 * (i - 1)));
      at += bytes.byteLength;
    }
    await Promise.all(writes);
    await Promise.all([a.close(), b.close()]);
    const expectedA = new Uint8Array(at);
    for (let i = 1, o = 0; i <= 12; o += i * 100, i++) expectedA.fill(i, o, o + i * 100);
    expect(await fileBytes(root, 'a.bin')).toEqual(expectedA);
    expect(await fileBytes(root, 'b.bin')).toEqual(new Uint8Array(Array.from({ length: 36 }, (_, k) => Math.floor(k / 3) + 1)));
  });

  it('a stopped writer thread fails the write waiting for it and every later request', async () => {
    const { root } = memoryOpfs();
    const thread = fakeWriterThread();
    const file = await thread.writer.open(await root.getFileHandle('a.bin', { create: true }), 0);
    const waiting = file.write(new Uint8Array(10), 0);
    thread.stop(new Error('out of memory'));
    await expect(waiting).rejects.toThrow('the thread that writes output files stopped: out of memory');
    await expect(file.write(new Uint8Array(1), 10)).rejects.toThrow(/stopped: out of memory/);
    await expect(thread.writer.open(await root.getFileHandle('b.bin', { create: true }), 0)).rejects.toThrow(/stopped: out of memory/);
  });
});
