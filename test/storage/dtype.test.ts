import { describe, expect, it } from 'vitest';
import {
  DTYPE_SIZES,
  decodeToF32,
  encodeFromF32,
  safetensorsDtypeFromConfig,
  type FloatDtype,
} from '../../src/storage';

/** f32 values from bit patterns (Float32Array built from the bits, so NaN payloads survive). */
const f32 = (...bits: number[]): Float32Array => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (values: Float32Array): number[] => [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
const u16sOf = (bytes: Uint8Array): number[] => [...new Uint16Array(bytes.slice().buffer)];
const u16Bytes = (...halves: number[]): Uint8Array => new Uint8Array(new Uint16Array(halves).buffer);

const encode16 = (dtype: 'F16' | 'BF16', ...bits: number[]): number[] => u16sOf(encodeFromF32(f32(...bits), dtype));

/** Round half to even of a double, the reference for both encoders. */
function roundHalfEven(q: number): number {
  const floor = Math.floor(q);
  const diff = q - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The value a correctly rounded conversion of finite f32 `bits` gives, computed in doubles:
 * quantise to the target's step at that exponent (`mantissaBits`, `minExponent`), Inf past `max`.
 */
function referenceRound(bits: number, mantissaBits: number, minExponent: number, overflowAt: number): number {
  const value = f32(bits)[0];
  const biased = (bits >>> 23) & 0xff;
  const exponent = Math.max(biased === 0 ? -126 : biased - 127, minExponent);
  const step = 2 ** (exponent - mantissaBits);
  const rounded = roundHalfEven(value / step) * step;
  return Math.abs(rounded) >= overflowAt ? Math.sign(value) * Infinity : rounded;
}

/** A deterministic stream of random u32s (xorshift32). */
function* randomU32(seed: number, count: number): Generator<number> {
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    yield x;
  }
}

describe('dtype sizes and names', () => {
  it('knows the element size of every dtype', () => {
    expect(DTYPE_SIZES).toEqual({
      F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1,
      U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
    });
  });

  it('maps config dtype names, with or without torch.', () => {
    expect(safetensorsDtypeFromConfig('bfloat16')).toBe('BF16');
    expect(safetensorsDtypeFromConfig('float16')).toBe('F16');
    expect(safetensorsDtypeFromConfig('torch.float32')).toBe('F32');
    expect(safetensorsDtypeFromConfig('int64')).toBe('I64');
    expect(() => safetensorsDtypeFromConfig('fp16')).toThrow(/unknown dtype "fp16": use one of bfloat16, float16/);
  });
});

describe('bf16', () => {
  it('rounds to nearest, ties to even', () => {
    expect(encode16('BF16', 0x3f808000)).toEqual([0x3f80]); // tie, even stays
    expect(encode16('BF16', 0x3f818000)).toEqual([0x3f82]); // tie, odd rounds up
    expect(encode16('BF16', 0x3f808001)).toEqual([0x3f81]); // just above the tie
    expect(encode16('BF16', 0x3f807fff)).toEqual([0x3f80]); // just below
    expect(encode16('BF16', 0xbf818000)).toEqual([0xbf82]); // negative ties
    expect(encode16('BF16', 0x3fffffff)).toEqual([0x4000]); // carry into the exponent
  });

  it('keeps Inf, overflows to Inf, keeps NaN quiet with its sign', () => {
    expect(encode16('BF16', 0x7f800000, 0xff800000)).toEqual([0x7f80, 0xff80]);
    expect(encode16('BF16', 0x7f7fffff, 0xff7fffff)).toEqual([0x7f80, 0xff80]);
    expect(encode16('BF16', 0x7f7f7fff)).toEqual([0x7f7f]); // largest that stays finite
    expect(encode16('BF16', 0x7fc00000, 0xffc00000)).toEqual([0x7fc0, 0xffc0]);
    // A NaN whose payload is only in the low bits must not become Inf.
    expect(encode16('BF16', 0x7f800001, 0xff800001)).toEqual([0x7fc0, 0xffc0]);
    expect(encode16('BF16', 0x7fa50000)).toEqual([0x7fe5]);
  });

  it('rounds f32 subnormals exactly and keeps signed zeros', () => {
    expect(encode16('BF16', 0x00000000, 0x80000000)).toEqual([0x0000, 0x8000]);
    expect(encode16('BF16', 0x00000001)).toEqual([0x0000]);
    expect(encode16('BF16', 0x00008000, 0x00018000)).toEqual([0x0000, 0x0002]);
    expect(encode16('BF16', 0x00010000, 0x807f8000)).toEqual([0x0001, 0x8080]);
  });

  it('decodes exactly, NaN and subnormals included', () => {
    const decoded = decodeToF32(u16Bytes(0x3f80, 0xc000, 0x0001, 0x8000, 0x7f80, 0xffc1), 'BF16');
    expect(bitsOf(decoded)).toEqual([0x3f800000, 0xc0000000, 0x00010000, 0x80000000, 0x7f800000, 0xffc10000]);
  });

  it('matches a reference rounding on random values', () => {
    const bits = Uint32Array.from(randomU32(12345, 200_000));
    const encoded = encodeFromF32(new Float32Array(bits.buffer), 'BF16');
    const decoded = decodeToF32(encoded, 'BF16');
    for (let i = 0; i < bits.length; i++) {
      if (Number.isNaN(f32(bits[i])[0])) {
        expect(Number.isNaN(decoded[i])).toBe(true);
        continue;
      }
      const expected = referenceRound(bits[i], 7, -126, 2 ** 128);
      if (decoded[i] !== expected) expect([i, bits[i].toString(16), decoded[i]]).toEqual([i, bits[i].toString(16), expected]);
    }
  });
});

describe('f16', () => {
  it('rounds to nearest, ties to even', () => {
    expect(encode16('F16', 0x3f800000)).toEqual([0x3c00]); // 1.0
    expect(encode16('F16', 0x3f801000)).toEqual([0x3c00]); // 1 + 2^-11: tie, even stays
    expect(encode16('F16', 0x3f803000)).toEqual([0x3c02]); // 1 + 3·2^-11: tie, odd rounds up
    expect(encode16('F16', 0x3f801001)).toEqual([0x3c01]);
    expect(encode16('F16', 0xc0490fdb)).toEqual([0xc248]); // -π
  });

  it('handles the top of the range: max, ties to Inf, overflow, Inf, NaN', () => {
    expect(encode16('F16', 0x477fe000)).toEqual([0x7bff]); // 65504, the largest f16
    expect(encode16('F16', 0x477fefff)).toEqual([0x7bff]); // just below 65520
    expect(encode16('F16', 0x477ff000, 0xc77ff000)).toEqual([0x7c00, 0xfc00]); // 65520: tie to Inf
    expect(encode16('F16', 0x49742400)).toEqual([0x7c00]); // 1e6
    expect(encode16('F16', 0x7f800000, 0xff800000)).toEqual([0x7c00, 0xfc00]);
    expect(encode16('F16', 0x7fc00000, 0xffc00000)).toEqual([0x7e00, 0xfe00]);
    expect(encode16('F16', 0x7f800001)).toEqual([0x7e00]); // signalling NaN stays NaN, made quiet
    expect(encode16('F16', 0x7fc02000)).toEqual([0x7e01]); // payload kept
  });

  it('rounds into and out of the subnormal range exactly', () => {
    expect(encode16('F16', 0x38800000)).toEqual([0x0400]); // 2^-14, smallest normal
    expect(encode16('F16', 0x33800000)).toEqual([0x0001]); // 2^-24, smallest subnormal
    expect(encode16('F16', 0x33000000, 0xb3000000)).toEqual([0x0000, 0x8000]); // 2^-25: tie to 0
    expect(encode16('F16', 0x33000001)).toEqual([0x0001]); // just above the tie
    expect(encode16('F16', 0x32ffffff)).toEqual([0x0000]);
    expect(encode16('F16', 0x33c00000)).toEqual([0x0002]); // 1.5·2^-24: tie, odd rounds up
    expect(encode16('F16', 0x34200000)).toEqual([0x0002]); // 2.5·2^-24: tie, even stays
    expect(encode16('F16', 0x387fc000)).toEqual([0x03ff]); // largest subnormal
    expect(encode16('F16', 0x387fe000)).toEqual([0x0400]); // 1023.5·2^-24 rounds up to normal
    expect(encode16('F16', 0x00000001, 0x80400000)).toEqual([0x0000, 0x8000]); // f32 subnormals
  });

  it('decodes all 65536 values exactly and re-encodes each to itself', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeToF32(new Uint8Array(all.buffer), 'F16');
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >>> 10) & 0x1f;
      const mantissa = h & 0x3ff;
      let expected: number;
      if (exponent === 0x1f) expected = mantissa === 0 ? sign * Infinity : NaN;
      else if (exponent === 0) expected = sign * mantissa * 2 ** -24;
      else expected = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
      if (Number.isNaN(expected)) {
        // NaN: quiet, sign and payload kept.
        expect(bitsOf(decoded.subarray(h, h + 1))[0]).toBe(((h & 0x8000) << 16 | 0x7fc00000 | (mantissa << 13)) >>> 0);
      } else if (!Object.is(decoded[h], expected)) {
        expect([h, decoded[h]]).toEqual([h, expected]);
      }
    }
    const reencoded = new Uint16Array(encodeFromF32(decoded, 'F16').buffer);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      const expected = isNaN ? h | 0x200 : h;
      if (reencoded[h] !== expected) expect([h, reencoded[h]]).toEqual([h, expected]);
    }
  });

  it('matches a reference rounding on random values around the f16 range', () => {
    // Exponents 2^-30..2^17 cover zero-rounding, subnormal, normal and overflow cases.
    const bits = Uint32Array.from(randomU32(987, 300_000), (r) => (r & 0x807fffff) | ((97 + (r % 48)) << 23));
    const decoded = decodeToF32(encodeFromF32(new Float32Array(bits.buffer), 'F16'), 'F16');
    for (let i = 0; i < bits.length; i++) {
      const expected = referenceRound(bits[i], 10, -14, 65520);
      if (!Object.is(decoded[i], expected) && !(decoded[i] === 0 && expected === 0)) {
        expect([bits[i].toString(16), decoded[i]]).toEqual([bits[i].toString(16), expected]);
      }
    }
  });
});

