/**
 * Seeded fuzz test of the safetensors reader: a few hundred mutations of one valid file. Each must
 * be refused with a SafetensorsError that names the file (short, no control characters), or be
 * valid by the format's rules, checked here independently of the reader. Every input is a few kB
 * at most, so each case is small by construction.
 */
import { describe, expect, it } from 'vitest';
import { DTYPE_SIZES, MemoryByteSource, SafetensorsError, readSafetensorsHeader, type SafetensorsDtype } from '../../src/storage';
import { mulberry32 } from '../fixtures/models';
import { rawSafetensors } from './helpers';

const FILE = 'fuzz.safetensors';
const CASES = 400;

const HEADER = {
  __metadata__: { format: 'pt', note: 'fuzz' },
  'model.embed_tokens.weight': { dtype: 'BF16', shape: [4, 3], data_offsets: [0, 24] },
  'model.norm.weight': { dtype: 'F32', shape: [3], data_offsets: [24, 36] },
  'lm_head.weight': { dtype: 'F16', shape: [2, 3], data_offsets: [36, 48] },
  position_ids: { dtype: 'I64', shape: [1, 2], data_offsets: [48, 64] },
  scalar: { dtype: 'F32', shape: [], data_offsets: [64, 68] },
};
const DATA_BYTES = 68;

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);

const NUMBER_FORMS = ['64e0', '174464.0', '-0', '-1', '1e999', '18446744073709551616', '9007199254740993', '0', '1', '3', '24', '68', '00', '1.5', '2E1'];
const JSON_NOISE = ['{', '}', '[', ']', ',', ':', '"', '\\', '\\u0000', '\\ud800', 'null', 'true', ' ', '\u0000', '\u001b[31m', '"__metadata__": {}', '"dtype": "F32"'];

/** One mutation of the valid file: bytes, text, or JSON structure. */
function mutate(rng: Rng): Uint8Array {
  const text = JSON.stringify(HEADER);
  const file = rawSafetensors(text, new Uint8Array(DATA_BYTES).map((_, i) => i));
  switch (int(rng, 9)) {
    case 0: {
      // Flip bytes anywhere (the length prefix included).
      const out = file.slice();
      for (let k = 1 + int(rng, 4); k > 0; k--) out[int(rng, out.length)] ^= 1 << int(rng, 8);
      return out;
    }
    case 1:
      // Truncate or extend.
      return rng() < 0.5 ? file.slice(0, int(rng, file.length)) : rawSafetensors(text, DATA_BYTES + 1 + int(rng, 8));
    case 2: {
      // Replace one number of the header with another spelling or value.
      const numbers = [...text.matchAll(/\d+/g)];
      const m = pick(rng, numbers);
      return rawSafetensors(text.slice(0, m.index) + pick(rng, NUMBER_FORMS) + text.slice(m.index! + m[0].length), DATA_BYTES);
    }
    case 3: {
      // Insert JSON noise.
      const at = int(rng, text.length + 1);
      return rawSafetensors(text.slice(0, at) + pick(rng, JSON_NOISE) + text.slice(at), DATA_BYTES);
    }
    case 4: {
      // Delete a run of characters.
      const at = int(rng, text.length);
      return rawSafetensors(text.slice(0, at) + text.slice(at + 1 + int(rng, 12)), DATA_BYTES);
    }
    case 5: {
      // Repeat a key or a tensor field.
      const key = pick(rng, ['"__metadata__": {"a": "b"}', '"scalar": {"dtype": "F32", "shape": [], "data_offsets": [64, 68]}', '"x": {"dtype": "U8", "shape": [0], "data_offsets": [68, 68]}']);
      const field = pick(rng, ['"dtype": "F32", ', '"shape": [3], ', '"data_offsets": [24, 36], ', '"extra": [[1]], ']);
      return rng() < 0.5
        ? rawSafetensors(`{${key}, ${text.slice(1)}`, DATA_BYTES)
        : rawSafetensors(text.replace('"model.norm.weight":{', `"model.norm.weight":{${field}`), DATA_BYTES);
    }
    case 6: {
      // Nest deeply somewhere.
      const depth = pick(rng, [1, 50, 126, 127, 128, 129, 1000, 5000]);
      const open = rng() < 0.5 ? '['.repeat(depth) : '{"a":'.repeat(depth);
      const close = open.startsWith('[') ? ']'.repeat(depth) : '}'.repeat(depth);
      const where = pick(rng, ['"note":"fuzz"', '"shape":[3]']);
      const replacement = where.startsWith('"note"') ? `"note":${open}${close}` : `"shape":${open}3${close}`;
      return rawSafetensors(text.replace(where.replace(':', ':'), replacement), DATA_BYTES);
    }
    case 7: {
      // Change a dtype, or a tensor name to something hostile.
      const name = pick(rng, ['\u001b[2J', 'a'.repeat(5000), '__proto__', '', '\u202eevil', 'constructor']);
      return rng() < 0.5
        ? rawSafetensors(text.replace('"F16"', JSON.stringify(pick(rng, ['F64', 'U8', 'BOOL', 'F8_E4M3', 'Q4', 'f16', '']))), DATA_BYTES)
        : rawSafetensors(text.replace('"scalar"', JSON.stringify(name)), DATA_BYTES);
    }
    default: {
      // Swap two tensors' offsets, or a random length prefix.
      if (rng() < 0.5) return rawSafetensors(text.replace('[24,36]', '[36,48]').replace('"data_offsets":[36,48]}', '"data_offsets":[24,36]}'), DATA_BYTES);
      const out = file.slice();
      new DataView(out.buffer).setBigUint64(0, BigInt(int(rng, text.length + 40)), true);
      return out;
    }
  }
}

