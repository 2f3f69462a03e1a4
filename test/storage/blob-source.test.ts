import { describe, expect, it } from 'vitest';
import { BlobByteSource, ReadAhead } from '../../src/storage/blob-source';

/** A Blob of `n` known bytes that records the ranges read from it. */
function countingBlob(n: number, seed: number): { blob: Blob; bytes: Uint8Array; slices: [number, number][]; failNext: { value: boolean } } {
  const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);
  const whole = new Blob([bytes]);
  const slices: [number, number][] = [];
  const failNext = { value: false };
  const blob = {
    size: n,
    slice(start: number, end: number) {
      slices.push([start, end]);
      if (failNext.value) {
        failNext.value = false;
        return { arrayBuffer: () => Promise.reject(new Error('NotReadableError')) };
      }
      return whole.slice(start, end);
    },
  } as unknown as Blob;
  return { blob, bytes, slices, failNext };
}

describe('BlobByteSource with read-ahead', () => {
  it('returns the same bytes as direct slices for reads inside, across and at the end of blocks', async () => {
    const { blob, bytes } = countingBlob(100_000, 1);
    const source = new BlobByteSource('m/model.safetensors', blob, new ReadAhead(16_384, 4));
    for (const [offset, length] of [[0, 1], [0, 16_384], [16_000, 1_000], [16_383, 2], [30_000, 40_000], [99_999, 1], [100_000, 0], [5, 0], [50_000, 16_383]]) {
      const got = await source.read(offset, length);
      expect(Buffer.from(got).equals(Buffer.from(bytes.subarray(offset, offset + length))), `${offset}+${length}`).toBe(true);
    }
  });

  it('reads a file in order as whole blocks, one ahead, not one slice per read', async () => {
    const { blob, bytes, slices } = countingBlob(64 * 1024, 2);
    const source = new BlobByteSource('m/a.safetensors', blob, new ReadAhead(16 * 1024, 4));
    const parts: Uint8Array[] = [];
    for (let offset = 0; offset < bytes.length; offset += 1000) parts.push(await source.read(offset, Math.min(1000, bytes.length - offset)));
    expect(Buffer.concat(parts).equals(Buffer.from(bytes))).toBe(true);
    // 66 reads, 4 block slices (each block once, the last ones read ahead)
    expect(slices).toEqual([[0, 16384], [16384, 32768], [32768, 49152], [49152, 65536]]);
  });

  it('bounds the blocks held over all files, and files beyond the bound read directly instead of evicting', async () => {
    const files = [0, 1, 2].map((s) => countingBlob(8 * 1024, 10 + s));
    const readAhead = new ReadAhead(4 * 1024, 2);
    const sources = files.map((f, i) => new BlobByteSource(`m${i}/model.safetensors`, f.blob, readAhead));
    for (let offset = 0; offset < 8 * 1024; offset += 512) {
      for (let i = 0; i < 3; i++) {
        const got = await sources[i].read(offset, 512);
        expect(Buffer.from(got).equals(Buffer.from(files[i].bytes.subarray(offset, offset + 512)))).toBe(true);
      }
    }
    // Two files share the two blocks. The first read ahead its second block before the second
    // file took that room, so that block is read twice; after that there is no room to read ahead.
    expect(files[0].slices).toEqual([[0, 4096], [4096, 8192], [4096, 8192]]);
    expect(files[1].slices).toEqual([[0, 4096], [4096, 8192]]);
    // The third reads its 16 pieces directly.
    expect(files[2].slices).toHaveLength(16);
    expect(files[2].slices.every(([s, e]) => e - s === 512)).toBe(true);
  });

  it('reports a failed block with the file name, and reads it again on the next try', async () => {
    const { blob, bytes, failNext, slices } = countingBlob(10_000, 3);
    const source = new BlobByteSource('org/model/model.safetensors', blob, new ReadAhead(4096, 4));
    failNext.value = true;
    await expect(source.read(100, 50)).rejects.toThrow(/org\/model\/model\.safetensors: the file could not be read \(NotReadableError\).*pick or download it again/);
    const got = await source.read(100, 50);
    expect(Buffer.from(got).equals(Buffer.from(bytes.subarray(100, 150)))).toBe(true);
    expect(slices.filter(([s]) => s === 0)).toHaveLength(2);
  });

  it('reads of a block or more go straight to the file', async () => {
    const { blob, slices } = countingBlob(40_000, 4);
    const source = new BlobByteSource('m/b.safetensors', blob, new ReadAhead(8192, 4));
    await source.read(1000, 20_000);
    expect(slices).toEqual([[1000, 21_000]]);
  });
});
