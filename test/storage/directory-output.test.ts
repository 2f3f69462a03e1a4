import { describe, expect, it } from 'vitest';
import { DirectoryOutputFolder } from '../../src/storage/directory-output';
import { memoryOpfs, type MemoryDirectoryHandle } from '../helpers/memory-opfs';

/** Names under a fake directory, recursively, with file sizes (what the user would see in the folder). */
function tree(dir: FileSystemDirectoryHandle): Record<string, number | object> {
  const out: Record<string, number | object> = {};
  for (const [name, child] of (dir as unknown as MemoryDirectoryHandle).children) {
    out[name] = child.kind === 'directory' ? tree(child as unknown as FileSystemDirectoryHandle) : (child as { file: { size: number } }).file.size;
  }
  return out;
}

async function readAll(dir: FileSystemDirectoryHandle, path: string[]): Promise<Uint8Array> {
  let d = dir;
  for (const part of path.slice(0, -1)) d = await d.getDirectoryHandle(part);
  return new Uint8Array(await (await (await d.getFileHandle(path[path.length - 1])).getFile()).arrayBuffer());
}

describe.each([true, false])('DirectoryOutputFolder (move on commit: %s)', (canMove) => {
  it('streams files into the picked folder and shows them under <name>/ only on commit', async () => {
    const { root } = memoryOpfs();
    const out = await DirectoryOutputFolder.begin(root, 'merged', { canMove });
    expect(out.movesOnCommit).toBe(canMove);
    const sink = await out.create('model.safetensors');
    const chunk = new Uint8Array([1, 2, 3, 4]);
    await sink.write(chunk);
    chunk.fill(9); // the writer reuses its buffer once write() resolved
    await sink.write(new Uint8Array([5]));
    await sink.close();
    await out.writeText('config.json', '{"a":1}');
    if (canMove) expect(Object.keys(tree(root))).toEqual([expect.stringMatching(/^\.alloy-partial-merged-[0-9a-f]{12}$/)]);
    await out.commit();
    expect(tree(root)).toEqual({ merged: { 'model.safetensors': 5, 'config.json': 7 } });
    expect(Array.from(await readAll(root, ['merged', 'model.safetensors']))).toEqual([1, 2, 3, 4, 5]);
    expect(out.files).toEqual([{ name: 'config.json', size: 7 }, { name: 'model.safetensors', size: 5 }]);
    expect(out.location).toBe('the chosen folder/merged');
  });

  it('abort removes everything it wrote, even with a file still open', async () => {
    const { root } = memoryOpfs();
    await root.getFileHandle('keep-me.txt', { create: true });
    const out = await DirectoryOutputFolder.begin(root, 'merged', { canMove });
    await out.writeText('config.json', '{}');
    const open = await out.create('model-00001-of-00002.safetensors');
    await open.write(new Uint8Array(100));
    await out.abort();
    expect(tree(root)).toEqual({ 'keep-me.txt': 0 });
    await expect(out.create('x')).rejects.toThrow(/already aborted/);
  });

  it('refuses a name the folder already holds, and a commit with a file still being written', async () => {
    const { root } = memoryOpfs();
    await root.getDirectoryHandle('merged', { create: true });
    await expect(DirectoryOutputFolder.begin(root, 'merged', { canMove })).rejects.toThrow(/already holds "merged"/);
    const out = await DirectoryOutputFolder.begin(root, 'other', { canMove });
    await out.create('a.safetensors');
    await expect(out.commit()).rejects.toThrow(/still being written/);
  });

  it('explains a full disk', async () => {
    const { root } = memoryOpfs(50);
    const out = await DirectoryOutputFolder.begin(root, 'merged', { canMove });
    const sink = await out.create('model.safetensors');
    await expect(sink.write(new Uint8Array(100))).rejects.toThrow(/the disk is full/);
  });
});

