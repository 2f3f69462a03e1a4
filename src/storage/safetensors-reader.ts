import { DTYPE_SIZES, isSafetensorsDtype } from './dtype';
import { SafetensorsError, type SafetensorsErrorLocation } from './errors';
import { JsonNumber, JsonObject, MAX_JSON_DEPTH, parseStrictJson, StrictJsonError, type StrictJsonValue } from './strict-json';
import type { ByteSource, SafetensorsDtype, TensorInfo } from './types';
import { untrustedText, UNTRUSTED_MAX_CHARS } from './untrusted-text';

/**
 * Strict safetensors header parsing. The checks are those of the Rust reader
 * (`safetensors/src/tensor.rs`, with serde_json): a file it accepts we accept, a file it rejects we
 * reject, so a merge never starts from weights that Python would refuse to load. That includes
 * what JSON.parse would let through: integers written as `64e0`, `64.0` or `-0`, a repeated
 * `__metadata__` or tensor field, nesting past serde_json's limit (strict-json.ts).
 */

/** The Rust reader's cap on the JSON header (`MAX_HEADER_SIZE`). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsHeader {
  /** Tensors in the order of their data in the file. */
  readonly tensors: TensorInfo[];
  /** `__metadata__` (empty when the file has none). */
  readonly metadata: Record<string, string>;
  /** Absolute offset of the data section (8 + header length). */
  readonly dataOffset: number;
}

export interface ReadHeaderOptions {
  /** The model the file belongs to, named in error messages. */
  readonly model?: string;
}

const RE_DOWNLOAD = 'the file is truncated or not a safetensors file: re-download it';
const CORRUPT =
  'the file is corrupt or was written by a broken tool: re-download it, or re-save it with the Python safetensors library';

/** Reads and validates the header of the safetensors file behind `source` (two small reads). */
export async function readSafetensorsHeader(
  source: ByteSource,
  file: string,
  options: ReadHeaderOptions = {},
): Promise<SafetensorsHeader> {
  const where: SafetensorsErrorLocation = { file, model: options.model };
  const headerLength = await readHeaderLength(source, where);
  const headerBytes = headerLength === 0 ? new Uint8Array(0) : await source.read(8, headerLength);
  return parseSafetensorsHeader(headerBytes, source.size, where);
}

/** Reads the u64 length prefix and checks it against the format's cap and the file size. */
async function readHeaderLength(source: ByteSource, where: SafetensorsErrorLocation): Promise<number> {
  if (source.size < 8) {
    throw new SafetensorsError(
      where,
      `the file is ${source.size} bytes long, too short to hold the 8-byte header length: ${RE_DOWNLOAD}`,
    );
  }
  const prefix = await source.read(0, 8);
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  // Anything with the high word set is far beyond the cap; the product is only for the message.
  const length = high * 2 ** 32 + low;
  if (high !== 0 || length > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      where,
      `the header length field says ${length} bytes, more than the ${MAX_HEADER_BYTES} the safetensors format allows: ${RE_DOWNLOAD}`,
    );
  }
  if (8 + length > source.size) {
    throw new SafetensorsError(
      where,
      `the header length field says ${length} bytes but only ${source.size - 8} bytes follow it: ${RE_DOWNLOAD}`,
    );
  }
  return length;
}

