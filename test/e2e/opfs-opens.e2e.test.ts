/**
 * Opening an OPFS file's sync access handle while garbage is collected. Chromium dropped the open
 * of a file handle collected while it was pending, and the open never settled: the app's merges hung
 * at random saving their checkpoint (src/storage/held-objects.ts). Here a worker opens and closes a
 * handle 300 times through openSyncAccessHandle while garbage is made and collected; every open
 * must come back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from './harness/harness';
import { buildHarness, chromiumAvailable, launchBrowser, openHarnessPage, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';

type HarnessWindow = { alloyHarness: Harness };

describe.skipIf(!chromiumAvailable())('OPFS opens under garbage collection', () => {
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

  it('settles every open, each with the file handle held while it is pending', async () => {
    await openHarnessPage(browser.page, site.url);
    const result = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.opensUnderGc({ rounds: 300 }));
    expect(result, browser.log.join('\n')).toEqual({ opens: 300 });
  }, 180_000);
});
