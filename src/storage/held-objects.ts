/**
 * Browser objects with an operation under way. Chromium lets such an object be collected while
 * its operation is pending when JavaScript holds it only from that operation's own continuation,
 * and a garbage collection at that moment leaves the operation unsettled for ever:
 * - a Blob's stream with a read pending: a merge reading 3–6 ranges at once per worker hung within
 *   seconds under allocation (test/e2e/under-gc.e2e.test.ts);
 * - an OPFS file handle opening a sync access handle: a merge hung saving its checkpoint, about
 *   once in 16 merges (test/e2e/under-gc.e2e.test.ts).
 * Holding the objects here until their operation ends keeps them alive.
 */
const pending = new Set<object>();

/**
 * Runs `operation` while `objects` are held: a stream and its reader (or where it is piped to), a
 * file handle being opened.
 */
export async function whileHeld<T>(objects: readonly object[], operation: () => Promise<T>): Promise<T> {
  pending.add(objects);
  try {
    return await operation();
  } finally {
    pending.delete(objects);
  }
}