/**
 * Validates header JSON bytes (the N bytes after the length prefix) for a file of `fileSize`
 * bytes. Exposed for callers that already hold the header (e.g. fetched by a range request).
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  fileSize: number,
  where: SafetensorsErrorLocation,
): SafetensorsHeader {
  const dataOffset = 8 + headerBytes.byteLength;
  const dataSize = fileSize - dataOffset;
  if (dataSize < 0) {
    throw new SafetensorsError(where, `the header runs past the end of the file: ${RE_DOWNLOAD}`);
  }

  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text so that, as in Rust, it makes the JSON invalid.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(where, `the header is not valid UTF-8: ${RE_DOWNLOAD}`);
  }
  let json: StrictJsonValue;
  try {
    json = parseStrictJson(text);
  } catch (error) {
    if (!(error instanceof StrictJsonError)) throw error;
    const deep = error.message.startsWith('nesting deeper');
    throw new SafetensorsError(
      where,
      deep
        ? `the header nests JSON more than ${MAX_JSON_DEPTH} levels deep (${error.message}), which the safetensors format refuses: ${CORRUPT}`
        : `the header is not valid JSON (${error.message}): ${RE_DOWNLOAD}`,
    );
  }
  if (!(json instanceof JsonObject)) {
    throw new SafetensorsError(where, `the header is JSON but not an object: ${RE_DOWNLOAD}`);
  }

  let metadata: Record<string, string> = {};
  let metadataSeen = false;
  // As in Rust (a map of tensors), a tensor named twice is the last of its entries.
  const byName = new Map<string, StrictJsonValue>();
  for (const [name, value] of json.entries) {
    if (name === '__metadata__') {
      if (metadataSeen) throw new SafetensorsError(where, `the header has "__metadata__" twice: ${CORRUPT}`);
      metadataSeen = true;
      metadata = parseMetadata(value, where);
    } else {
      byName.set(name, value);
    }
  }
  const entries: RawEntry[] = [];
  for (const [name, value] of byName) entries.push(parseEntry(name, value, dataSize, { ...where, tensor: name }));

  checkContiguous(entries, dataSize, where);

  const tensors: TensorInfo[] = entries.map((entry) => ({
    name: entry.name,
    dtype: entry.dtype,
    shape: entry.shape,
    file: where.file,
    offset: dataOffset + entry.begin,
    byteLength: entry.end - entry.begin,
  }));
  return { tensors, metadata, dataOffset };
}

interface RawEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

/** A JSON value as it is written (numbers as in the file), cut and escaped for a message. */
function shown(value: StrictJsonValue | undefined): string {
  if (value === undefined) return 'nothing';
  const limit = UNTRUSTED_MAX_CHARS + 1;
  let out = '';
  // Stops once the message has enough: a list of a million numbers is not written out whole.
  const write = (v: StrictJsonValue): void => {
    if (out.length > limit) return;
    if (v instanceof JsonNumber) out += v.text;
    else if (v instanceof JsonObject) {
      out += '{';
      v.entries.forEach(([k, x], i) => {
        if (out.length > limit) return;
        out += `${i > 0 ? ', ' : ''}${JSON.stringify(k)}: `;
        write(x);
      });
      out += '}';
    } else if (Array.isArray(v)) {
      out += '[';
      v.forEach((x, i) => {
        if (out.length > limit) return;
        if (i > 0) out += ', ';
        write(x);
      });
      out += ']';
    } else out += JSON.stringify(v);
  };
  write(value);
  return untrustedText(out);
}

/** The integers of a JSON list (written as plain non-negative integers), else undefined. */
function counts(value: StrictJsonValue | undefined): number[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: number[] = [];
  for (const item of value) {
    const n = item instanceof JsonNumber ? item.count : undefined;
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

function parseMetadata(value: StrictJsonValue, where: SafetensorsErrorLocation): Record<string, string> {
  // Rust models `__metadata__` as Option<HashMap<String, String>>, so null means absent.
  if (value === null) return {};
  if (!(value instanceof JsonObject)) {
    throw new SafetensorsError(where, `"__metadata__" must be an object of strings: ${CORRUPT}`);
  }
  // A map in Rust too: a repeated key is its last value. A Map-built object keeps "__proto__" an own key.
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, item] of value.entries) {
    if (typeof item !== 'string') {
      throw new SafetensorsError(
        where,
        `"__metadata__" entry "${untrustedText(key)}" is ${shown(item)}, not a string: ${CORRUPT}`,
      );
    }
    out[key] = item;
  }
  return Object.fromEntries(Object.entries(out));
}

const TENSOR_FIELDS = ['dtype', 'shape', 'data_offsets'];
const PLAIN_INTEGERS = 'each written as a plain integer: not 64.0, 64e0 or -0';

