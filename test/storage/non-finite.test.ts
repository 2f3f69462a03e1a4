import { describe, expect, it } from 'vitest';
import { countNonFinite, type NonFiniteCounts, type SafetensorsDtype } from '../../src/storage';
import { bf16BitsToF32, f16BitsToF32 } from '../fixtures/safetensors';
import { mulberry32 } from '../fixtures/models';

const counts = (nan: number, posInf: number, negInf: number): NonFiniteCounts => ({ nan, posInf, negInf });

/** Classifies decoded numbers with JavaScript's own tests: the independent expectation. */
function classify(values: Iterable<number>): NonFiniteCounts {
  const c = counts(0, 0, 0);
  for (const v of values) {
    if (Number.isNaN(v)) c.nan++;
    else if (v === Infinity) c.posInf++;
    else if (v === -Infinity) c.negInf++;
  }
  return c;
}

const u16Bytes = (...halves: number[]): Uint8Array => new Uint8Array(new Uint16Array(halves).buffer);
const u32Bytes = (...words: number[]): Uint8Array => new Uint8Array(new Uint32Array(words).buffer);

/** `bytes` copied to byte offset `offset` of a larger buffer (typed views there are misaligned). */
function at(bytes: Uint8Array, offset: number): Uint8Array {
  const host = new Uint8Array(bytes.length + offset + 3);
  host.fill(0xff); // NaN bytes around the slice: counting must stay inside it
  host.set(bytes, offset);
  return host.subarray(offset, offset + bytes.length);
}

