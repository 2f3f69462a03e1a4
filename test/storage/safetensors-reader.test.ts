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

  it('reads a tensor named twice as its last entry, as the Rust reader (a map of tensors) does', async () => {
    const result = await read(
      rawSafetensors('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}', 8),
    );
    expect(result.tensors.map((x) => [x.name, x.dtype, x.byteLength])).toEqual([
      ['a', 'U8', 4],
      ['b', 'U8', 4],
    ]);
  });

  it('refuses nesting 100,000 levels deep in __metadata__ without overflowing the stack, naming the file', async () => {
    const depth = 100_000;
    const error = await read(rawSafetensors(`{"__metadata__": ${'{"a": '.repeat(depth)}"x"${'}'.repeat(depth)}}`), 'deep.safetensors').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(/^file "deep\.safetensors": the header nests JSON more than 127 levels deep \(nesting deeper than 127 levels at character 7\d\d\)/);
  });

  it('refuses a \\u escape of a lone surrogate, as serde_json does', async () => {
    const error = await read(rawSafetensors('{"__metadata__": {"a": "\\ud800"}}')).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/not valid JSON \(lone leading surrogate in a \\u escape at character 25\)/);
  });

  it('cuts and escapes names and values from the file in its messages', async () => {
    const evil = `\u001b[2J\u001b[31mred\u0007${'n'.repeat(50_000)}`;
    const header = `{${JSON.stringify(evil)}: {"dtype": ${JSON.stringify(`Q\u001b]0;title\u0007${'d'.repeat(100_000)}`)}, "shape": [1], "data_offsets": [0, 1]}}`;
    const error = (await read(rawSafetensors(header, 1)).catch((e: unknown) => e)) as SafetensorsError;
    expect(error).toBeInstanceOf(SafetensorsError);
    expect(error.tensor).toBe(evil);
    const message = error.message;
    expect(message).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(message).toContain('tensor "\\x1b[2J\\x1b[31mred\\x07nnn');
    expect(message).toContain(`… (${evil.length - 200} more characters)`);
    expect(message).toContain('dtype "Q\\x1b]0;title\\x07ddd');
    expect(message.length).toBeLessThan(1000);
    // A long list is shown cut, not written out whole.
    const longShape = `{"w": {"dtype": "U8", "shape": [${Array(100_000).fill('1.0').join(',')}], "data_offsets": [0, 1]}}`;
    const shapeError = (await read(rawSafetensors(longShape, 1)).catch((e: unknown) => e)) as Error;
    expect(shapeError.message).toMatch(/got \[1\.0, 1\.0, .*… \(\d+ more characters\)/);
    expect(shapeError.message.length).toBeLessThan(1000);
  });
});
