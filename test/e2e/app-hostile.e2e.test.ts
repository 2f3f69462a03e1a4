/**
 * The app against hostile input and for its secrets (issue 10), in headless Chromium with the real
 * worker and the Content-Security-Policy of index.html on: a `?hub=` address must be confirmed
 * (its host shown) before a token is sent; sign-out stops the Authorization header; a token does
 * not follow a Hub URL changed in Settings; plain http Hubs are refused; a tampered non-LFS file is
 * refused; an alias-bomb link leaves the page responsive and an oversized link is refused.
 */
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveHubModels, TIES_YAML } from '../fakehub/models';
import { FakeHub, FAKE_USER, WRITE_TOKEN } from '../fakehub/server';
import { chromiumAvailable, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';

const BEARER = `Bearer ${WRITE_TOKEN}`;
const encodeLink = (text: string): string => deflateRawSync(Buffer.from(text, 'utf8')).toString('base64url');

describe.skipIf(!chromiumAvailable())('the app against hostile input (real worker, fake hub, CSP on)', () => {
  let env: AppEnvironment;
  let other: FakeHub;
  let plain: FakeHub;
  let browser: BrowserSession;
  const failure = () => browser.log.join('\n');

  beforeAll(async () => {
    env = await startAppEnvironment();
    browser = env.browser;
    other = await FakeHub.start();
    serveHubModels(other, env.models);
    // Weights in git itself (no LFS), so that only their git blob ids vouch for them.
    plain = await FakeHub.start();
    serveHubModels(plain, env.models, { lfs: () => false });
  }, 300_000);

  afterAll(async () => {
    await other?.close();
    await plain?.close();
    await env?.close();
  });

  const steps = () => browser.page.getByRole('navigation', { name: 'Steps' });
  const withToken = (h: FakeHub) => h.requests.filter((r) => r.authorization !== null);

  async function openApp(query: string, hash = ''): Promise<void> {
    // A fresh document each time (a goto that only changes the hash would not reload the page).
    await browser.page.goto('about:blank');
    await browser.page.goto(`${env.site.url}/${query}${hash}`);
    await browser.page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
  }

  /** Types into the model search box, which asks the Hub (`/api/models?search=`). */
  async function searchHub(h: FakeHub, text: string): Promise<void> {
    const page = browser.page;
    await steps().getByRole('button', { name: /Models/ }).click();
    const before = h.requests.filter((r) => r.path === '/api/models').length;
    await page.locator('#hub-model-input').fill(text);
    await expect.poll(() => h.requests.filter((r) => r.path === '/api/models').length, { timeout: 20_000, message: failure() }).toBeGreaterThan(before);
  }

  it('ships a Content-Security-Policy that blocks injected scripts', async () => {
    await openApp('');
    const page = browser.page;
    const policy = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
    expect(policy).toContain("default-src 'self'");
    expect(policy).toContain("script-src 'self' 'wasm-unsafe-eval'");
    // An injected inline script does not run, and the browser reports the violation.
    const outcome = await page.evaluate(
      () =>
        new Promise<{ ran: boolean; violated: string }>((resolve) => {
          document.addEventListener('securitypolicyviolation', (e) => resolve({ ran: 'alloyInjected' in window, violated: e.effectiveDirective }), { once: true });
          const script = document.createElement('script');
          script.textContent = 'window.alloyInjected = true';
          document.head.append(script);
        }),
    );
    expect(outcome).toEqual({ ran: false, violated: 'script-src-elem' });
    browser.log.length = 0;
  });

  it('asks to confirm a ?hub= address (its host shown) before a remembered token is sent; sign-out stops the token', async () => {
    const { hub, models } = env;
    const page = browser.page;
    const host = new URL(hub.url).host;
    // A token remembered for the fake hub's origin, as a previous visit would have left it.
    await page.evaluate(
      ({ origin, token, hubUrl, user }) =>
        new Promise<void>((resolve, reject) => {
          const open = indexedDB.open('alloy');
          open.onupgradeneeded = () => open.result.createObjectStore('state');
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const tx = open.result.transaction('state', 'readwrite');
            tx.objectStore('state').put({ [origin]: { token, hubUrl, username: user } }, 'hf-tokens');
            tx.oncomplete = () => {
              open.result.close();
              resolve();
            };
            tx.onerror = () => reject(tx.error);
          };
        }),
      { origin: new URL(hub.url).origin, token: WRITE_TOKEN, hubUrl: hub.url, user: FAKE_USER },
    );
    hub.resetLog();
    await openApp(`?hub=${encodeURIComponent(hub.url)}`);
    const banner = page.getByRole('region', { name: 'Confirm the Hub' });
    await banner.waitFor();
    expect(await banner.textContent()).toContain(`This link uses another Hub: ${host}`);

    // Before confirming: the Hub is read anonymously, and signing in is refused.
    await page.locator('#yaml-editor').fill(TIES_YAML(models.ids));
    await page.getByText('valid', { exact: true }).waitFor();
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000, message: failure() }).toBe(3);
    await searchHub(hub, 'alloy');
    expect(hub.requests.length).toBeGreaterThan(0);
    expect(withToken(hub), failure()).toEqual([]);
    expect(await page.getByTitle('Signed in to the Hub').count()).toBe(0);

    await banner.getByRole('button', { name: `Use ${host}` }).click();
    await banner.waitFor({ state: 'detached' });
    await page.getByTitle('Signed in to the Hub').waitFor();
    hub.resetLog();
    await searchHub(hub, 'alloy-test');
    expect(withToken(hub).map((r) => r.authorization)).toContain(BEARER);

    // CPU backend, then merge: Review and Result say what was verified.
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });
    await steps().getByRole('button', { name: /Review/ }).click();
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
    const review = page.getByRole('region', { name: 'Integrity' });
    await review.waitFor();
    expect(await review.textContent()).toMatch(/✓ verified\s*\d+ Hub files matched the Hub's hashes\s+\(\d+ by git blob id\)/);
    expect(await review.textContent()).toMatch(/3 weight files are verified as they download/);
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const result = page.getByRole('region', { name: 'Integrity' });
    expect(await result.textContent()).toMatch(/✓ verified\s*\d+ Hub files matched the Hub's hashes\s+\(3 by sha256, \d+ by git blob id\)/);

    // Sign-out: no later request carries the token, and it is gone from storage.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#hf-token').waitFor();
    hub.resetLog();
    await searchHub(hub, 'alloy-te');
    expect(withToken(hub), failure()).toEqual([]);
    const stored = await page.evaluate(
      () =>
        new Promise<unknown>((resolve) => {
          const open = indexedDB.open('alloy');
          open.onsuccess = () => {
            const get = open.result.transaction('state').objectStore('state').get('hf-tokens');
            get.onsuccess = () => resolve(get.result ?? null);
          };
        }),
    );
    expect(stored).toBeNull();
  });

  it('does not send the token to a Hub URL changed in Settings, and refuses plain http Hubs', async () => {
    const { hub } = env;
    const page = browser.page;
    // Signed in again (the Result step of the merge above holds the form).
    await steps().getByRole('button', { name: /Result/ }).click();
    await page.locator('#hf-token').fill(WRITE_TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByText(`as ${FAKE_USER}`).waitFor({ timeout: 30_000 });
    expect(hub.requests.some((r) => r.path === '/api/whoami-v2' && r.authorization === BEARER)).toBe(true);

    other.resetLog();
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('#settings-hub').fill(other.url);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('#settings-hub').waitFor({ state: 'detached' });
    await searchHub(other, 'alloy');
    await expect.poll(() => other.requests.filter((r) => r.path.includes('/api/models/')).length, { timeout: 30_000, message: failure() }).toBeGreaterThan(0);
    expect(withToken(other), failure()).toEqual([]);
    expect(await page.getByTitle('Signed in to the Hub').count()).toBe(0);

    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('#settings-hub').fill('http://hub.example.com');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText(/^Plain http:\/\/ is refused for a Hub on another machine \(hub\.example\.com\): use https:\/\//).waitFor();
    await page.keyboard.press('Escape');

    await openApp(`?hub=${encodeURIComponent('http://hub.example.com')}`);
    await page.getByText(/The Hub address in this link \(\?hub=http:\/\/hub\.example\.com\) was refused: Plain http:\/\/ is refused/).waitFor();
    expect(await page.getByRole('region', { name: 'Confirm the Hub' }).count()).toBe(0);
  });

  it('goes back to the saved Hub when the ?hub= address is refused', async () => {
    const page = browser.page;
    // The Hub saved in Settings is `other` now (the test above); the link names `plain`.
    plain.resetLog();
    await openApp(`?hub=${encodeURIComponent(plain.url)}`);
    const banner = page.getByRole('region', { name: 'Confirm the Hub' });
    await banner.waitFor();
    expect(await banner.textContent()).toContain(`This link uses another Hub: ${new URL(plain.url).host}`);
    await banner.getByRole('button', { name: `Use ${other.url} instead` }).click();
    await banner.waitFor({ state: 'detached' });
    expect(new URL(page.url()).searchParams.has('hub')).toBe(false);
    await page.getByText(`Hub: ${new URL(other.url).host}`).waitFor();
    expect(withToken(plain)).toEqual([]);
  });

  it('refuses a tampered non-LFS safetensors file with a message naming it', async () => {
    const { models } = env;
    const page = browser.page;
    plain.faults = { tamper: (repo, path) => repo === models.ids.b && path === 'model.safetensors' };
    await openApp(`?hub=${encodeURIComponent(plain.url)}`);
    await page.locator('#yaml-editor').fill(TIES_YAML(models.ids));
    await page.getByText('valid', { exact: true }).waitFor();
    await steps().getByRole('button', { name: /Review/ }).click();
    await page.locator('#output-name').fill('tampered-merge');
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
    expect(await page.getByRole('region', { name: 'Integrity' }).textContent()).toMatch(/3 weight files are verified as they download/);
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    const message = page.getByText(/the download of model\.safetensors from alloy-test\/ft-b is corrupt: its git blob id is [0-9a-f]{40}, the Hub says [0-9a-f]{40}\./);
    await message.first().waitFor({ timeout: 120_000 });
    expect(await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).count()).toBe(0);
  });

  it('reads an alias-bomb link off the page’s thread (the page stays responsive) and refuses an oversized link', async () => {
    const page = browser.page;
    // A "billion laughs" of 9 levels (9^9 strings), about 260 characters of YAML.
    const levels = 'abcdefghi'.split('');
    const bomb = [
      `${levels[0]}: &${levels[0]} ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`,
      ...levels.slice(1).map((l, i) => `${l}: &${l} [${Array(9).fill(`*${levels[i]}`).join(',')}]`),
      'merge_method: linear',
    ].join('\n');
    await openApp('', `#config=${encodeLink(bomb)}`);
    await page.getByText('Loaded the config from the link.').waitFor();
    // While the config is read, the page answers at once (a main-thread parse blocked it for ~50 s).
    const answer = await Promise.race([
      page.evaluate(() => document.querySelector('#yaml-editor') !== null),
      new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 3000)),
    ]);
    expect(answer).toBe(true);
    const issue = page.locator('#yaml-issues');
    await expect.poll(() => issue.textContent(), { timeout: 30_000, message: failure() }).toMatch(/alias/i);
    expect(await page.locator('#yaml-editor').inputValue()).toBe(bomb);

    // 64 MB of one letter: a link of about 90 KB that would unpack to 64 MB.
    await openApp('', `#config=${encodeLink('a'.repeat(64 * 1024 * 1024))}`);
    await page.getByText(/^The config in this link unpacks to more than 256 KB \(the limit for links\); it was not opened\./).waitFor();
    expect(await page.locator('#yaml-editor').inputValue()).not.toContain('aaaa');
  });

  it('ran every page above without a Content-Security-Policy violation', () => {
    expect(browser.log.filter((line) => /Content Security Policy|Refused to/i.test(line))).toEqual([]);
  });
});