describe('countNonFinite', () => {
  it('bf16 and f16: every one of the 65,536 bit patterns, at every alignment', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(all.buffer);
    for (const [dtype, decode] of [['BF16', bf16BitsToF32], ['F16', f16BitsToF32]] as const) {
      const expected = classify(Array.from(all, decode));
      for (const offset of [0, 1, 2, 3]) expect(countNonFinite(at(bytes, offset), dtype), `${dtype} at ${offset}`).toEqual(expected);
    }
    // Hand count: bf16 has 8 exponent-all-ones patterns × 2 signs × 128 mantissas, of which one
    // mantissa per sign is Inf; f16 has 1024 mantissas.
    expect(countNonFinite(bytes, 'BF16')).toEqual(counts(2 * 127, 1, 1));
    expect(countNonFinite(bytes, 'F16')).toEqual(counts(2 * 1023, 1, 1));
  });

  it('bf16: NaN with payloads, ±Inf, max finite, subnormals and signed zeros, by hand', () => {
    const bits = [
      0x7f80, // +Inf
      0xff80, // -Inf
      0x7fc0, // quiet NaN
      0x7f81, // signalling NaN, smallest payload
      0xffff, // negative NaN, full payload
      0x7f7f, // max finite
      0xff7f, // -max finite
      0x0001, // smallest subnormal
      0x807f, // negative subnormal
      0x0000,
      0x8000,
      0x3f80, // 1
    ];
    expect(countNonFinite(u16Bytes(...bits), 'BF16')).toEqual(counts(3, 1, 1));
  });

  it('f16: NaN with payloads, ±Inf, max finite (65504), subnormals, by hand', () => {
    const bits = [0x7c00, 0xfc00, 0xfc00, 0x7e00, 0x7c01, 0xfdff, 0x7bff, 0xfbff, 0x0001, 0x83ff, 0x0000, 0x3c00, 0x7f80 /* an f16 NaN, not a bf16 Inf */];
    expect(countNonFinite(u16Bytes(...bits), 'F16')).toEqual(counts(4, 1, 2));
  });

  it('f32: NaN with payloads, ±Inf, max finite, subnormals, by hand and on random bits', () => {
    const bits = [0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x7fbfffff, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x807fffff, 0x80000000, 0x3f800000];
    expect(countNonFinite(u32Bytes(...bits), 'F32')).toEqual(counts(4, 1, 1));
    const random = mulberry32(7);
    const words = new Uint32Array(4099); // odd length
    for (let i = 0; i < words.length; i++) {
      const w = Math.floor(random() * 2 ** 32);
      // One word in eight gets an all-ones exponent so every class appears often.
      words[i] = i % 8 === 0 ? (w | 0x7f800000) >>> 0 : w;
    }
    words[16] = 0x7f800000;
    words[24] = 0xff800000;
    const bytes = new Uint8Array(words.buffer);
    const expected = classify(new Float32Array(words.buffer));
    expect(expected.posInf + expected.negInf).toBeGreaterThanOrEqual(2);
    expect(expected.nan).toBeGreaterThan(400);
    for (const offset of [0, 1, 2, 3]) expect(countNonFinite(at(bytes, offset), 'F32'), `at ${offset}`).toEqual(expected);
  });

  it('finds a single non-finite element at every position of odd-length inputs', () => {
    for (const [dtype, inf, nan, size] of [['BF16', 0xff80, 0x7fc1, 2], ['F16', 0xfc00, 0x7c01, 2], ['F32', 0xff800000, 0x7f800001, 4]] as const) {
      for (let n = 1; n <= 9; n++) {
        for (let k = 0; k < n; k++) {
          for (const offset of [0, 1, 2]) {
            const words = size === 2 ? new Uint16Array(n).fill(0x3c00) : new Uint32Array(n).fill(0x3f800000);
            words[k] = inf;
            expect(countNonFinite(at(new Uint8Array(words.buffer), offset), dtype), `${dtype} n=${n} k=${k} +${offset}`).toEqual(counts(0, 0, 1));
            words[k] = nan;
            expect(countNonFinite(at(new Uint8Array(words.buffer), offset), dtype)).toEqual(counts(1, 0, 0));
          }
        }
      }
      expect(countNonFinite(new Uint8Array(0), dtype)).toEqual(counts(0, 0, 0));
    }
  });

  it('misaligned input longer than the scratch block (64 KiB) is counted across blocks', () => {
    const n = 100_003;
    const words = new Uint16Array(n).fill(0x3f80);
    for (const k of [0, 32767, 32768, 32769, 65535, n - 1]) words[k] = 0x7f80;
    words[50_000] = 0xffc0;
    expect(countNonFinite(at(new Uint8Array(words.buffer), 1), 'BF16')).toEqual(counts(1, 6, 0));
  });

  it('f64 and float8, by hand; integers and bool have none', () => {
    const f64 = new Float64Array([Infinity, -Infinity, NaN, 1.7976931348623157e308, 5e-324, -0, 1]);
    const f64Bytes = new Uint8Array(f64.buffer);
    // A NaN whose only payload bit is in the low word.
    const lowPayload = u32Bytes(0x00000001, 0x7ff00000);
    expect(countNonFinite(f64Bytes, 'F64')).toEqual(counts(1, 1, 1));
    expect(countNonFinite(at(lowPayload, 3), 'F64')).toEqual(counts(1, 0, 0));
    // E5M2: exponent bits 0x7c; 0x7c/0xfc are ±Inf, 0x7d..0x7f NaN. E4M3fn: only 0x7f/0xff are NaN.
    expect(countNonFinite(new Uint8Array([0x7c, 0xfc, 0x7d, 0xff, 0x7b, 0x00]), 'F8_E5M2')).toEqual(counts(2, 1, 1));
    expect(countNonFinite(new Uint8Array([0x7f, 0xff, 0x7e, 0x78, 0x00]), 'F8_E4M3')).toEqual(counts(2, 0, 0));
    for (const dtype of ['I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL'] as SafetensorsDtype[]) {
      expect(countNonFinite(new Uint8Array(16).fill(0xff), dtype)).toEqual(counts(0, 0, 0));
    }
  });

  it('refuses a length that is not a whole number of elements', () => {
    expect(() => countNonFinite(new Uint8Array(3), 'BF16')).toThrow(/3 bytes is not a whole number of BF16 elements/);
    expect(() => countNonFinite(new Uint8Array(6), 'F32')).toThrow(RangeError);
  });
});
