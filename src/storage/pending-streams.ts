/**
 * Streams with a read under way. Chromium lets a Blob's stream be collected while a read of it is
 * pending when JavaScript holds it only from that read's own continuation: a garbage collection at
 * that moment leaves the read unsettled for ever, and a merge reading 3–6 ranges at once per
 * worker hung within seconds under allocation (test/e2e/blob-reads.e2e.test.ts). Holding each
 * stream here until its reading ends keeps it alive.
 */
const pending = new Set<object>();

/** Runs `read` on `stream` while it and `reader` (its reader, or where it is piped to) are held. */
export async function whileHeld<T>(stream: ReadableStream<Uint8Array>, reader: object, read: () => Promise<T>): Promise<T> {
  const held = [stream, reader];
  pending.add(held);
  try {
    return await read();
  } finally {
    pending.delete(held);
  }
}
