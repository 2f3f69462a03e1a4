import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  SafetensorsStreamWriter,
  encodeSafetensorsHeader,
  loadModelTensors,
  readSafetensorsHeader,
  type SafetensorsEntry,
} from '../../src/storage';
import {
  checkOutputTarget,
  NodeByteSource,
  NodeOutputFolder,
  nodeModelFolder,
  NotARegularFileError,
  OutputTargetError,
} from '../../src/storage/node-fs';
import { readFileRange, readFileRangeInto } from '../../src/storage/node-file-range';
import { BlobByteSource, BlobRangeReader } from '../../src/storage/blob-source';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'alloy-storage-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const entries: SafetensorsEntry[] = [
  { name: 'a', dtype: 'F32', shape: [2, 3], byteLength: 24 },
  { name: 'b', dtype: 'BF16', shape: [5], byteLength: 10 },
];

describe('NodeByteSource', () => {
  it('reads exact ranges and refuses reads past the end', async () => {
    const file = path.join(root, 'f.bin');
    await writeFile(file, Uint8Array.from({ length: 100 }, (_, i) => i));
    const source = await NodeByteSource.open(file);
    expect(source.size).toBe(100);
    expect([...(await source.read(95, 5))]).toEqual([95, 96, 97, 98, 99]);
    expect((await source.read(0, 0)).byteLength).toBe(0);
    await expect(source.read(90, 20)).rejects.toThrow(/cannot read bytes 90\.\.110, the file is only 100 bytes/);
    await source.close();
    await expect(source.read(0, 1)).rejects.toThrow(/after close/);
  });

  it('notices a file truncated while in use', async () => {
    const file = path.join(root, 'f.bin');
    await writeFile(file, new Uint8Array(100));
    const source = await NodeByteSource.open(file);
    await writeFile(file, new Uint8Array(10));
    await expect(source.read(0, 50)).rejects.toThrow(/file ended at byte 10 while reading 50 bytes at 0/);
    await source.close();
  });

  it('shares its descriptor for other threads to read the same bytes, until it closes', async () => {
    const file = path.join(root, 'f.bin');
    const bytes = Uint8Array.from({ length: 100 }, (_, i) => (i * 7) & 255);
    await writeFile(file, bytes);
    const source = await NodeByteSource.open(file);
    const shared = source.shared!;
    expect(shared).toMatchObject({ kind: 'fd', name: file, size: 100 });
    expect(readFileRange({ file: shared, offset: 13, length: 50 })).toEqual(await source.read(13, 50));
    const target = new Uint8Array(87);
    readFileRangeInto({ file: shared, offset: 13, length: 87 }, target);
    expect(target).toEqual(bytes.subarray(13));
    expect(() => readFileRangeInto({ file: shared, offset: 0, length: 4 }, new Uint8Array(5))).toThrow(/internal: a read of 4 bytes/);
    await writeFile(file, new Uint8Array(10));
    expect(() => readFileRange({ file: shared, offset: 0, length: 50 })).toThrow(
      `${file}: the file ended at byte 10 while reading 50 bytes at 0 (it has 10 bytes now, 100 when it was opened): it was truncated while in use; re-download it`,
    );
    await source.close();
    expect(source.shared).toBeNull();
  });
});

describe('BlobByteSource', () => {
  it('shares its Blob, which a BlobRangeReader reads as the source does, into buffers it reuses', async () => {
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 13) & 255);
    const source = new BlobByteSource('m/model.safetensors', new Blob([bytes]));
    const reader = new BlobRangeReader();
    const range = { file: source.shared, offset: 5, length: 3000 };
    const first = await reader.read(range);
    expect(first).toEqual(await source.read(5, 3000));
    expect(first).toEqual(bytes.subarray(5, 3005));
    // Given back, its memory serves the next read of that size or less, and holds that read's bytes.
    reader.recycle(first);
    const second = await reader.read({ ...range, offset: 1000, length: 2000 });
    expect(second.buffer.byteLength).toBe(3000);
    expect(second).toEqual(bytes.subarray(1000, 3000));
    // Without a spare buffer (that one is out), a read gets a buffer of its own.
    const third = await reader.read({ ...range, offset: 0, length: 10 });
    expect(third.buffer.byteLength).toBe(10);
    expect(third).toEqual(bytes.subarray(0, 10));
    await expect(reader.read({ ...range, offset: 1100 })).rejects.toThrow('m/model.safetensors: cannot read bytes 1100..4100, the file is only 4096 bytes');
    await expect(reader.read({ file: { kind: 'fd', name: 'x', fd: 0, size: 1 }, offset: 0, length: 1 })).rejects.toThrow(/not a Blob here/);
  });

  it('keeps at most eight spare buffers, the largest', async () => {
    const reader = new BlobRangeReader();
    const file = { kind: 'blob' as const, name: 'b', blob: new Blob([new Uint8Array(64)]) };
    const reads = await Promise.all(Array.from({ length: 10 }, (_, i) => reader.read({ file, offset: 0, length: 10 + i })));
    for (const r of reads) reader.recycle(r);
    const again = await Promise.all(Array.from({ length: 9 }, () => reader.read({ file, offset: 0, length: 5 })));
    // The eight largest spares (12..19 bytes) serve eight reads; the ninth gets a buffer of its own.
    expect(again.map((r) => r.buffer.byteLength).sort((a, b) => a - b)).toEqual([5, 12, 13, 14, 15, 16, 17, 18, 19]);
  });
});
