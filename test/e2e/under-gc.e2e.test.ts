/**
 * Operations that garbage collection must not lose. Chromium collected an object whose operation
 * was pending when only that operation's continuation held it, and the operation never settled:
 * the app's merges hung at random (src/storage/held-objects.ts). Here, while garbage is made and
 * collected, reads of a disk-backed Blob (an OPFS file) run six at a time through the pool
 * workers' BlobRangeReader, and a worker opens an OPFS file's sync access handle 300 times through
 * openSyncAccessHandle; every read must come back with the right bytes, every open must settle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from './harness/harness';
import { buildHarness, chromiumAvailable, launchBrowser, openHarnessPage, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';

type HarnessWindow = { alloyHarness: Harness };

describe.skipIf(!chromiumAvailable())('Pending operations under garbage collection', () => {
  let site: StaticServer;
  let browser: BrowserSession;

  beforeAll(async () => {
    site = await serveStatic(await buildHarness());
    browser = await launchBrowser({ extraArgs: ['--js-flags=--expose-gc'] });
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
  });

  it('settles every read of six at a time, with the bytes of the file', async () => {
    await openHarnessPage(browser.page, site.url);
    const result = await browser.page.evaluate(() =>
      (window as unknown as HarnessWindow).alloyHarness.blobReadsUnderGc({ rangeBytes: 4 << 20, concurrent: 6, rounds: 40 }),
    );
    expect(result, browser.log.join('\n')).toEqual({ reads: 240 });
  }, 180_000);

  it('settles every open of a sync access handle, the file handle held while it is pending', async () => {
    await openHarnessPage(browser.page, site.url);
    const result = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.opensUnderGc({ rounds: 300 }));
    expect(result, browser.log.join('\n')).toEqual({ opens: 300 });
  }, 180_000);
});