/** The format's rules, checked on an accepted file without the reader's code. */
function checkValid(bytes: Uint8Array, result: Awaited<ReturnType<typeof readSafetensorsHeader>>): void {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  expect(8 + n).toBeLessThanOrEqual(bytes.length);
  expect(result.dataOffset).toBe(8 + n);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  const dataSize = bytes.length - 8 - n;
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  expect(result.tensors.map((t) => t.name).sort()).toEqual([...names].sort());
  let covered = 0;
  for (const t of [...result.tensors].sort((a, b) => a.offset - b.offset)) {
    const entry = json[t.name] as { dtype: SafetensorsDtype; shape: number[]; data_offsets: [number, number] };
    expect(t.dtype).toBe(entry.dtype);
    expect(t.shape).toEqual(entry.shape);
    const [begin, end] = entry.data_offsets;
    expect(t.offset).toBe(8 + n + begin);
    expect(begin).toBe(covered);
    expect(end - begin).toBe(entry.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[entry.dtype]);
    expect(t.byteLength).toBe(end - begin);
    covered = end;
  }
  expect(covered).toBe(dataSize);
  const metadata = json.__metadata__;
  if (metadata !== undefined && metadata !== null) {
    expect(Object.values(metadata as object).every((v) => typeof v === 'string')).toBe(true);
  }
}

describe('safetensors reader fuzz (seeded)', () => {
  it(`refuses or correctly reads ${CASES} mutations of a valid file`, async () => {
    const rng = mulberry32(20261206);
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const bytes = mutate(rng);
      const outcome = await readSafetensorsHeader(new MemoryByteSource(FILE, bytes), FILE, { model: 'fuzz/model' }).then(
        (header) => ({ header }),
        (error: unknown) => ({ error }),
      );
      if ('header' in outcome) {
        checkValid(bytes, outcome.header);
        accepted++;
        continue;
      }
      const error = outcome.error;
      expect(error, `case ${i}: ${String(error)}`).toBeInstanceOf(SafetensorsError);
      const message = (error as SafetensorsError).message;
      expect(message.startsWith(`model "fuzz/model", file "${FILE}"`), `case ${i}: ${message}`).toBe(true);
      expect(message.length, `case ${i}`).toBeLessThan(1200);
      expect(message, `case ${i}`).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
      expect(message, `case ${i}`).toMatch(/re-download|re-save|convert/);
      refused++;
    }
    // Both outcomes occur (a fuzz test that only ever refuses checks little).
    expect(accepted).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(CASES / 2);
  });
});
