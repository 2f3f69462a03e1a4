/**
 * Headless Chromium for the e2e tests: Debian's /usr/bin/chromium (never a downloaded browser),
 * driven by playwright-core, with WebGPU on SwiftShader (docs/testing.md §2, docs/browser.md §5.2) and
 * a persistent profile so that OPFS is the real, disk-backed one.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { build } from 'vite';

export const CHROMIUM = process.env.ALLOY_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Whether to run browser tests: always in CI (.ci/run installs Chromium, so a missing one must fail). */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM) || Boolean(process.env.CI);
}

export interface BrowserSession {
  readonly context: BrowserContext;
  readonly page: Page;
  /** The profile folder (its path is on the browser process's command line). */
  readonly profile: string;
  /** Console lines and page errors, for failure messages. */
  readonly log: string[];
  close(): Promise<void>;
}

/**
 * `webgpu: false`: a browser without WebGPU (no flags enabling it, as on a Linux Chrome by default).
 * `extraArgs`: more command-line flags (`--js-flags=--expose-gc`).
 */
export async function launchBrowser(options: { readonly webgpu?: boolean; readonly extraArgs?: readonly string[] } = {}): Promise<BrowserSession> {
  const profile = mkdtempSync(join(tmpdir(), 'alloy-chromium-'));
  const base = options.webgpu === false ? [...CHROMIUM_ARGS.filter((a) => !/webgpu/i.test(a)), '--disable-features=WebGPU'] : CHROMIUM_ARGS;
  const args = [...base, ...(options.extraArgs ?? [])];
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const log: string[] = [];
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('worker', (w) => w.on('close', () => log.push(`worker closed: ${w.url()}`)));
  return {
    context,
    page,
    profile,
    log,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

let harnessBuilt: Promise<string> | null = null;

/** Builds test/e2e/harness (the engine worker behind a bare page) once per process; returns its folder. */
export function buildHarness(): Promise<string> {
  if (!harnessBuilt) {
    const configFile = new URL('./vite.harness.config.ts', import.meta.url).pathname;
    harnessBuilt = build({ configFile, logLevel: 'error' }).then(() => new URL('../../dist/e2e-harness', import.meta.url).pathname);
  }
  return harnessBuilt;
}

/** Opens the harness page (served from buildHarness's folder at `siteUrl`) and waits until `window.alloyHarness` is there. */
export async function openHarnessPage(page: Page, siteUrl: string): Promise<void> {
  await page.goto(`${siteUrl}/index.html`);
  await page.waitForFunction(() => (window as unknown as { alloyHarness?: unknown }).alloyHarness !== undefined, null, { timeout: 30_000 });
}
