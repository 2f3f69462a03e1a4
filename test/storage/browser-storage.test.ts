import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { localFilePaths, OpfsOutputStore, Sha256, Sha256StateError } from '../../src/storage/browser';
import type { OpfsFileWriter } from '../../src/storage/browser';
import { memoryOpfs } from '../helpers/memory-opfs';
import { fakeWriterThread } from '../helpers/writer-thread';

const file = (name: string, text: string, relative?: string): File =>
  Object.assign(new File([text], name), relative !== undefined ? { webkitRelativePath: relative } : {}) as File;

describe('Sha256 (streaming, resumable)', () => {
  it('matches node:crypto for any split of the input, and resumes from a saved midstate', async () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 70_000]) {
      const data = randomBytes(n);
      const expected = createHash('sha256').update(data).digest('hex');
      expect((await Sha256.create()).update(data).hex()).toBe(expected);
      const split = await Sha256.create();
      for (let at = 0; at < n; at += 37) split.update(data.subarray(at, at + 37));
      expect(split.hex()).toBe(expected);
      if (n >= 128) {
        const state = JSON.parse(JSON.stringify((await Sha256.create()).update(data.subarray(0, 128)).state()));
        expect((await Sha256.resume(state)).update(data.subarray(128)).hex()).toBe(expected);
      }
    }
    expect((await Sha256.create()).update(new Uint8Array(3)).bytes).toBe(3);
    await expect(Sha256.create().then((h) => h.update(new Uint8Array(3)).state())).rejects.toThrow(/64-byte boundary/);
  });

  it('refuses states it cannot continue: the earlier JavaScript format, another build, damaged ones', async () => {
    const good = (await Sha256.create()).update(new Uint8Array(64)).state();
    const other = Buffer.from(good.saved, 'base64');
    other[0] ^= 1;
    for (const bad of [
      { h: [1, 2, 3, 4, 5, 6, 7, 8], bytes: 64 },
      { ...good, saved: other.toString('base64') },
      { ...good, saved: good.saved.slice(0, 20) },
      { ...good, bytes: 65 },
      null,
    ]) {
      await expect(Sha256.resume(bad)).rejects.toBeInstanceOf(Sha256StateError);
    }
  });
});

describe('local files', () => {
  it('drops the picked folder from webkitRelativePath, skips hidden entries, keeps subfolders', () => {
    const paths = localFilePaths([
      file('config.json', '{}', 'my-model/config.json'),
      file('model.safetensors', 'x', 'my-model/model.safetensors'),
      file('HEAD', 'x', 'my-model/.git/HEAD'),
      file('a.json', '{}', 'my-model/onnx/a.json'),
    ]);
    expect([...paths.keys()].sort()).toEqual(['config.json', 'model.safetensors', 'onnx/a.json']);
  });

  it('takes dropped files by name, and a single wrapper folder is dropped too', () => {
    expect([...localFilePaths([file('config.json', '{}'), file('model.safetensors', 'x')]).keys()].sort()).toEqual(['config.json', 'model.safetensors']);
    expect([...localFilePaths([file('config.json', '{}', 'outer/inner/config.json'), file('m.safetensors', 'x', 'outer/inner/m.safetensors')]).keys()].sort()).toEqual([
      'config.json',
      'm.safetensors',
    ]);
    expect(() => localFilePaths([file('config.json', '{}', 'a/config.json'), file('config.json', '{}', 'b/x/../config.json')])).not.toThrow();
  });
});

const WRITERS: [string, () => OpfsFileWriter | undefined][] = [
  ['writing in this thread', () => undefined],
  ['writing on a writer thread', () => fakeWriterThread().writer],
];

