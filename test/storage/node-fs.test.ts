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
  NodeFileSink,
  NodeOutputFolder,
  nodeModelFolder,
  NotARegularFileError,
  OutputTargetError,
} from '../../src/storage/node-fs';
import { readFileRange, readFileRangeInto } from '../../src/storage/node-file-range';
import { BlobByteSource, BlobRangeReader } from '../../src/storage/blob-source';
import { WRITE_PIECE_BYTES } from '../../src/storage/write-pieces';
import { createRecordingLengths } from '../helpers/write-lengths';

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
    await expect(reader.read({ file: { kind: 'fd', name: 'x', fd: 0, size: 1 }, offset: 0, length: 1 })).rejects.toThrow(/x is a Node file descriptor, which a Web Worker cannot read/);
    // A cached OPFS file whose handle a worker could not open is read as its Blob.
    const cached = { kind: 'opfs', name: 'm/model.safetensors', key: 'm@c/model.safetensors', handle: {} as FileSystemFileHandle, blob: new Blob([bytes]) } as const;
    expect(await reader.read({ file: cached, offset: 5, length: 7 })).toEqual(bytes.subarray(5, 12));
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

describe('nodeModelFolder', () => {
  it('lists, opens and reads files, and loads the model', async () => {
    const dir = path.join(root, 'model');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await mkdir(path.join(dir, '.cache'));
    const header = encodeSafetensorsHeader(entries);
    await writeFile(path.join(dir, 'model.safetensors'), Buffer.concat([header, new Uint8Array(34)]));
    await writeFile(path.join(dir, 'config.json'), '{"x": 1}');
    await writeFile(path.join(dir, 'sub', 'note.txt'), 'hi');
    await writeFile(path.join(dir, '.cache', 'junk'), 'x');

    const folder = nodeModelFolder(dir, 'my-model');
    expect(folder.id).toBe('my-model');
    expect(await folder.listFiles()).toEqual(['config.json', 'model.safetensors', 'sub/note.txt']);
    expect(await folder.readText('config.json')).toBe('{"x": 1}');
    expect(await folder.readText('missing.json')).toBeNull();
    expect(await folder.open('missing.safetensors')).toBeNull();
    await expect(folder.readText('../outside.json')).rejects.toThrow(/not a file name inside/);
    await expect(folder.open('/etc/passwd')).rejects.toThrow(/not a file name inside/);

    const model = await loadModelTensors(folder);
    expect(model.files).toEqual(['model.safetensors']);
    expect(model.tensors.get('b')).toMatchObject({ offset: header.byteLength + 24, byteLength: 10 });
    expect(nodeModelFolder(dir).id).toBe(dir);
  });
});

async function siblings(): Promise<string[]> {
  return (await readdir(root)).sort();
}

describe('NodeFileSink', () => {
  it('writes buffered through the file system at most WRITE_PIECE_BYTES per write, front to back', async () => {
    const file = path.join(root, 'big.bin');
    const { handle, lengths } = await createRecordingLengths(file);
    const sink = new NodeFileSink(handle);
    const bytes = new Uint8Array(2.5 * WRITE_PIECE_BYTES);
    for (let i = 0; i < bytes.byteLength; i++) bytes[i] = (i * 7) & 255;
    await sink.write(bytes);
    await sink.close();
    expect(lengths).toEqual([WRITE_PIECE_BYTES, WRITE_PIECE_BYTES, WRITE_PIECE_BYTES / 2]);
    expect(WRITE_PIECE_BYTES).toBe(512 * 1024);
    expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
  });
});

