import { describe, expect, it } from 'vitest';
import { groupLocalFiles, pickedFromEntries, pickedFromInput } from '../../src/ui/lib/local-files';

const f = (name: string) => new File(['x'], name);

describe('groupLocalFiles', () => {
  it('groups a picked folder into one model named after it', () => {
    const groups = groupLocalFiles([
      { file: f('config.json'), path: 'my-model/config.json' },
      { file: f('model.safetensors'), path: 'my-model/model.safetensors' },
      { file: f('tokenizer.json'), path: 'my-model/tokenizer.json' },
      { file: f('x.pth'), path: 'my-model/original/x.pth' },
      { file: f('.DS_Store'), path: 'my-model/.DS_Store' },
    ]);
    expect(groups).toHaveLength(1);
    expect(groups[0].name).toBe('my-model');
    expect(groups[0].files.map((x) => x.name)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(groups[0].problems).toEqual([]);
  });

  it('finds several model folders under a parent and names loose files', () => {
    const groups = groupLocalFiles([
      { file: f('config.json'), path: 'models/a/config.json' },
      { file: f('model.safetensors'), path: 'models/a/model.safetensors' },
      { file: f('config.json'), path: 'models/b b/config.json' },
      { file: f('README.md'), path: 'models/README.md' },
    ]);
    expect(groups.map((g) => g.name)).toEqual(['a', 'b-b']);
    expect(groups[1].problems[0]).toMatch(/no \.safetensors/);
    const loose = groupLocalFiles([{ file: f('config.json'), path: 'config.json' }], 'dropped');
    expect(loose[0].name).toBe('dropped');
  });

  it('explains folders without config.json, with other weight formats, or missing shards', () => {
    const [g] = groupLocalFiles([
      { file: f('pytorch_model.bin'), path: 'm/pytorch_model.bin' },
      { file: f('notes.txt'), path: 'm/notes.txt' },
    ]);
    expect(g.problems.join('\n')).toMatch(/no config.json/);
    expect(g.problems.join('\n')).toMatch(/pytorch_model\.bin.*convert/);
    const [s] = groupLocalFiles([
      { file: f('config.json'), path: 'm/config.json' },
      { file: f('model.safetensors.index.json'), path: 'm/model.safetensors.index.json' },
      { file: f('model-00001-of-00003.safetensors'), path: 'm/model-00001-of-00003.safetensors' },
    ]);
    expect(s.problems).toEqual(['only 1 of 3 weight shards are here']);
  });

  it('reads webkitRelativePath from inputs', () => {
    const file = f('config.json');
    Object.defineProperty(file, 'webkitRelativePath', { value: 'm/config.json' });
    expect(pickedFromInput([file])[0].path).toBe('m/config.json');
    expect(pickedFromInput([f('a.json')])[0].path).toBe('a.json');
  });

  it('walks dropped folders, reading every batch of entries', async () => {
    const fileEntry = (path: string) => ({
      isFile: true,
      isDirectory: false,
      name: path.split('/').pop()!,
      fullPath: `/${path}`,
      file: (ok: (file: File) => void) => ok(f(path.split('/').pop()!)),
    });
    const batches = [[fileEntry('m/config.json')], [fileEntry('m/model.safetensors')], []];
    const dir = {
      isFile: false,
      isDirectory: true,
      name: 'm',
      fullPath: '/m',
      createReader: () => ({ readEntries: (ok: (e: unknown[]) => void) => ok(batches.shift() ?? []) }),
    };
    const picked = await pickedFromEntries([dir as never]);
    expect(picked.map((p) => p.path)).toEqual(['m/config.json', 'm/model.safetensors']);
  });
});
