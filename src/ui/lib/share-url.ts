/**
 * A recipe in the page URL: the YAML, deflate-compressed and base64url-encoded, in the hash
 * (`#config=…`), so it never reaches a server and a link reproduces the config exactly.
 */

const HASH_KEY = 'config';

/** The largest config a link may carry, unpacked (a real merge config is a few KB). */
export const MAX_LINK_CONFIG_BYTES = 256 * 1024;
/**
 * The longest `#config=` value looked at. Deflate never makes a text much larger (5 bytes per
 * 64 KB block), so a link to a config within the cap has at most about 4/3 of the cap in base64:
 * anything longer is refused before decoding anything.
 */
export const MAX_LINK_CONFIG_CHARS = Math.ceil(((MAX_LINK_CONFIG_BYTES + 1024) * 4) / 3);

/** A link whose config is refused for its size (not damaged: too big to open safely). */
export class LinkTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkTooLargeError';
  }
}

const kb = (bytes: number): string => `${Math.round(bytes / 1024).toLocaleString('en-US')} KB`;

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

/**
 * Throws when the text is not a config this page encoded, and a LinkTooLargeError when it is
 * longer than a config within MAX_LINK_CONFIG_BYTES can be, or unpacks to more than that:
 * decompression stops at the cap, so a small link that inflates to gigabytes costs nothing.
 */
export async function decodeConfig(encoded: string): Promise<string> {
  if (encoded.length > MAX_LINK_CONFIG_CHARS) {
    throw new LinkTooLargeError(
      `The link is too long (${encoded.length.toLocaleString('en-US')} characters) to carry a config Alloy opens: ` +
        `configs in links are limited to ${kb(MAX_LINK_CONFIG_BYTES)}. It was not opened; open the YAML file instead.`,
    );
  }
  const stream = new Blob([fromBase64Url(encoded) as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_LINK_CONFIG_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new LinkTooLargeError(
        `The config in this link unpacks to more than ${kb(MAX_LINK_CONFIG_BYTES)} (the limit for links); it was not opened. ` +
          'A real merge config is a few KB: open the YAML file instead.',
      );
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
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
  } catch (error) {
    if (error instanceof LinkTooLargeError) throw error;
    throw new Error('The link carries a config that cannot be read (it may have been cut off when it was copied).');
  }
}

/** A full link to this page with the config in its hash (keeps the query, e.g. `?hub=`). */
export async function shareLink(location: { origin: string; pathname: string; search: string }, yaml: string): Promise<string> {
  return `${location.origin}${location.pathname}${location.search}${await configHash(yaml)}`;
}