describe.each(WRITERS)('OpfsOutputStore, %s', (_, writer) => {
  it('shows an output only once committed; abort leaves nothing; names are checked up front', async () => {
    const { root } = memoryOpfs();
    const store = await OpfsOutputStore.open(root, writer());
    const output = await store.begin('my-merge');
    const sink = await output.create('model.safetensors');
    await sink.write(new Uint8Array([1, 2, 3]));
    await sink.write(new Uint8Array([4]));
    await sink.close();
    await output.writeText('config.json', '{}');
    expect(await store.list()).toEqual([]);
    await expect(store.file('my-merge', 'config.json')).rejects.toThrow(/no output named my-merge/);
    await output.commit();
    const [manifest] = await store.list();
    expect(manifest.name).toBe('my-merge');
    expect(manifest.files).toEqual([
      { name: 'config.json', size: 2 },
      { name: 'model.safetensors', size: 4 },
    ]);
    expect(new Uint8Array(await (await store.file('my-merge', 'model.safetensors')).arrayBuffer())).toEqual(new Uint8Array([1, 2, 3, 4]));
    await expect(store.begin('my-merge')).rejects.toThrow('an output named "my-merge" already exists: delete it first, or choose another name');
    await expect(store.begin('user/my-merge')).rejects.toThrow(/contains a slash/);

    const aborted = await store.begin('other');
    await (await aborted.create('model.safetensors')).write(new Uint8Array(10));
    await aborted.abort();
    expect((await store.list()).map((m) => m.name)).toEqual(['my-merge']);
    const names: string[] = [];
    for await (const [name] of (store.directory as unknown as { entries(): AsyncIterable<[string, unknown]> }).entries()) names.push(name);
    expect(names).toEqual(['my-merge']);
    await store.delete('my-merge');
    expect(await store.list()).toEqual([]);
  });

  it('explains a full disk while writing an output', async () => {
    const { root } = memoryOpfs(1000);
    const store = await OpfsOutputStore.open(root, writer());
    const output = await store.begin('big');
    const sink = await output.create('model.safetensors');
    await expect(sink.write(new Uint8Array(2000))).rejects.toThrow(/not enough storage space \(QuotaExceededError\)/);
    await output.abort();
    const resumable = (await store.beginResumable('big', 'fulldisk1')).folder;
    await expect(resumable.saveCheckpoint({ tensors: 'x'.repeat(2000) })).rejects.toThrow(
      /^cannot save where output big got to \(its checkpoint\): not enough storage space \(QuotaExceededError\)/,
    );
    await resumable.abort();
  });

  it('resumes a file where the last checkpoint left it, and refuses one shorter than that', async () => {
    const opfs = memoryOpfs();
    const store = await OpfsOutputStore.open(opfs.root, writer());
    const first = await store.beginResumable('out', 'resumetest1');
    const sink = await first.folder.create('model.safetensors');
    await sink.write(new Uint8Array([1, 2, 3, 4, 5, 6]));
    // The file stays open between checkpoints: a shorter one must not keep the longer one's end.
    await first.folder.saveCheckpoint({ at: 2, note: 'a checkpoint longer than the next one' });
    await first.folder.saveCheckpoint({ at: 4 });
    opfs.releaseLocks(); // a reload: the sink is gone, its file stays

    const again = await store.beginResumable('out', 'resumetest1');
    expect(again.checkpoint).toEqual({ at: 4 });
    const resumed = await again.folder.reopen!('model.safetensors', 4);
    await resumed.write(new Uint8Array([9]));
    await resumed.close();
    await again.folder.saveCheckpoint({ at: 5 });
    await again.folder.commit();
    // Committed: the checkpoint file was closed, so its folder could go.
    const outputs = await opfs.root.getDirectoryHandle('alloy-outputs');
    await expect(outputs.getDirectoryHandle('.partial-resume-resumetest1')).rejects.toThrow(/not found/);
    expect(new Uint8Array(await (await store.file('out', 'model.safetensors')).arrayBuffer())).toEqual(new Uint8Array([1, 2, 3, 4, 9]));

    // Neither the checkpoint nor the output file is flushed to the disk (after every tensor that
    // cost more than the merge's compute; at each shard's end, a sixth of a merge from the cache),
    // nor is a new file cut to length 0 (ext4 then writes it back as it closes).
    const fileOf = async (dir: FileSystemDirectoryHandle, name: string) =>
      ((await dir.getFileHandle(name)) as unknown as { file: { flushes: number; truncates: number } }).file;
    const flushesOf = async (dir: FileSystemDirectoryHandle, name: string): Promise<number> => (await fileOf(dir, name)).flushes;
    const third = await store.beginResumable('third', 'resumetest3');
    const partial = await (await opfs.root.getDirectoryHandle('alloy-outputs')).getDirectoryHandle('.partial-resume-resumetest3');
    const thirdSink = await third.folder.create('model.safetensors');
    await thirdSink.write(new Uint8Array(8));
    await third.folder.saveCheckpoint({ at: 8 });
    await third.folder.saveCheckpoint({ at: 8 });
    expect(await flushesOf(partial, '.alloy-resume.json')).toBe(0);
    await thirdSink.close();
    expect(await fileOf(partial, 'model.safetensors')).toMatchObject({ flushes: 0, truncates: 0 });
    await third.folder.abort();
    await expect(outputs.getDirectoryHandle('.partial-resume-resumetest3')).rejects.toThrow(/not found/);

    const short = await store.beginResumable('short', 'resumetest2');
    await (await short.folder.create('model.safetensors')).write(new Uint8Array(3));
    await short.folder.saveCheckpoint({ at: 10 });
    opfs.releaseLocks();
    const shortAgain = await store.beginResumable('short', 'resumetest2');
    await expect(shortAgain.folder.reopen!('model.safetensors', 10)).rejects.toThrow(
      'cannot resume output short: model.safetensors holds 3 bytes, fewer than the 10 the last checkpoint wrote',
    );
  });
});
