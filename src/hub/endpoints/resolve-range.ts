import { HubError } from '../errors';
import type { HubFile, HubRepoSnapshot, ReadRangeOptions } from '../types';
import { callContext, callHub, type Fetch } from './context';
import { fileBlob, type DownloadContext } from './file-blob';

/**
 * Bytes [start, end) of a file by one HTTP range request. Throws a HubError (check `retryable`);
 * a short or over-long body is a retryable network error.
 */
export async function readRange(
  ctx: DownloadContext,
  snapshot: HubRepoSnapshot,
  file: HubFile,
  start: number,
  end: number,
  options: ReadRangeOptions = {},
): Promise<Uint8Array> {
  if (!(start >= 0 && end <= file.size && start <= end)) {
    throw new RangeError(`${snapshot.repo}/${file.path}: cannot read bytes ${start}..${end} of a ${file.size}-byte file`);
  }
  if (start === end) return new Uint8Array(0);
  const context = callContext(ctx, { repo: snapshot.repo, revision: snapshot.revision, path: file.path, action: 'download' });
  const bytes = await callHub(
    ctx,
    context,
    options.signal,
    async (fetch) => {
      const blob = await fileBlob(ctx, snapshot, file, fetch);
      return new Uint8Array(await blob.slice(start, end).arrayBuffer());
    },
    rangeFetch(options.onBytes),
  );
  if (bytes.byteLength !== end - start) {
    throw new HubError(
      `the download of ${file.path} from ${snapshot.repo} was cut short: got ${bytes.byteLength} of ${end - start} bytes`,
      'network',
    );
  }
  return bytes;
}

/**
 * Wraps fetch so that range requests bypass the HTTP cache, replies are checked (a server that
 * ignores `Range` would send the whole file) and their body bytes counted as they arrive.
 */
function rangeFetch(onBytes: ((bytes: number) => void) | undefined): (inner: Fetch) => Fetch {
  return (inner) => async (input, init) => {
    // The bytes go to the OPFS cache: the browser's HTTP cache would keep a second copy of every
    // shard (and, holding earlier ranges, split later requests into revalidations).
    const response = await inner(input, { ...init, cache: 'no-store' });
    const range = new Headers(init?.headers).get('Range');
    if (response.ok && range && response.status !== 206) {
      await response.body?.cancel();
      throw new HubError(`the server ignored the byte range (${response.status} instead of 206) for ${response.url}`, 'other', response.status);
    }
    if (!response.ok || !onBytes || !response.body) return response;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onBytes(chunk.byteLength);
        controller.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(counter), { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
