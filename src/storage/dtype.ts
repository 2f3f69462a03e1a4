import type { FloatDtype, SafetensorsDtype } from './types';

/**
 * Element sizes and the f32 <-> F32/F16/BF16 codecs.
 *
 * These loops run over every byte of every model, so they avoid per-element function calls and
 * work on 16/32-bit integer views of the data. They assume a little-endian host, as safetensors
 * data is little-endian and every platform Alloy targets (x86-64, ARM64 in browsers and Node) is.
 */

/** Bytes per element of each safetensors dtype. */
export const DTYPE_SIZES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, value);
}

export function isFloatDtype(dtype: SafetensorsDtype): dtype is FloatDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

export function dtypeSize(dtype: SafetensorsDtype): number {
  return DTYPE_SIZES[dtype];
}

/** dtype names as written in mergekit configs (`dtype:` / `out_dtype:`). */
export type ConfigDtypeName = 'bfloat16' | 'float16' | 'float32' | 'int64';

const CONFIG_TO_SAFETENSORS: Readonly<Record<ConfigDtypeName, SafetensorsDtype>> = {
  bfloat16: 'BF16',
  float16: 'F16',
  float32: 'F32',
  int64: 'I64',
};

/**
 * Maps a mergekit config dtype name to the safetensors name. Like mergekit's `dtype_from_name`,
 * an optional `torch.` prefix is accepted and anything else is an error.
 */
export function safetensorsDtypeFromConfig(name: string): SafetensorsDtype {
  const bare = name.startsWith('torch.') ? name.slice('torch.'.length) : name;
  if (Object.prototype.hasOwnProperty.call(CONFIG_TO_SAFETENSORS, bare)) {
    return CONFIG_TO_SAFETENSORS[bare as ConfigDtypeName];
  }
  throw new Error(
    `unknown dtype "${name}": use one of ${Object.keys(CONFIG_TO_SAFETENSORS).join(', ')}`,
  );
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndian(): void {
  if (!LITTLE_ENDIAN) {
    throw new Error('Alloy needs a little-endian CPU to decode safetensors data');
  }
}

/**
 * f16 bit pattern -> f32 bit pattern for all 65536 inputs. Built on first use (256 KiB).
 * A table beats bit twiddling here because f16 subnormals need a normalisation loop.
 */
let f16Table: Uint32Array | null = null;

function buildF16Table(): Uint32Array {
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    let bits: number;
    if (exp === 0x1f) {
      // Inf stays Inf; NaN keeps its payload and is made quiet, as hardware conversions do.
      bits = mant === 0 ? 0x7f800000 : 0x7fc00000 | (mant << 13);
    } else if (exp !== 0) {
      bits = ((exp + 112) << 23) | (mant << 13);
    } else if (mant === 0) {
      bits = 0;
    } else {
      // Subnormal: shift the mantissa up until its leading 1 becomes the implicit bit.
      let e = 113;
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      bits = (e << 23) | ((mant & 0x3ff) << 13);
    }
    table[h] = (sign | bits) >>> 0;
  }
  return table;
}

function elementCount(bytes: Uint8Array, size: number, dtype: FloatDtype): number {
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(
      `${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`,
    );
  }
  return bytes.byteLength / size;
}

function outputArray(out: Float32Array | undefined, n: number): Float32Array {
  if (!out) return new Float32Array(n);
  if (out.length < n) {
    throw new RangeError(`output array holds ${out.length} elements, ${n} needed`);
  }
  return out.length === n ? out : out.subarray(0, n);
}

/**
 * A 16-bit view of `bytes`. Typed-array views need aligned offsets, so misaligned input (a
 * tensor at an odd offset inside a larger read) is first copied to a fresh buffer.
 */
function u16View(bytes: Uint8Array, n: number): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  return new Uint16Array(bytes.slice().buffer, 0, n);
}

/**
 * Decodes little-endian F32/F16/BF16 bytes to f32 values. `bytes` may start at any offset.
 * The result never aliases `bytes`; when `out` is given it is filled (and returned, cut to length).
 */