describe('codec buffers', () => {
  const values = f32(0x3f800000, 0xc0490fdb, 0x00000001, 0x7fc00001, 0x477fe000, 0x80000000, 0x3eaaaaab);

  for (const dtype of ['F32', 'F16', 'BF16'] as FloatDtype[]) {
    it(`${dtype}: decodes and encodes at unaligned offsets like at aligned ones`, () => {
      const encoded = encodeFromF32(values, dtype);
      const reference = bitsOf(decodeToF32(encoded, dtype));
      for (const shift of [1, 2, 3, 5]) {
        const backing = new Uint8Array(encoded.byteLength + 8);
        const unaligned = backing.subarray(shift, shift + encoded.byteLength);
        unaligned.set(encoded);
        expect(bitsOf(decodeToF32(unaligned, dtype))).toEqual(reference);
        // Encoding into an unaligned output view writes the same bytes, and nothing around them.
        const outBacking = new Uint8Array(encoded.byteLength + 8).fill(0xaa);
        const out = outBacking.subarray(shift, shift + encoded.byteLength);
        expect(encodeFromF32(values, dtype, out)).toBe(out);
        expect([...out]).toEqual([...encoded]);
        expect(outBacking[shift - 1]).toBe(0xaa);
        expect(outBacking[shift + encoded.byteLength]).toBe(0xaa);
      }
    });

    it(`${dtype}: fills a given output and returns it cut to length`, () => {
      const encoded = encodeFromF32(values, dtype);
      const out = new Float32Array(values.length + 3);
      const decoded = decodeToF32(encoded, dtype, out);
      expect(decoded.buffer).toBe(out.buffer);
      expect(decoded.length).toBe(values.length);
      expect(() => decodeToF32(encoded, dtype, new Float32Array(2))).toThrow(/holds 2 elements, 7 needed/);
      expect(() => encodeFromF32(values, dtype, new Uint8Array(3))).toThrow(/holds 3 bytes/);
      // The result never aliases the input.
      expect(decodeToF32(encoded, dtype).buffer).not.toBe(encoded.buffer);
    });
  }

  it('F32 round trips bit for bit, NaN payloads included', () => {
    expect(bitsOf(decodeToF32(encodeFromF32(values, 'F32'), 'F32'))).toEqual(bitsOf(values));
  });

  it('rejects a byte count that is not a whole number of elements', () => {
    expect(() => decodeToF32(new Uint8Array(3), 'F16')).toThrow(/3 bytes is not a whole number of F16 elements/);
    expect(() => decodeToF32(new Uint8Array(6), 'F32')).toThrow(/F32 elements \(4 bytes each\)/);
  });
});
