import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { writeDemoModels } from '../../scripts/generate-demo-models';
import { makeHubModels, serveHubModels, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { launchBrowser, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';

/** The built app served statically, a fake hub with the test models, and a browser. */
export interface AppEnvironment {
  readonly hub: FakeHub;
  readonly models: HubModels;
  readonly site: StaticServer;
  readonly browser: BrowserSession;
  readonly appDir: string;
  close(): Promise<void>;
}

const root = join(import.meta.dirname, '..', '..');

/** Builds the app into a temporary folder (with the demo models when asked) and starts everything. */
export async function startAppEnvironment(options: { readonly demoModels?: boolean } = {}): Promise<AppEnvironment> {
  const appDir = mkdtempSync(join(tmpdir(), 'alloy-app-'));
  await build({ root, logLevel: 'warn', build: { outDir: appDir, emptyOutDir: true } });
  if (options.demoModels) await writeDemoModels(join(appDir, 'demo-models'));
  const hub = await FakeHub.start();
  const models = await makeHubModels();
  serveHubModels(hub, models);
  const site = await serveStatic(appDir);
  const browser = await launchBrowser();
  return {
    hub,
    models,
    site,
    browser,
    appDir,
    async close() {
      await browser.close();
      await site.close();
      await hub.close();
      rmSync(models.root, { recursive: true, force: true });
      rmSync(appDir, { recursive: true, force: true });
    },
  };
}