export function decodeToF32(bytes: Uint8Array, dtype: FloatDtype, out?: Float32Array): Float32Array {
  assertLittleEndian();
  switch (dtype) {
    case 'F32': {
      const n = elementCount(bytes, 4, dtype);
      const result = outputArray(out, n);
      // A byte copy is both the fast path and the misaligned path, and keeps NaN payloads intact.
      new Uint8Array(result.buffer, result.byteOffset, n * 4).set(bytes);
      return result;
    }
    case 'BF16': {
      const n = elementCount(bytes, 2, dtype);
      const result = outputArray(out, n);
      const src = u16View(bytes, n);
      const dst = new Uint32Array(result.buffer, result.byteOffset, n);
      // bf16 is the top half of an f32: NaN, Inf and subnormals need nothing special.
      for (let i = 0; i < n; i++) dst[i] = src[i] << 16;
      return result;
    }
    case 'F16': {
      const n = elementCount(bytes, 2, dtype);
      const result = outputArray(out, n);
      const src = u16View(bytes, n);
      const dst = new Uint32Array(result.buffer, result.byteOffset, n);
      const table = f16Table ?? (f16Table = buildF16Table());
      for (let i = 0; i < n; i++) dst[i] = table[src[i]];
      return result;
    }
    default:
      throw new Error(`cannot decode dtype ${String(dtype)} to f32`);
  }
}

/**
 * Encodes f32 values to little-endian F32/F16/BF16 bytes, rounding to nearest, ties to even.
 * NaN stays a quiet NaN with its sign, ±Inf and subnormals are exact, f16 overflow gives ±Inf.
 * `out` may start at any offset; when given it is filled (and returned, cut to length).
 */
export function encodeFromF32(values: Float32Array, dtype: FloatDtype, out?: Uint8Array): Uint8Array {
  assertLittleEndian();
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new Error(`cannot encode f32 values as dtype ${String(dtype)}`);
  }
  const n = values.length;
  const size = dtype === 'F32' ? 4 : 2;
  let result: Uint8Array;
  if (out) {
    if (out.length < n * size) {
      throw new RangeError(`output buffer holds ${out.length} bytes, ${n * size} needed`);
    }
    result = out.length === n * size ? out : out.subarray(0, n * size);
  } else {
    result = new Uint8Array(n * size);
  }
  if (dtype === 'F32') {
    result.set(new Uint8Array(values.buffer, values.byteOffset, n * 4));
    return result;
  }
  // Read the f32 bit patterns directly so NaN payloads are never canonicalised by a JS number.
  const src = new Uint32Array(values.buffer, values.byteOffset, n);
  // Encode straight into `result` when it is 2-byte aligned, else into a scratch array.
  const aligned = result.byteOffset % 2 === 0;
  const dst = aligned ? new Uint16Array(result.buffer, result.byteOffset, n) : new Uint16Array(n);
  if (dtype === 'BF16') encodeBf16(src, dst, n);
  else encodeF16(src, dst, n);
  if (!aligned) result.set(new Uint8Array(dst.buffer));
  return result;
}

function encodeBf16(src: Uint32Array, dst: Uint16Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = src[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      // NaN: truncation could clear every mantissa bit and make it Inf, so force the quiet bit.
      dst[i] = (x >>> 16) | 0x40;
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry into the exponent
      // is the correct result (up to Inf for the largest finite values). Cannot pass 2^32.
      dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
}

function encodeF16(src: Uint32Array, dst: Uint16Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = src[i];
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    let h: number;
    if (abs >= 0x38800000) {
      if (abs >= 0x477ff000) {
        // >= 65520 (halfway between f16 max 65504 and 2^16) rounds to Inf, as do Inf and NaN.
        h = abs > 0x7f800000 ? 0x7e00 | ((abs >>> 13) & 0x3ff) : 0x7c00;
      } else {
        // Normal f16: rebias the exponent (127 -> 15) and round off 13 mantissa bits, ties to
        // even by the same add-and-carry trick as bf16 (a carry into the exponent is correct).
        h = (abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13;
      }
    } else if (abs >= 0x33000000) {
      // f16 subnormal (or rounds up to the smallest normal): value = mant * 2^(e-150) and
      // the f16 step is 2^-24, so shift the full 24-bit mantissa right by 126 - e (14..24).
      const e = abs >>> 23;
      const mant = (abs & 0x7fffff) | 0x800000;
      const shift = 126 - e;
      const half = 1 << (shift - 1);
      const rest = mant & ((half << 1) - 1);
      h = mant >>> shift;
      if (rest > half || (rest === half && (h & 1) !== 0)) h++;
    } else {
      // Below 2^-25 (half the smallest subnormal) everything rounds to a signed zero.
      h = 0;
    }
    dst[i] = sign | h;
  }
}
