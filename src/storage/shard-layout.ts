/**
 * Output sharding exactly as mergekit's `TensorWriter` (docs/output.md §2): which tensors go in
 * which file, the file names, and the index. Pure functions of the plan, so the UI can show the
 * layout before anything runs.
 */

/** mergekit's default `--out-shard-size`. */
export const DEFAULT_SHARD_SIZE = 5_000_000_000;

/** What mergekit writes as `mergekit_version` in the index. */
export const MERGEKIT_VERSION = '0.1.4';

const SUFFIX_DIGITS: Readonly<Record<string, number>> = { k: 3, m: 6, b: 9 };

/**
 * Parses a shard size like mergekit's `parse_kmb`: a plain integer, or a number followed by
 * k, M or B (case-insensitive there too, so `500m` is 500 million), in powers of 1000.
 * Unlike mergekit, a decimal before the suffix is accepted (`1.5B`) when it gives whole bytes.
 */
export function parseShardSize(value: string | number, what = 'shard size'): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return value;
    throw new Error(`${what} ${value} is not a whole number of bytes`);
  }
  const match = /^(\d+)(?:\.(\d+))?([kKmMbB])?$/.exec(value.trim());
  const wrong = (why: string): Error =>
    new Error(
      `${what} "${value}" ${why}: write a number of bytes, optionally followed by k (thousand), ` +
        `M (million) or B (billion), e.g. 5B, 500M, 1.5B`,
    );
  if (!match) throw wrong('is not understood');
  const [, whole, fraction = '', suffix] = match;
  const digits = suffix ? SUFFIX_DIGITS[suffix.toLowerCase()] : 0;
  // Exact decimal scaling in BigInt: 1.5B must be 1500000000, not a float approximation.
  const significant = fraction.replace(/0+$/, '');
  if (significant.length > digits) throw wrong('is not a whole number of bytes');
  const bytes = BigInt(whole + significant.padEnd(digits, '0'));
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw wrong('is too large');
  return Number(bytes);
}

export interface ShardTensor {
  readonly name: string;
  readonly byteLength: number;
}

export interface ShardLayout {
  readonly file: string;
  /** Tensor names in write order. */
  readonly tensors: string[];
  /** Sum of the tensors' bytes (not the file size, which adds the header). */
  readonly byteLength: number;
}

/** `model.safetensors` for one shard, else `model-00001-of-00003.safetensors` and so on. */
export function shardFileName(index: number, count: number): string {
  if (count === 1) return 'model.safetensors';
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Splits tensors, in write order, into shards of at most `maxShardBytes` (≤ 0: unlimited).
 * As in mergekit a tensor larger than the limit still gets a shard of its own, and a shard is
 * closed only when adding the next tensor would exceed the limit. No tensors → no shards.
 */
export function layoutShards(tensors: readonly ShardTensor[], maxShardBytes: number): ShardLayout[] {
  const groups: { tensors: string[]; byteLength: number }[] = [];
  let current: { tensors: string[]; byteLength: number } | null = null;
  for (const tensor of tensors) {
    if (
      current === null ||
      (maxShardBytes > 0 && current.tensors.length > 0 && current.byteLength + tensor.byteLength > maxShardBytes)
    ) {
      current = { tensors: [], byteLength: 0 };
      groups.push(current);
    }
    current.tensors.push(tensor.name);
    current.byteLength += tensor.byteLength;
  }
  return groups.map((group, i) => ({ file: shardFileName(i, groups.length), ...group }));
}

/**
 * The text of `model.safetensors.index.json` for a sharded output, formatted as Python's
 * `json.dump(..., indent=2)` writes it (ASCII-escaped, no trailing newline), with the weight map
 * sorted by tensor name as transformers does. `totalSize` defaults to the sum of the shards.
 */
export function buildShardIndex(shards: readonly ShardLayout[], totalSize?: number): string {
  const entries: [string, string][] = [];
  for (const shard of shards) for (const tensor of shard.tensors) entries.push([tensor, shard.file]);
  entries.sort(([a], [b]) => compareCodePoints(a, b));
  const total = totalSize ?? shards.reduce((sum, shard) => sum + shard.byteLength, 0);
  // Written by hand rather than JSON.stringify(object): an object would move integer-like
  // tensor names to the front and lose the sorted order.
  const weightMap =
    entries.length === 0
      ? '{}'
      : `{\n${entries.map(([tensor, file]) => `    ${pyString(tensor)}: ${pyString(file)}`).join(',\n')}\n  }`;
  return (
    '{\n' +
    `  "metadata": {\n    "total_size": ${total},\n    "mergekit_version": ${pyString(MERGEKIT_VERSION)}\n  },\n` +
    `  "weight_map": ${weightMap}\n` +
    '}'
  );
}

/** A JSON string as Python's json module writes it by default (ensure_ascii). */
function pyString(value: string): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Python's string order (by code point). UTF-16 order differs only where a surrogate meets a
 * unit in U+E000..U+FFFF, so those are remapped; everything else compares as is.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}
