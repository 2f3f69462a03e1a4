/**
 * The CPU pool's workers read the Hub download cache's files through read-only sync access handles
 * (storage/opfs-range-reader.ts), straight into their memory, without the browser process that
 * serves Blob reads. In real Chromium: two workers hold the same file at once and read the right
 * bytes at odd offsets and lengths; a read past the end says so; a file locked for writing is left
 * to Blob reads; and a worker that ends lets go of the file (the cache can delete it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from './harness/harness';
import { buildHarness, chromiumAvailable, launchBrowser, openHarnessPage, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';

type HarnessWindow = { alloyHarness: Harness };
const SIZE = (3 << 20) + 12345;

describe.skipIf(!chromiumAvailable())('OPFS reads in pool workers', () => {
  let site: StaticServer;
  let browser: BrowserSession;

  beforeAll(async () => {
    site = await serveStatic(await buildHarness());
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
  });

  it('two workers read one cached file at once, a locked file is left to Blob reads, and an ended worker lets go', async () => {
    await openHarnessPage(browser.page, site.url);
    // Odd offsets and lengths, the first and the last byte, one range of over a MiB.
    const ranges: [number, number][] = [[0, 1], [1, 4097], [SIZE - 1, 1], [777_777, (1 << 20) + 3], [SIZE - 70_001, 70_001]];
    const result = await browser.page.evaluate(([size, r]) => (window as unknown as HarnessWindow).alloyHarness.opfsReads(size, r), [SIZE, ranges] as const);
    const pastEnd = `opfs-reads.bin: the file ended at byte ${SIZE} while reading 20 bytes at ${SIZE - 10}: it was truncated while in use; re-download it`;
    const allRight = ranges.map(() => null);
    expect(result.together, browser.log.join('\n')).toEqual([
      { accepted: true, wrong: allRight, pastEnd },
      { accepted: true, wrong: allRight, pastEnd },
    ]);
    expect(result.lockAfterReaders).toEqual({ locked: true });
    expect(result.whileLocked).toEqual({ accepted: false, wrong: [], pastEnd: null });
    expect(result.removed).toBe(true);
  }, 120_000);
});
