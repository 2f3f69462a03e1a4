import { HubError } from './errors';
import type { HubFile } from './types';

/**
 * Checks downloaded bytes against the hash the Hub lists for the file: the LFS sha256 for LFS
 * files, else the git blob id (sha1 of `blob <size>\0` + content). Whole files only: the shard
 * cache hashes big LFS files block by block itself (see storage/opfs-shard-cache.ts).
 */

/** Which hash vouched for a file. */
export type HubHashKind = 'sha256' | 'git-blob';

export function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
}

/** The git blob id of the content (what the Hub's tree listing gives as `oid` for non-LFS files). */
export async function gitBlobId(bytes: Uint8Array): Promise<string> {
  const header = new TextEncoder().encode(`blob ${bytes.byteLength}\0`);
  const all = new Uint8Array(header.byteLength + bytes.byteLength);
  all.set(header, 0);
  all.set(bytes, header.byteLength);
  return hex(await crypto.subtle.digest('SHA-1', all));
}

/** The hash a file is checked against: sha256 for LFS files, the git blob id otherwise. */
export function expectedHash(file: Pick<HubFile, 'sha256' | 'oid'>): { kind: HubHashKind; value: string } | undefined {
  if (file.sha256) return { kind: 'sha256', value: file.sha256.toLowerCase() };
  if (file.oid) return { kind: 'git-blob', value: file.oid.toLowerCase() };
  return undefined;
}

export const HASH_NAMES: Record<HubHashKind, string> = { sha256: 'sha256', 'git-blob': 'git blob id' };

/**
 * Throws a HubError (kind `integrity`) naming the file and both hashes unless the bytes match the
 * Hub's hash; returns which hash vouched for them.
 */
export async function verifyHubBytes(repo: string, file: HubFile, bytes: Uint8Array): Promise<HubHashKind> {
  const expected = expectedHash(file);
  if (!expected) {
    throw new HubError(`${repo}: the Hub listed no hash for ${file.path}, so its download cannot be verified; it was not used`, 'integrity');
  }
  if (bytes.byteLength !== file.size) {
    throw new HubError(
      `${repo}: the download of ${file.path} is ${bytes.byteLength} bytes, the Hub lists ${file.size}: it was not used. ` +
        'Try again; if this repeats, a proxy or the network is altering downloads.',
      'integrity',
    );
  }
  const actual = expected.kind === 'sha256' ? await sha256Hex(bytes) : await gitBlobId(bytes);
  if (actual !== expected.value) {
    throw new HubError(
      `${repo}: the download of ${file.path} does not match the Hub's ${HASH_NAMES[expected.kind]} ` +
        `(got ${actual}, the Hub lists ${expected.value}): it was not used. ` +
        'Try again; if this repeats, a proxy, the network or the Hub mirror is altering the file.',
      'integrity',
    );
  }
  return expected.kind;
}
