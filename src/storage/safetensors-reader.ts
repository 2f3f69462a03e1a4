import { DTYPE_SIZES, isSafetensorsDtype } from './dtype';
import { SafetensorsError, type SafetensorsErrorLocation } from './errors';
import type { ByteSource, SafetensorsDtype, TensorInfo } from './types';

/**
 * Strict safetensors header parsing. The checks are those of the Rust reader
 * (`safetensors/src/tensor.rs`): a file it accepts we accept, a file it rejects we reject, so a
 * merge never starts from weights that Python would refuse to load.
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
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? ` (${error.message})` : '';
    throw new SafetensorsError(where, `the header is not valid JSON${detail}: ${RE_DOWNLOAD}`);
  }
  if (!isPlainObject(json)) {
    throw new SafetensorsError(where, `the header is JSON but not an object: ${RE_DOWNLOAD}`);
  }

  let metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, where);
    } else {
      entries.push(parseEntry(name, value, dataSize, { ...where, tensor: name }));
    }
  }

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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseMetadata(value: unknown, where: SafetensorsErrorLocation): Record<string, string> {
  // Rust models `__metadata__` as Option<HashMap<String, String>>, so null means absent.
  if (value === null) return {};
  if (!isPlainObject(value)) {
    throw new SafetensorsError(where, `"__metadata__" must be an object of strings: ${CORRUPT}`);
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw new SafetensorsError(
        where,
        `"__metadata__" entry "${key}" is ${JSON.stringify(item)}, not a string: ${CORRUPT}`,
      );
    }
  }
  // fromEntries defines own properties, so a key like "__proto__" cannot touch the prototype.
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function parseEntry(
  name: string,
  value: unknown,
  dataSize: number,
  where: SafetensorsErrorLocation,
): RawEntry {
  if (!isPlainObject(value)) {
    throw new SafetensorsError(where, `the header entry is not an object: ${CORRUPT}`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isSafetensorsDtype(dtype)) {
    const known = Object.keys(DTYPE_SIZES).join(', ');
    throw new SafetensorsError(
      where,
      typeof dtype === 'string'
        ? `dtype "${dtype}" is not supported (Alloy reads ${known}): convert the model to bf16, f16 or f32 first`
        : `"dtype" is missing or not a string: ${CORRUPT}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new SafetensorsError(
      where,
      `"shape" must be a list of non-negative integers, got ${JSON.stringify(shape)}: ${CORRUPT}`,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new SafetensorsError(
      where,
      `"data_offsets" must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}: ${CORRUPT}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    throw new SafetensorsError(where, `data_offsets [${begin}, ${end}] end before they begin: ${CORRUPT}`);
  }
  const elements = (shape as number[]).reduce((product, dim) => product * dim, 1);
  const expected = elements * DTYPE_SIZES[dtype];
  if (!Number.isSafeInteger(expected)) {
    throw new SafetensorsError(where, `shape ${JSON.stringify(shape)} is impossibly large: ${CORRUPT}`);
  }
  if (end - begin !== expected) {
    throw new SafetensorsError(
      where,
      `shape ${JSON.stringify(shape)} of ${dtype} (${DTYPE_SIZES[dtype]} bytes each) needs ${expected} bytes ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}: ${CORRUPT}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      where,
      `data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes): ${RE_DOWNLOAD}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Sorted by offset, the tensors must tile the data section exactly: no gap, no overlap, no tail. */
function checkContiguous(entries: RawEntry[], dataSize: number, where: SafetensorsErrorLocation): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: RawEntry | undefined;
  for (const entry of entries) {
    if (entry.begin < cursor) {
      throw new SafetensorsError(
        { ...where, tensor: entry.name },
        `data_offsets [${entry.begin}, ${entry.end}] overlap tensor "${previous?.name}" ` +
          `(which ends at ${cursor}): ${CORRUPT}`,
      );
    }
    if (entry.begin > cursor) {
      const after = previous ? `after tensor "${previous.name}"` : 'at the start of the data section';
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
