/** Builders of hand-made (often malformed) safetensors files for the storage tests. */

/** A file with the given header text (not padded) and `data` after it. */
export function rawSafetensors(header: string | object, data: Uint8Array | number = 0): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  return rawWithHeaderBytes(json, data);
}

export function rawWithHeaderBytes(json: Uint8Array, data: Uint8Array | number = 0): Uint8Array {
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const bytes = new Uint8Array(8 + json.byteLength + body.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  bytes.set(json, 8);
  bytes.set(body, 8 + json.byteLength);
  return bytes;
}

/** A file whose 8-byte length prefix is `length` whatever follows. */
export function withLengthPrefix(length: bigint, rest: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(8 + rest.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, length, true);
  bytes.set(rest, 8);
  return bytes;
}

export interface MalformedCase {
  readonly title: string;
  readonly bytes: Uint8Array;
  /** Expected in our message. */
  readonly message: RegExp;
  /** Expected `tensor` field of the error, when one tensor is to blame. */
  readonly tensor?: string;
}

const t = (dtype: string, shape: unknown, offsets: unknown): object => ({ dtype, shape, data_offsets: offsets });

/**
 * Every way a header can be wrong. The interop test feeds the same files to Python's
 * safetensors (the Rust reader), which must reject each one as well.
 */
export const MALFORMED: readonly MalformedCase[] = [
  { title: 'shorter than 8 bytes', bytes: new Uint8Array(5), message: /5 bytes long, too short.*re-download/ },
  { title: 'empty file', bytes: new Uint8Array(0), message: /0 bytes long, too short/ },
  {
    title: 'header length above 100 MB',
    bytes: withLengthPrefix(100_000_001n, new Uint8Array(16)),
    message: /100000001 bytes, more than the 100000000/,
  },
  {
    title: 'header length with the high word set',
    bytes: withLengthPrefix(1n << 40n, new Uint8Array(16)),
    message: /more than the 100000000/,
  },
  {
    title: 'header longer than the file',
    bytes: withLengthPrefix(50n, new TextEncoder().encode('{}')),
    message: /says 50 bytes but only 2 bytes follow it.*truncated/,
  },
  {
    title: 'header not UTF-8',
    bytes: rawWithHeaderBytes(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])),
    message: /not valid UTF-8/,
  },
  { title: 'header not JSON', bytes: rawSafetensors('{"a": '), message: /not valid JSON/ },
  { title: 'header is a JSON array', bytes: rawSafetensors('[]'), message: /JSON but not an object/ },
  { title: 'header is a JSON string', bytes: rawSafetensors('"x"'), message: /JSON but not an object/ },
  {
    title: '__metadata__ not an object',
    bytes: rawSafetensors({ __metadata__: 'pt' }),
    message: /"__metadata__" must be an object of strings/,
  },
  {
    title: '__metadata__ value not a string',
    bytes: rawSafetensors({ __metadata__: { format: 'pt', step: 3 } }),
    message: /"__metadata__" entry "step" is 3, not a string/,
  },
  {
    title: 'entry not an object',
    bytes: rawSafetensors({ w: [1, 2] }),
    message: /tensor "w": the header entry is not an object/,
    tensor: 'w',
  },
  {
    title: 'unknown dtype',
    bytes: rawSafetensors({ w: t('F17', [2], [0, 4]) }, 4),
    message: /dtype "F17" is not supported/,
    tensor: 'w',
  },
  {
    title: 'dtype missing',
    bytes: rawSafetensors({ w: { shape: [2], data_offsets: [0, 4] } }, 4),
    message: /"dtype" is missing/,
    tensor: 'w',
  },
  {
    title: 'negative dimension',
    bytes: rawSafetensors({ w: t('F16', [-2], [0, 4]) }, 4),
    message: /"shape" must be a list of non-negative integers, got \[-2\]/,
    tensor: 'w',
  },
  {
    title: 'fractional dimension',
    bytes: rawSafetensors({ w: t('F16', [2.5], [0, 5]) }, 5),
    message: /"shape" must be a list of non-negative integers/,
    tensor: 'w',
  },
  {
    title: 'shape not a list',
    bytes: rawSafetensors({ w: t('F16', 2, [0, 4]) }, 4),
    message: /"shape" must be a list/,
    tensor: 'w',
  },
  {
    title: 'data_offsets with one number',
    bytes: rawSafetensors({ w: t('F16', [2], [4]) }, 4),
    message: /"data_offsets" must be \[begin, end\]/,
    tensor: 'w',
  },
  {
    title: 'negative data_offsets',
    bytes: rawSafetensors({ w: t('U8', [4], [-4, 0]) }, 4),
    message: /"data_offsets" must be \[begin, end\]/,
    tensor: 'w',
  },
  {
    title: 'data_offsets end before begin',
    bytes: rawSafetensors({ w: t('U8', [0], [4, 0]) }, 4),
    message: /data_offsets \[4, 0\] end before they begin/,
    tensor: 'w',
  },
  {
    title: 'size does not match shape',
    bytes: rawSafetensors({ w: t('BF16', [2, 3], [0, 10]) }, 10),
    message: /shape \[2,3\] of BF16 \(2 bytes each\) needs 12 bytes but data_offsets \[0, 10\] span 10/,
    tensor: 'w',
  },
  {
    title: 'offsets past the end of the data',
    bytes: rawSafetensors({ w: t('F32', [2], [0, 8]) }, 6),
    message: /data_offsets \[0, 8\] run past the end of the data section \(6 bytes\)/,
    tensor: 'w',
  },
  {
    title: 'gap before the first tensor',
    bytes: rawSafetensors({ w: t('F32', [1], [4, 8]) }, 8),
    message: /leave a gap of 4 bytes at the start of the data section/,
    tensor: 'w',
  },
  {
    title: 'gap between tensors',
    bytes: rawSafetensors({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [6, 10]) }, 10),
    message: /gap of 2 bytes after tensor "a"/,
    tensor: 'b',
  },
  {
    title: 'overlapping tensors',
    bytes: rawSafetensors({ a: t('F32', [2], [0, 8]), b: t('F32', [1], [4, 8]) }, 8),
    message: /overlap tensor "a" \(which ends at 8\)/,
    tensor: 'b',
  },
  {
    title: 'two tensors at the same place',
    bytes: rawSafetensors({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [0, 4]) }, 4),
    message: /overlap tensor "a"/,
    tensor: 'b',
  },
  {
    title: 'extra bytes after the last tensor',
    bytes: rawSafetensors({ a: t('F32', [1], [0, 4]) }, 7),
    message: /cover 4 bytes of data but the file holds 7 bytes after the header \(3 extra bytes at the end\)/,
  },
  {
    title: 'data but no tensors',
    bytes: rawSafetensors({}, 3),
    message: /cover 0 bytes of data but the file holds 3/,
  },
  // What JSON.parse lets through but serde_json (the Rust reader) refuses.
  {
    title: 'a dimension written as 4e0',
    bytes: rawSafetensors('{"w": {"dtype": "U8", "shape": [4e0], "data_offsets": [0, 4]}}', 4),
    message: /"shape" must be a list of non-negative integers, got \[4e0\] \(each written as a plain integer/,
    tensor: 'w',
  },
  {
    title: 'an offset written as 4.0',
    bytes: rawSafetensors('{"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4.0]}}', 4),
    message: /"data_offsets" must be \[begin, end\] with non-negative integers, got \[0, 4\.0\]/,
    tensor: 'w',
  },
  {
    title: 'a dimension written as -0',
    bytes: rawSafetensors('{"w": {"dtype": "U8", "shape": [-0], "data_offsets": [0, 0]}}'),
    message: /"shape" must be a list of non-negative integers, got \[-0\]/,
    tensor: 'w',
  },
  {
    title: '__metadata__ twice',
    bytes: rawSafetensors('{"__metadata__": {"a": "1"}, "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "__metadata__": {"a": "2"}}', 1),
    message: /the header has "__metadata__" twice/,
  },
  {
    title: 'a field repeated in a tensor entry',
    bytes: rawSafetensors('{"w": {"dtype": "U8", "shape": [1], "dtype": "F32", "data_offsets": [0, 1]}}', 1),
    message: /the header entry has "dtype" twice/,
    tensor: 'w',
  },
  {
    title: 'a shape whose element count overflows 64 bits before a 0',
    bytes: rawSafetensors({ w: t('U8', [2 ** 32, 2 ** 32, 0], [0, 0]) }),
    message: /shape \[4294967296,4294967296,0\] overflows/,
    tensor: 'w',
  },
  {
    title: 'JSON nested 200 levels deep in __metadata__',
    bytes: rawSafetensors(`{"__metadata__": {"a": ${'['.repeat(200)}${']'.repeat(200)}}}`),
    message: /nests JSON more than 127 levels deep/,
  },
];
