import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureScreenshots } from './screenshots';

/**
 * Builds the app with its dev/test entry mock.html (the mock engine, never in the production build),
 * serves it and takes the docs screenshots through the UI. Opt-in:
 * `ALLOY_SCREENSHOTS=1 npx vitest run test/e2e/screenshots.e2e.test.ts`; with ALLOY_BASE_URL it uses
 * a server that is already running (`npm run dev`) instead of building.
 */
const enabled = process.env.ALLOY_SCREENSHOTS === '1';
const root = join(import.meta.dirname, '..', '..');

describe.skipIf(!enabled)('app screenshots (mock engine)', () => {
  let baseUrl = process.env.ALLOY_BASE_URL ?? '';
  let close: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    if (baseUrl) return;
    const vite = await import('vite');
    const build = {
      outDir: join(root, 'dist', 'app-mock'),
      emptyOutDir: true,
      rolldownOptions: { input: { index: join(root, 'index.html'), mock: join(root, 'mock.html') } },
    };
    await vite.build({ root, logLevel: 'warn', build });
    const server = await vite.preview({ root, build, preview: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
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
