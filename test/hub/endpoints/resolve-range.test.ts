import { describe, expect, it } from 'vitest';
import { HubError } from '../../../src/hub';
import type { Fetch } from '../../../src/hub/endpoints/context';
import type { DownloadContext } from '../../../src/hub/endpoints/file-blob';
import { readRange } from '../../../src/hub/endpoints/resolve-range';
import type { HubFile, HubRepoSnapshot } from '../../../src/hub/types';

// The cases a well-behaved fake hub never produces: a server that ignores Range, a body cut short.
const file: HubFile = { path: 'model.safetensors', size: 1000, sha256: 'a'.repeat(64) };
const snapshot: HubRepoSnapshot = { repo: 'alloy-test/ranges', revision: 'main', commit: 'c'.repeat(40), files: [file] };
const content = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 255);

interface Seen {
  readonly url: string;
  readonly range: string | null;
  readonly cache: RequestCache | undefined;
}

function context(answer: (range: [number, number]) => Response, seen: Seen[] = []): DownloadContext {
  const fetch: Fetch = async (input, init) => {
    const range = new Headers(init?.headers).get('Range');
    seen.push({ url: String(input), range, cache: init?.cache });
    const match = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
    if (!match) return new Response(content, { status: 200 });
    return answer([Number(match[1]), Number(match[2]) + 1]);
  };
  return { hubUrl: 'https://hub.invalid', accessToken: undefined, fetch, xet: false, downloadInfos: new Map() };
}

const partial = ([start, end]: [number, number]): Response =>
  new Response(content.slice(start, end), { status: 206, headers: { 'Content-Range': `bytes ${start}-${end - 1}/1000` } });

describe('readRange', () => {
  it('asks for exactly the range at the pinned commit, bypassing the HTTP cache, and counts the body bytes', async () => {
    const seen: Seen[] = [];
    let counted = 0;
    const bytes = await readRange(context(partial, seen), snapshot, file, 10, 250, { onBytes: (n) => (counted += n) });
    expect([...bytes]).toEqual([...content.subarray(10, 250)]);
    expect(counted).toBe(240);
    expect(seen).toEqual([
      { url: `https://hub.invalid/alloy-test/ranges/resolve/${'c'.repeat(40)}/model.safetensors`, range: 'bytes=10-249', cache: 'no-store' },
    ]);
  });

  it('reads nothing for an empty range and refuses one outside the file', async () => {
    const seen: Seen[] = [];
    expect((await readRange(context(partial, seen), snapshot, file, 5, 5)).byteLength).toBe(0);
    expect(seen).toEqual([]);
    await expect(readRange(context(partial), snapshot, file, 900, 1001)).rejects.toThrow(
      'alloy-test/ranges/model.safetensors: cannot read bytes 900..1001 of a 1000-byte file',
    );
    await expect(readRange(context(partial), snapshot, file, -1, 10)).rejects.toBeInstanceOf(RangeError);
  });

  it('refuses a server that ignores Range (200 with the whole file)', async () => {
    const whole = (): Response => new Response(content, { status: 200 });
    const error = await readRange(context(whole), snapshot, file, 0, 100).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).message).toMatch(/ignored the byte range \(200 instead of 206\)/);
  });

  it('calls a body cut short a retryable network error', async () => {
    const short = ([start, end]: [number, number]): Response =>
      new Response(content.slice(start, end - 40), { status: 206, headers: { 'Content-Range': `bytes ${start}-${end - 1}/1000` } });
    const error = await readRange(context(short), snapshot, file, 0, 100).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).kind).toBe('network');
    expect((error as HubError).retryable).toBe(true);
    expect((error as HubError).message).toBe('the download of model.safetensors from alloy-test/ranges was cut short: got 60 of 100 bytes');
  });

  it('turns an abort into a HubError of kind aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await readRange(context(partial), snapshot, file, 0, 100, { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).kind).toBe('aborted');
  });
});
