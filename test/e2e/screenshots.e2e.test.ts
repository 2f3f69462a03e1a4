import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureScreenshots } from './screenshots';

/**
 * Builds the app, serves it and takes the docs screenshots through the UI (mock engine). Opt-in:
 * `ALLOY_SCREENSHOTS=1 npx vitest run test/e2e/screenshots.e2e.test.ts`; with ALLOY_BASE_URL it uses
 * a server that is already running instead of building.
 */
const enabled = process.env.ALLOY_SCREENSHOTS === '1';
const root = join(import.meta.dirname, '..', '..');

describe.skipIf(!enabled)('app screenshots (mock engine)', () => {
  let baseUrl = process.env.ALLOY_BASE_URL ?? '';
  let close: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    if (baseUrl) return;
    const vite = await import('vite');
    await vite.build({ root, logLevel: 'warn' });
    const server = await vite.preview({ root, preview: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
    baseUrl = server.resolvedUrls?.local[0] ?? '';
    close = () => server.close();
  }, 180_000);

  afterAll(async () => {
    await close?.();
  });

  it('captures every main screen', async () => {
    const files = await captureScreenshots({ baseUrl, outDir: join(root, 'docs', 'screenshots'), log: (l) => console.log(l) });
    expect(files).toHaveLength(12);
  }, 300_000);
});
