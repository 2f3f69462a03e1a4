import { constants } from 'node:fs';
import { type FileHandle, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIRECT_PIECE_BYTES, DirectFileSink, type OpenDirect } from '../../src/storage/node-direct-sink';
import { NodeOutputFolder } from '../../src/storage/node-fs';
import { WRITE_PIECE_BYTES } from '../../src/storage/write-pieces';
import { createRecordingLengths, recordWriteLengths } from '../helpers/write-lengths';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'alloy-direct-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const PIECE = DIRECT_PIECE_BYTES;

/** Pseudo-random bytes (xorshift32): no period a misplaced piece could hide in. */
function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = 0x9e3779b9 ^ length;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 255;
  }
  return bytes;
}

/** Writes `bytes` in pieces of the cycling `sizes` (some under, some over a staging piece). */
async function writeIn(sink: { write(b: Uint8Array): Promise<void> }, bytes: Uint8Array, sizes: number[]): Promise<void> {
  for (let at = 0, k = 0; at < bytes.byteLength; k++) {
    const n = Math.min(sizes[k % sizes.length], bytes.byteLength - at);
    // A copy the sink may keep no reference to: it is overwritten right after the write.
    const piece = bytes.slice(at, at + n);
    await sink.write(piece);
    piece.fill(0xee);
    at += n;
  }
}

