import { describe, expect, it } from 'vitest';
import { MemoryByteSource, SafetensorsError, readSafetensorsHeader } from '../../src/storage';
import { MALFORMED, rawSafetensors } from './helpers';

const read = (bytes: Uint8Array, file = 'model.safetensors', model?: string) =>
  readSafetensorsHeader(new MemoryByteSource(`/models/x/${file}`, bytes), file, { model });

describe('readSafetensorsHeader', () => {
  it('reads tensors with absolute offsets, in data order, and the metadata', async () => {
    const header = {
      __metadata__: { format: 'pt' },
      'b.weight': { dtype: 'F32', shape: [2], data_offsets: [6, 14] },
      'a.weight': { dtype: 'BF16', shape: [1, 3], data_offsets: [0, 6] },
      empty: { dtype: 'I64', shape: [0, 4], data_offsets: [14, 14] },
    };
    const bytes = rawSafetensors(header, 14);
    const jsonLength = bytes.byteLength - 8 - 14;
    const result = await read(bytes);
    expect(result.metadata).toEqual({ format: 'pt' });
    expect(result.dataOffset).toBe(8 + jsonLength);
    expect(result.tensors).toEqual([
      { name: 'a.weight', dtype: 'BF16', shape: [1, 3], file: 'model.safetensors', offset: 8 + jsonLength, byteLength: 6 },
      { name: 'b.weight', dtype: 'F32', shape: [2], file: 'model.safetensors', offset: 8 + jsonLength + 6, byteLength: 8 },
      { name: 'empty', dtype: 'I64', shape: [0, 4], file: 'model.safetensors', offset: 8 + jsonLength + 14, byteLength: 0 },
    ]);
  });

  it('accepts an empty file (no tensors), a null __metadata__, scalars and padded headers', async () => {
    expect((await read(rawSafetensors('{}'))).tensors).toEqual([]);
    const scalar = await read(rawSafetensors('{"__metadata__": null, "s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}}    ', 8));
    expect(scalar.metadata).toEqual({});
    expect(scalar.tensors[0]).toMatchObject({ name: 's', shape: [], byteLength: 8 });
  });

  it('keeps odd names as ordinary keys', async () => {
    const result = await read(
      rawSafetensors('{"__proto__": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "__metadata__": {"__proto__": "x"}}', 1),
    );
    expect(result.tensors.map((tensor) => tensor.name)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(result.metadata)).toBe(Object.prototype);
    expect(Object.keys(result.metadata)).toEqual(['__proto__']);
  });

  for (const bad of MALFORMED) {
    it(`rejects a file with ${bad.title}`, async () => {
      const error = await read(bad.bytes, 'model-00002-of-00003.safetensors', 'org/model').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SafetensorsError);
      const st = error as SafetensorsError;
      expect(st.message).toMatch(bad.message);
      // Where: the model, the file and (when one is to blame) the tensor.
      expect(st.message).toMatch(/^model "org\/model", file "model-00002-of-00003\.safetensors"/);
      expect(st.file).toBe('model-00002-of-00003.safetensors');
      expect(st.model).toBe('org/model');
      expect(st.tensor).toBe(bad.tensor);
      if (bad.tensor !== undefined) expect(st.message).toContain(`tensor "${bad.tensor}"`);
      // What to do.
      expect(st.message).toMatch(/re-download|re-save|convert/);
    });
  }
});