describe('NodeOutputFolder', () => {
  it('writes into a temporary sibling and renames it on commit', async () => {
    const out = path.join(root, 'out');
    const folder = await NodeOutputFolder.open(out);
    expect(path.dirname(folder.tempDir)).toBe(root);
    // The pid of the run owns it: a later run removes it only once this process is gone.
    expect(path.basename(folder.tempDir)).toMatch(new RegExp(`^out\\.alloy-tmp-${process.pid}-[0-9a-f]{12}$`));

    const writer = new SafetensorsStreamWriter(await folder.create('model.safetensors'), entries);
    await writer.begin();
    await writer.write(new Uint8Array(24).fill(1));
    await writer.write(new Uint8Array(10).fill(2));
    await writer.finish();
    await folder.writeText('config.json', '{}\n');
    await folder.writeBytes('nested/data.bin', new Uint8Array([1, 2, 3]));
    expect(await siblings()).toEqual([path.basename(folder.tempDir)]);

    await folder.commit();
    expect(await siblings()).toEqual(['out']);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'nested']);
    expect(await readFile(path.join(out, 'config.json'), 'utf8')).toBe('{}\n');
    const source = await NodeByteSource.open(path.join(out, 'model.safetensors'));
    const header = await readSafetensorsHeader(source, 'model.safetensors');
    expect([...(await source.read(header.tensors[1].offset, 10))]).toEqual(new Array(10).fill(2));
    await source.close();
    await expect(folder.writeText('late.txt', '')).rejects.toThrow(/already committed/);
  });

  it('replaces an existing empty folder', async () => {
    const out = path.join(root, 'out');
    await mkdir(out);
    const folder = await NodeOutputFolder.open(out);
    await folder.writeText('a.txt', 'a');
    await folder.commit();
    expect(await readdir(out)).toEqual(['a.txt']);
    expect(await siblings()).toEqual(['out']);
  });

  it('creates missing parent folders', async () => {
    const out = path.join(root, 'deep', 'er', 'out');
    const folder = await NodeOutputFolder.open(out);
    await folder.writeText('a.txt', 'a');
    await folder.commit();
    expect(await readdir(out)).toEqual(['a.txt']);
  });

  it('refuses up front a folder that is not empty, or a file', async () => {
    const out = path.join(root, 'out');
    await mkdir(out);
    await writeFile(path.join(out, 'keep.txt'), 'x');
    await expect(NodeOutputFolder.open(out)).rejects.toThrow(/already exists and is not empty.*choose another output folder/);
    await expect(NodeOutputFolder.open(path.join(out, 'keep.txt'))).rejects.toThrow(/exists and is not a folder/);
    expect(await siblings()).toEqual(['out']);
  });

  it('refuses to commit over a folder that filled up during the merge, keeping both', async () => {
    const out = path.join(root, 'out');
    const folder = await NodeOutputFolder.open(out);
    await folder.writeText('a.txt', 'a');
    await mkdir(out);
    await writeFile(path.join(out, 'other.txt'), 'x');
    await expect(folder.commit()).rejects.toThrow(/not empty/);
    expect(await readdir(out)).toEqual(['other.txt']);
    await folder.abort();
    expect(await siblings()).toEqual(['out']);
  });

  it('removes everything on abort, open files included', async () => {
    const folder = await NodeOutputFolder.open(path.join(root, 'out'));
    await folder.writeText('a.txt', 'a');
    const sink = await folder.create('model.safetensors');
    await sink.write(new Uint8Array(10));
    await folder.abort();
    await folder.abort();
    expect(await siblings()).toEqual([]);
    await expect(folder.commit()).rejects.toThrow(/already aborted/);
  });

  it('refuses to commit while a file is still open, to write a file twice, or outside the folder', async () => {
    const folder = await NodeOutputFolder.open(path.join(root, 'out'));
    const sink = await folder.create('model.safetensors');
    await expect(folder.commit()).rejects.toThrow(/1 output file\(s\) are still being written/);
    await sink.close();
    await expect(folder.create('model.safetensors')).rejects.toThrow(/EEXIST/);
    await expect(folder.writeText('../escape.txt', 'x')).rejects.toThrow(/not a file name inside/);
    await folder.commit();
    expect(await siblings()).toEqual(['out']);
  });
});

describe('non-regular files and awkward output paths', () => {
  it('refuses a named pipe at once, as a byte source and as a text file, instead of waiting for a writer', async () => {
    const { execFileSync } = await import('node:child_process');
    const dir = path.join(root, 'model');
    await mkdir(dir);
    const pipe = path.join(dir, 'config.json');
    execFileSync('mkfifo', [pipe]);
    const expected = new NotARegularFileError(pipe, await stat(pipe)).message;
    await expect(NodeByteSource.open(pipe)).rejects.toThrow(expected);
    await expect(NodeByteSource.open(pipe)).rejects.toThrow(/config\.json is a named pipe, not a regular file: .*put the real file there/);
    await expect(nodeModelFolder(dir).readText('config.json')).rejects.toBeInstanceOf(NotARegularFileError);
    await expect(nodeModelFolder(dir).open('config.json')).rejects.toBeInstanceOf(NotARegularFileError);
    await expect(NodeByteSource.open(dir)).rejects.toThrow(/is a folder, not a regular file/);
  });

  it('refuses a symlinked, file or non-empty output target before creating anything', async () => {
    await mkdir(path.join(root, 'real'));
    await symlink(path.join(root, 'real'), path.join(root, 'link'));
    await symlink(path.join(root, 'nowhere'), path.join(root, 'dangling'));
    await writeFile(path.join(root, 'file'), 'x');
    await expect(NodeOutputFolder.open(path.join(root, 'link'))).rejects.toThrow(/is a symbolic link/);
    await expect(NodeOutputFolder.open(path.join(root, 'dangling'))).rejects.toThrow(/is a symbolic link/);
    await expect(NodeOutputFolder.open(path.join(root, 'file'))).rejects.toThrow(/exists and is not a folder/);
    await expect(checkOutputTarget(path.join(root, 'file', 'x'))).rejects.toBeInstanceOf(OutputTargetError);
    expect(await siblings()).toEqual(['dangling', 'file', 'link', 'real']);
  });

  it('creates missing parents one by one and removes only dead runs\' temporary folders', async () => {
    const parent = path.join(root, 'a', 'b');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await mkdir(path.join(parent, `out.alloy-tmp-${dead}-00000000000a`), { recursive: true });
    await mkdir(path.join(parent, `out.alloy-tmp-${process.pid}-00000000000b`));
    await mkdir(path.join(parent, `other.alloy-tmp-${dead}-00000000000c`));
    const folder = await NodeOutputFolder.open(path.join(parent, 'out'));
    expect(folder.removedStale).toEqual([path.join(parent, `out.alloy-tmp-${dead}-00000000000a`)]);
    expect((await readdir(parent)).sort()).toEqual(
      [`other.alloy-tmp-${dead}-00000000000c`, `out.alloy-tmp-${process.pid}-00000000000b`, path.basename(folder.tempDir)].sort(),
    );
    await folder.abort();
  });
});