function parseEntry(
  name: string,
  value: StrictJsonValue,
  dataSize: number,
  where: SafetensorsErrorLocation,
): RawEntry {
  if (!(value instanceof JsonObject)) {
    throw new SafetensorsError(where, `the header entry is not an object: ${CORRUPT}`);
  }
  const fields = new Map<string, StrictJsonValue>();
  for (const [key, item] of value.entries) {
    // Unknown fields are ignored, as serde does; a known one given twice is an error there.
    if (!TENSOR_FIELDS.includes(key)) continue;
    if (fields.has(key)) throw new SafetensorsError(where, `the header entry has "${key}" twice: ${CORRUPT}`);
    fields.set(key, item);
  }
  const dtype = fields.get('dtype');
  if (!isSafetensorsDtype(dtype)) {
    const known = Object.keys(DTYPE_SIZES).join(', ');
    throw new SafetensorsError(
      where,
      typeof dtype === 'string'
        ? `dtype "${untrustedText(dtype)}" is not supported (Alloy reads ${known}): convert the model to bf16, f16 or f32 first`
        : `"dtype" is missing or not a string: ${CORRUPT}`,
    );
  }
  const shape = counts(fields.get('shape'));
  if (shape === undefined) {
    throw new SafetensorsError(
      where,
      `"shape" must be a list of non-negative integers, got ${shown(fields.get('shape'))} (${PLAIN_INTEGERS}): ${CORRUPT}`,
    );
  }
  const offsets = counts(fields.get('data_offsets'));
  if (offsets === undefined || offsets.length !== 2) {
    throw new SafetensorsError(
      where,
      `"data_offsets" must be [begin, end] with non-negative integers, got ${shown(fields.get('data_offsets'))} (${PLAIN_INTEGERS}): ${CORRUPT}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    throw new SafetensorsError(where, `data_offsets [${begin}, ${end}] end before they begin: ${CORRUPT}`);
  }
  // Rust multiplies with overflow checks in usize (64 bits): a later 0 does not rescue an overflow.
  let product = 1n;
  for (const dim of shape) {
    product *= BigInt(dim);
    if (product >= USIZE_LIMIT) {
      throw new SafetensorsError(where, `shape ${untrustedText(JSON.stringify(shape))} overflows: its element count does not fit in 64 bits: ${CORRUPT}`);
    }
  }
  const expectedBig = product * BigInt(DTYPE_SIZES[dtype]);
  if (expectedBig >= USIZE_LIMIT || expectedBig > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SafetensorsError(where, `shape ${untrustedText(JSON.stringify(shape))} is impossibly large: ${CORRUPT}`);
  }
  const expected = Number(expectedBig);
  if (end - begin !== expected) {
    throw new SafetensorsError(
      where,
      `shape ${untrustedText(JSON.stringify(shape))} of ${dtype} (${DTYPE_SIZES[dtype]} bytes each) needs ${expected} bytes ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}: ${CORRUPT}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      where,
      `data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes): ${RE_DOWNLOAD}`,
    );
  }
  return { name, dtype, shape, begin, end };
}

const USIZE_LIMIT = 1n << 64n;

/** Sorted by offset, the tensors must tile the data section exactly: no gap, no overlap, no tail. */
function checkContiguous(entries: RawEntry[], dataSize: number, where: SafetensorsErrorLocation): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: RawEntry | undefined;
  for (const entry of entries) {
    if (entry.begin < cursor) {
      throw new SafetensorsError(
        { ...where, tensor: entry.name },
        `data_offsets [${entry.begin}, ${entry.end}] overlap tensor "${untrustedText(previous?.name ?? '')}" ` +
          `(which ends at ${cursor}): ${CORRUPT}`,
      );
    }
    if (entry.begin > cursor) {
      const after = previous ? `after tensor "${untrustedText(previous.name)}"` : 'at the start of the data section';
      throw new SafetensorsError(
        { ...where, tensor: entry.name },
        `data_offsets [${entry.begin}, ${entry.end}] leave a gap of ${entry.begin - cursor} bytes ${after}: ${CORRUPT}`,
      );
    }
    cursor = entry.end;
    previous = entry;
  }
  if (cursor !== dataSize) {
    throw new SafetensorsError(
      where,
      `the tensors cover ${cursor} bytes of data but the file holds ${dataSize} bytes after the header ` +
        `(${dataSize - cursor} extra bytes at the end): ${CORRUPT}`,
    );
  }
}