describe('DirectoryOutputFolder', () => {
  it('removes the temporary folder a closed tab left for the same name, and only that', async () => {
    const { root } = memoryOpfs();
    await (await root.getDirectoryHandle('.alloy-partial-merged-0123456789ab', { create: true })).getFileHandle('model.safetensors', { create: true });
    await root.getDirectoryHandle('.alloy-partial-other-0123456789ab', { create: true });
    const out = await DirectoryOutputFolder.begin(root, 'merged', { canMove: true });
    await out.commit();
    expect(Object.keys(tree(root)).sort()).toEqual(['.alloy-partial-other-0123456789ab', 'merged']);
  });

  it('writes final names directly when move() is refused (probe), and abort then removes <name>/', async () => {
    const { root } = memoryOpfs();
    // A folder whose file handles have move() but refuse it (as outside the OPFS in some browsers).
    const refusing = new Proxy(root, {
      get(target, prop, receiver) {
        if (prop !== 'getDirectoryHandle') return Reflect.get(target, prop, receiver);
        return async (name: string, o?: { create?: boolean }) => {
          const dir = await target.getDirectoryHandle(name, o);
          const getFileHandle = dir.getFileHandle.bind(dir);
          (dir as { getFileHandle: unknown }).getFileHandle = async (n: string, fo?: { create?: boolean }) => {
            const h = await getFileHandle(n, fo);
            (h as unknown as { move: unknown }).move = async () => {
              throw new DOMException('not supported here', 'NotSupportedError');
            };
            return h;
          };
          return dir;
        };
      },
    });
    const out = await DirectoryOutputFolder.begin(refusing, 'merged', { canMove: true });
    expect(out.movesOnCommit).toBe(false);
    expect(Object.keys(tree(root))).toEqual(['merged']);
    await out.writeText('config.json', '{}');
    await out.abort();
    expect(tree(root)).toEqual({});
  });
});

describe('DirectoryOutputFolder.beginResumable', () => {
  it('keeps its own temporary folder and checkpoint across a reload, drops stale ones, and commits what both sessions wrote', async () => {
    const opfs = memoryOpfs();
    const { root } = opfs;
    await root.getDirectoryHandle('.alloy-partial-merged-0123456789ab', { create: true }); // an older, non-resumable merge
    const first = await DirectoryOutputFolder.beginResumable(root, 'merged', 'abcdef1234', { canMove: true });
    expect(first.checkpoint).toBeNull();
    expect(first.resumable).toBe(true);
    const sink = await first.folder.create('model-00001-of-00002.safetensors');
    await sink.write(new Uint8Array([1, 2, 3]));
    await sink.close();
    await first.folder.saveCheckpoint({ tensorsDone: 4 });
    const half = await first.folder.create('model-00002-of-00002.safetensors'); // lost in the reload
    await half.write(new Uint8Array([7]));
    opfs.releaseLocks();
    expect(Object.keys(tree(root))).toEqual(['.alloy-partial-merged-rabcdef1234']);

    const again = await DirectoryOutputFolder.beginResumable(root, 'merged', 'abcdef1234', { canMove: true });
    expect(again.checkpoint).toEqual({ tensorsDone: 4 });
    const second = await again.folder.create('model-00002-of-00002.safetensors');
    await second.write(new Uint8Array([4, 5]));
    await second.close();
    await again.folder.writeText('config.json', '{}');
    await again.folder.commit();
    expect(tree(root)).toEqual({ merged: { 'model-00001-of-00002.safetensors': 3, 'model-00002-of-00002.safetensors': 2, 'config.json': 2 } });
    expect(Array.from(await readAll(root, ['merged', 'model-00002-of-00002.safetensors']))).toEqual([4, 5]);
  });

  it('restart() forgets the files and checkpoint found; without move it is not resumable', async () => {
    const { root } = memoryOpfs();
    const first = await DirectoryOutputFolder.beginResumable(root, 'merged', 'abcdef1234', { canMove: true });
    await first.folder.writeText('a.json', '{}');
    await first.folder.saveCheckpoint({ tensorsDone: 1 });
    const again = await DirectoryOutputFolder.beginResumable(root, 'merged', 'abcdef1234', { canMove: true });
    await again.folder.restart();
    expect(tree(root)).toEqual({ '.alloy-partial-merged-rabcdef1234': {} });
    expect(again.folder.files).toEqual([]);
    const plain = await DirectoryOutputFolder.beginResumable(memoryOpfs().root, 'merged', 'abcdef1234', { canMove: false });
    expect(plain.resumable).toBe(false);
    expect(plain.folder.movesOnCommit).toBe(false);
    await DirectoryOutputFolder.discardResumable(root, 'merged', 'abcdef1234');
    expect(tree(root)).toEqual({});
  });
});