/** Whether this machine's temporary folder takes O_DIRECT opens (ext4, xfs, tmpfs ≥ 6.6 do). */
async function fileSystemTakesDirect(): Promise<boolean> {
  if (constants.O_DIRECT === undefined) return false;
  const dir = await mkdtemp(path.join(tmpdir(), 'alloy-direct-probe-'));
  const probe = path.join(dir, 'probe');
  try {
    await (await open(probe, 'w')).close();
    await (await open(probe, constants.O_WRONLY | constants.O_DIRECT)).close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
const takesDirect = await fileSystemTakesDirect();

describe('DirectFileSink through NodeOutputFolder', () => {
  const sizes = [0, 1, 4095, 4096, 4097, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE + 12_345, 3 * PIECE];
  it.each(sizes)('writes a file of %i bytes exactly', async (size) => {
    const folder = await NodeOutputFolder.open(path.join(root, 'out'));
    const sink = await folder.create('f.bin');
    const bytes = pattern(size);
    await writeIn(sink, bytes, [1, 4093, 100_000, PIECE + 3, 7]);
    await sink.close();
    await folder.commit();
    const file = path.join(root, 'out', 'f.bin');
    expect((await stat(file)).size).toBe(size);
    expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
  });

  it('is what the output folder writes its files through (on Linux)', async () => {
    const folder = await NodeOutputFolder.open(path.join(root, 'out'));
    const sink = await folder.create('f.bin');
    expect(sink instanceof DirectFileSink).toBe(constants.O_DIRECT !== undefined);
    await folder.abort();
  });

  it.skipIf(!takesDirect)('writes a file of a piece or more directly (a real O_DIRECT handle), a smaller one buffered', async () => {
    const opened: string[] = [];
    const direct: number[] = [];
    const openDirect: OpenDirect = async (file) => {
      opened.push(path.basename(file));
      return recordWriteLengths(await open(file, constants.O_WRONLY | constants.O_DIRECT), direct);
    };
    const big = await sinkWith(openDirect, 'big.bin');
    await big.sink.write(pattern(PIECE + 10));
    await big.sink.close();
    const small = await sinkWith(openDirect, 'small.json');
    await small.sink.write(pattern(10));
    await small.sink.close();
    expect(opened).toEqual(['big.bin']);
    // A whole piece, then the last 10 bytes as one 4 KiB block (the file is truncated after it).
    expect([direct, big.buffered, small.buffered]).toEqual([[PIECE, 4096], [], [10]]);
    expect((await stat(big.file)).size).toBe(PIECE + 10);
    expect(Buffer.compare(await readFile(big.file), pattern(PIECE + 10))).toBe(0);
  });
});

/** A sink on a new file of `root` whose direct handle is `openDirect`'s; the buffered handle's write lengths. */
async function sinkWith(openDirect: OpenDirect, name = 'f.bin'): Promise<{ sink: DirectFileSink; file: string; buffered: number[]; created: FileHandle }> {
  const file = path.join(root, name);
  const { handle: created, lengths: buffered } = await createRecordingLengths(file);
  const sink = DirectFileSink.create(file, created, () => {}, openDirect);
  if (sink === null) throw new Error('no direct sink on this platform');
  return { sink, file, buffered, created };
}

/**
 * A real handle on `file` (without O_DIRECT, so any alignment works) whose writes start late, as
 * on a slow disk (a staging buffer refilled too early shows), and fail as `fail` says.
 */
function failingHandle(fail: (call: number) => string | null, closed: string[]): OpenDirect {
  return async (file) => {
    const handle = await open(file, constants.O_WRONLY);
    const original = handle.write.bind(handle);
    let calls = 0;
    handle.write = ((...args: Parameters<typeof original>) => {
      const code = fail(calls++);
      const late = new Promise((resolve) => setTimeout(resolve, 20));
      if (code === null) return late.then(() => original(...args));
      return late.then(() => Promise.reject(Object.assign(new Error(`${code}: simulated`), { code })));
    }) as typeof handle.write;
    const close = handle.close.bind(handle);
    handle.close = () => {
      closed.push('direct');
      return close();
    };
    return handle;
  };
}

describe.skipIf(constants.O_DIRECT === undefined)('DirectFileSink fallbacks', () => {
  it('continues buffered, in WRITE_PIECE_BYTES pieces, when the direct open fails', async () => {
    const { sink, file, buffered } = await sinkWith(() => Promise.reject(new Error('EINVAL: no direct I/O here')));
    const bytes = pattern(PIECE + 1000);
    await writeIn(sink, bytes, [PIECE + 1000]);
    await sink.close();
    expect(buffered).toEqual([...Array(PIECE / WRITE_PIECE_BYTES).fill(WRITE_PIECE_BYTES), 1000]);
    expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
  });

  it('continues buffered from the refused piece when a direct write is refused as unaligned (EINVAL)', async () => {
    const closed: string[] = [];
    const { sink, file, buffered } = await sinkWith(failingHandle((call) => (call === 1 ? 'EINVAL' : null), closed));
    const bytes = pattern(3 * PIECE + 5);
    await writeIn(sink, bytes, [999_999]);
    await sink.close();
    expect(closed).toEqual(['direct']);
    // Piece 1 went directly; pieces 2 and 3 and the 5-byte tail (unpadded) buffered.
    expect(buffered.reduce((a, b) => a + b, 0)).toBe(2 * PIECE + 5);
    expect((await stat(file)).size).toBe(bytes.byteLength);
    expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
  });

  it('pads the last piece of a direct file and truncates it to its size', async () => {
    const closed: string[] = [];
    const { sink, file, buffered } = await sinkWith(failingHandle(() => null, closed));
    const bytes = pattern(PIECE + 5000);
    await writeIn(sink, bytes, [PIECE + 5000]);
    await sink.close();
    expect(buffered).toEqual([]);
    expect((await stat(file)).size).toBe(PIECE + 5000);
    expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
  });

  it('lets a write in progress end before a close (an abort) that does not wait for it', async () => {
    const { sink, file } = await sinkWith(failingHandle(() => null, []));
    const bytes = pattern(3 * PIECE + 77);
    const writing = sink.write(bytes);
    await sink.close();
    await writing;
    expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
  });

  it('throws a failed direct write (no space) from the next call, and still closes both handles', async () => {
    const closed: string[] = [];
    const { sink, created } = await sinkWith(failingHandle((call) => (call === 0 ? 'ENOSPC' : null), closed));
    const createdClose = created.close.bind(created);
    created.close = () => {
      closed.push('created');
      return createdClose();
    };
    await sink.write(pattern(PIECE)); // the piece is handed to the disk; its failure comes later
    await expect(sink.write(pattern(PIECE))).rejects.toThrow(/ENOSPC/);
    await expect(sink.close()).resolves.toBeUndefined();
    expect(closed.sort()).toEqual(['created', 'direct']);
    await expect(sink.write(pattern(1))).rejects.toThrow(/closed file/);
  });
});
