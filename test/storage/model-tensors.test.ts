import { describe, expect, it } from 'vitest';
import {
  SafetensorsError,
  encodeSafetensorsHeader,
  loadModelTensors,
  memoryModelFolder,
  type SafetensorsEntry,
} from '../../src/storage';

/** A valid safetensors file with zeroed data. */
function shard(...names: string[]): Uint8Array {
  const entries: SafetensorsEntry[] = names.map((name) => ({ name, dtype: 'BF16', shape: [2, 2], byteLength: 8 }));
  const header = encodeSafetensorsHeader(entries);
  const file = new Uint8Array(header.byteLength + 8 * names.length);
  file.set(header);
  return file;
}

const index = (weightMap: Record<string, string>): string =>
  JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });

const S1 = 'model-00001-of-00002.safetensors';
const S2 = 'model-00002-of-00002.safetensors';

async function failure(files: Record<string, Uint8Array | string>): Promise<SafetensorsError> {
  const error = await loadModelTensors(memoryModelFolder('org/model', files)).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(SafetensorsError);
  expect((error as Error).message).toContain('model "org/model"');
  return error as SafetensorsError;
}

describe('loadModelTensors', () => {
  it('reads a sharded model through its index', async () => {
    const model = await loadModelTensors(
      memoryModelFolder('org/model', {
        'model.safetensors.index.json': index({ a: S1, b: S1, c: S2 }),
        [S2]: shard('c'),
        [S1]: shard('b', 'a'),
        'config.json': '{}',
      }),
    );
    expect(model.files).toEqual([S1, S2]);
    expect([...model.tensors.keys()].sort()).toEqual(['a', 'b', 'c']);
    const b = model.tensors.get('b')!;
    expect(b.file).toBe(S1);
    expect(model.tensors.get('a')!.offset).toBe(b.offset + 8);
    expect(model.tensors.get('c')!.file).toBe(S2);
  });

  it('rejects an index entry that its shard does not contain', async () => {
    const error = await failure({ 'model.safetensors.index.json': index({ a: S1, x: S1 }), [S1]: shard('a') });
    expect(error.message).toMatch(/file "model-00001-of-00002.safetensors", tensor "x": .*lists the tensor in this shard but the shard does not contain it/);
    expect(error.tensor).toBe('x');
  });

  it('rejects a shard tensor that the index does not list', async () => {
    const error = await failure({ 'model.safetensors.index.json': index({ a: S1 }), [S1]: shard('a', 'stray') });
    expect(error.message).toMatch(/tensor "stray": the tensor is in this shard but not listed in model.safetensors.index.json/);
  });

  it('rejects a tensor stored in two shards', async () => {
    const error = await failure({
      'model.safetensors.index.json': index({ a: S1, b: S2 }),
      [S1]: shard('a', 'b'),
      [S2]: shard('b'),
    });
    expect(error.message).toMatch(/file "model-00001-of-00002.safetensors", tensor "b": the tensor is in two shards, this one and "model-00002-of-00002.safetensors"/);
  });

  it('rejects a shard that holds a tensor the index puts elsewhere', async () => {
    const error = await failure({
      'model.safetensors.index.json': index({ a: S1, b: S2 }),
      [S1]: shard('b'),
      [S2]: shard('a'),
    });
    expect(error.message).toMatch(/file "model-00001-of-00002.safetensors", tensor "b": the tensor is in this shard but model.safetensors.index.json says it is in "model-00002/);
  });

  it('rejects a missing shard, a broken index, and a broken shard', async () => {
    expect((await failure({ 'model.safetensors.index.json': index({ a: S1 }) })).message).toMatch(
      /file "model-00001-of-00002.safetensors": model.safetensors.index.json lists this shard but the file is missing/,
    );
    expect((await failure({ 'model.safetensors.index.json': '{"weight_map": ' })).message).toMatch(
      /file "model.safetensors.index.json": the index is not valid JSON/,
    );
    expect((await failure({ 'model.safetensors.index.json': '{"metadata": {}}' })).message).toMatch(/no "weight_map" object/);
    expect((await failure({ 'model.safetensors.index.json': index({ a: 3 } as never) })).message).toMatch(
      /tensor "a": "weight_map" maps the tensor to 3 instead of a shard file name/,
    );
    const truncated = shard('a').subarray(0, 20);
    expect((await failure({ 'model.safetensors.index.json': index({ a: S1 }), [S1]: truncated })).message).toMatch(
      /model "org\/model", file "model-00001-of-00002.safetensors": .*truncated/,
    );
  });

  it('prefers model.safetensors when there is no index', async () => {
    const model = await loadModelTensors(
      memoryModelFolder('m', { 'model.safetensors': shard('w'), 'adapter.safetensors': shard('x') }),
    );
    expect(model.files).toEqual(['model.safetensors']);
    expect([...model.tensors.keys()]).toEqual(['w']);
  });

  it('falls back to a single other safetensors file', async () => {
    const model = await loadModelTensors(memoryModelFolder('m', { 'weights.safetensors': shard('w'), 'onnx/model.safetensors': shard('z') }));
    expect(model.files).toEqual(['weights.safetensors']);
    expect(model.tensors.get('w')!.file).toBe('weights.safetensors');
  });

  it('refuses several safetensors files without an index', async () => {
    expect((await failure({ 'a.safetensors': shard('w'), 'b.safetensors': shard('x') })).message).toMatch(
      /2 safetensors files \(a.safetensors, b.safetensors\) but no model.safetensors.index.json/,
    );
  });

  it('says when a model has no safetensors weights, and mentions pytorch_model.bin', async () => {
    expect((await failure({ 'config.json': '{}' })).message).toMatch(/no safetensors weights/);
    const bin = await failure({ 'config.json': '{}', 'pytorch_model.bin': new Uint8Array(4) });
    expect(bin.message).toMatch(/only pytorch_model\*\.bin files, which Alloy does not read yet/);
  });
});
