import { dtypeSize } from './dtype';
import type { FloatDtype, SafetensorsDtype } from './types';

/** How many elements of some tensor bytes are NaN, +Inf and -Inf. */
export interface NonFiniteCounts {
  nan: number;
  posInf: number;
  negInf: number;
}

export function noNonFinite(): NonFiniteCounts {
  return { nan: 0, posInf: 0, negInf: 0 };
}

export function nonFiniteTotal(c: Readonly<NonFiniteCounts>): number {
  return c.nan + c.posInf + c.negInf;
}

/** Adds `b` into `into` and returns it. */
export function addNonFinite(into: NonFiniteCounts, b: Readonly<NonFiniteCounts>): NonFiniteCounts {
  into.nan += b.nan;
  into.posInf += b.posInf;
  into.negInf += b.negInf;
  return into;
}

/**
 * Per-format bit layout of the 16/32-bit float words. `exp` is the exponent field and `carry` its
 * lowest bit, so `(w & exp) + carry` sets the word's top bit exactly when the exponent is all ones
 * (Inf or NaN). The common case, no non-finite value at all, is then one AND, ADD and OR per
 * 32-bit word (two 16-bit elements at once) with no branch; only the rare bytes that have some
 * are classified element by element.
 */
export interface WordLayout {
  readonly bytes: 2 | 4;
  readonly exp: number;
  readonly carry: number;
  readonly mantissa: number;
  readonly sign: number;
}

const BF16: WordLayout = { bytes: 2, exp: 0x7f80, carry: 0x0080, mantissa: 0x007f, sign: 0x8000 };
const F16: WordLayout = { bytes: 2, exp: 0x7c00, carry: 0x0400, mantissa: 0x03ff, sign: 0x8000 };
const F32: WordLayout = { bytes: 4, exp: 0x7f800000, carry: 0x00800000, mantissa: 0x007fffff, sign: 0x80000000 };

/** The bit layout of a 16/32-bit float dtype's words (also for the SIMD backend's counting kernel). */
export function wordLayout(dtype: FloatDtype): WordLayout {
  return dtype === 'BF16' ? BF16 : dtype === 'F16' ? F16 : F32;
}

/** Misaligned bytes are scanned through an aligned scratch copy this large at a time. */
const SCRATCH_BYTES = 64 * 1024;

/**
 * Counts the NaN, +Inf and -Inf elements of little-endian tensor bytes in `dtype`. `bytes` may
 * start at any offset; its length must be a whole number of elements. Integer and bool dtypes
 * have none. Float8 follows PyTorch: E5M2 has Inf and NaN as f16 does, E4M3 (the "fn" variant)
 * has no Inf and NaN only as S.1111.111.
 */
export function countNonFinite(bytes: Uint8Array, dtype: SafetensorsDtype): NonFiniteCounts {
  const size = dtypeSize(dtype);
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`);
  }
  const counts = noNonFinite();
  switch (dtype) {
    case 'BF16':
      scanWords(bytes, BF16, counts);
      break;
    case 'F16':
      scanWords(bytes, F16, counts);
      break;
    case 'F32':
      scanWords(bytes, F32, counts);
      break;
    case 'F64':
      scanF64(bytes, counts);
      break;
    case 'F8_E5M2':
      scanF8E5M2(bytes, counts);
      break;
    case 'F8_E4M3':
      for (let i = 0; i < bytes.length; i++) if ((bytes[i] & 0x7f) === 0x7f) counts.nan++;
      break;
    default:
      break;
  }
  return counts;
}

function scanWords(bytes: Uint8Array, layout: WordLayout, counts: NonFiniteCounts): void {
  if (bytes.byteOffset % layout.bytes === 0) {
    if (anyNonFinite(bytes, layout)) classifyWords(bytes, layout, counts);
    return;
  }
  const scratch = new Uint8Array(Math.min(SCRATCH_BYTES, bytes.byteLength));
  for (let at = 0; at < bytes.byteLength; at += scratch.byteLength) {
    const piece = bytes.subarray(at, at + scratch.byteLength);
    scratch.set(piece);
    const aligned = scratch.subarray(0, piece.byteLength);
    if (anyNonFinite(aligned, layout)) classifyWords(aligned, layout, counts);
  }
}

/** Whether element-aligned `bytes` hold any Inf or NaN. */
function anyNonFinite(bytes: Uint8Array, layout: WordLayout): boolean {
  const { exp, carry } = layout;
  let head = 0;
  let hits = 0;
  if (layout.bytes === 2) {
    // 16-bit elements are tested in pairs through 32-bit words; a lone first or last one alone.
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
    if (bytes.byteOffset % 4 !== 0 && halves.length > 0) {
      hits |= (halves[0] & exp) + carry;
      head = 2;
    }
    if ((bytes.byteLength - head) % 4 !== 0) hits |= (halves[halves.length - 1] & exp) + carry;
    if ((hits & 0x8000) !== 0) return true;
  }
  const pairs = layout.bytes === 2 ? (exp << 16) | exp : exp;
  const carries = layout.bytes === 2 ? (carry << 16) | carry : carry;
  const top = layout.bytes === 2 ? 0x80008000 : 0x80000000;
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset + head, Math.floor((bytes.byteLength - head) / 4));
  for (let i = 0; i < words.length; i++) hits |= (words[i] & pairs) + carries;
  return (hits & top) !== 0;
}

function classifyWords(bytes: Uint8Array, layout: WordLayout, counts: NonFiniteCounts): void {
  const { exp, mantissa, sign } = layout;
  const words =
    layout.bytes === 2
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
      : new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if ((w & exp) !== exp) continue;
    if ((w & mantissa) !== 0) counts.nan++;
    else if ((w & sign) !== 0) counts.negInf++;
    else counts.posInf++;
  }
}

function scanF64(bytes: Uint8Array, counts: NonFiniteCounts): void {
  // The high word of each little-endian f64 holds the sign, the exponent and 20 mantissa bits.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.byteLength; at += 8) {
    const hi = view.getUint32(at + 4, true);
    if ((hi & 0x7ff00000) !== 0x7ff00000) continue;
    if ((hi & 0xfffff) !== 0 || view.getUint32(at, true) !== 0) counts.nan++;
    else if (hi >>> 31) counts.negInf++;
    else counts.posInf++;
  }
}

function scanF8E5M2(bytes: Uint8Array, counts: NonFiniteCounts): void {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if ((b & 0x7c) !== 0x7c) continue;
    if ((b & 0x03) !== 0) counts.nan++;
    else if (b & 0x80) counts.negInf++;
    else counts.posInf++;
  }
}

/** One tensor of a merge that holds NaN or Inf: in which inputs, and in the output. */
export interface NonFiniteTensor {
  /** Output tensor name. */
  readonly tensor: string;
  /** Inputs that hold any, by model (each input element counted once). */
  readonly inputs: readonly { readonly model: string; readonly counts: NonFiniteCounts }[];
  readonly output: NonFiniteCounts;
}
