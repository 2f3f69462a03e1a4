/**
 * A recipe in the page URL: the YAML, deflate-compressed and base64url-encoded, in the hash
 * (`#config=…`), so it never reaches a server and a link reproduces the config exactly.
 */

const HASH_KEY = 'config';

function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Blob([bytes as BlobPart]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

export async function encodeConfig(yaml: string): Promise<string> {
  const compressed = await pipe(new TextEncoder().encode(yaml), new CompressionStream('deflate-raw'));
  return toBase64Url(compressed);
}

/** Throws when the text is not a config this page encoded. */
export async function decodeConfig(encoded: string): Promise<string> {
  const bytes = await pipe(fromBase64Url(encoded), new DecompressionStream('deflate-raw'));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** The hash for a config (`#config=…`), or '' for an empty one. */
export async function configHash(yaml: string): Promise<string> {
  return yaml.trim() === '' ? '' : `#${HASH_KEY}=${await encodeConfig(yaml)}`;
}

/** The config a hash carries; undefined when it has none; throws when it has a damaged one. */
export async function configFromHash(hash: string): Promise<string | undefined> {
  const params = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const encoded = params.get(HASH_KEY);
  if (encoded === null || encoded === '') return undefined;
  try {
    return await decodeConfig(encoded);
  } catch {
    throw new Error('The link carries a config that cannot be read (it may have been cut off when it was copied).');
  }
}

/** A full link to this page with the config in its hash (keeps the query, e.g. `?hub=`). */
export async function shareLink(location: { origin: string; pathname: string; search: string }, yaml: string): Promise<string> {
  return `${location.origin}${location.pathname}${location.search}${await configHash(yaml)}`;
}
