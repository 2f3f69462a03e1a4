/**
 * "Sign in with Hugging Face" as on a static Space (issue 15, item 1), end to end against the fake
 * Hub's OAuth endpoints: the Space's injected client id, the Hub's consent redirect with a PKCE
 * code, the token exchange and userinfo by `@huggingface/hub`; the code and state leave the
 * address bar; the token then creates a repo and pushes. In the Space page's frame (storage
 * partitioned or denied) the app offers to open itself in its own tab.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Frame, Page } from 'playwright-core';
import { FAKE_USER, OAUTH_CLIENT_ID } from '../fakehub/server';
import { chromiumAvailable } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';

/** What a static Space with `hf_oauth: true` injects into the page. */
const SPACE_VARIABLES = `window.huggingface = { variables: { OAUTH_CLIENT_ID: ${JSON.stringify(OAUTH_CLIENT_ID)}, OAUTH_SCOPES: 'openid profile' } };`;

describe.skipIf(!chromiumAvailable())('signing in with Hugging Face (OAuth) as on a Space', () => {
  let env: AppEnvironment;
  beforeAll(async () => {
    env = await startAppEnvironment();
    await env.browser.context.addInitScript(SPACE_VARIABLES);
  }, 300_000);
  afterAll(async () => {
    await env?.close();
  });

  /** Merges ft-a and ft-b (linear) in the page or frame and waits for the Result step. */
  async function mergeToResult(target: Page | Frame): Promise<string> {
    const { models } = env;
    await target.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await target.getByRole('region', { name: 'Confirm the Hub' }).getByRole('button', { name: `Use ${new URL(env.hub.url).host}` }).click();
    await target.locator('#yaml-editor').fill(
      ['models:', `  - model: ${models.ids.a}`, '    parameters: {weight: 0.5}', `  - model: ${models.ids.b}`, '    parameters: {weight: 0.5}', 'merge_method: linear', 'dtype: bfloat16', ''].join('\n'),
    );
    await target.getByText('valid', { exact: true }).waitFor({ timeout: 60_000 });
    await target.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await target.getByRole('button', { name: 'Start merge' }).and(target.locator(':enabled')).click();
    await target.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    return (await target.locator('.files h3').first().textContent())!.trim();
  }

  it('signs in through the Hub’s OAuth redirect, cleans the address, and the token pushes', async () => {
    const { page } = env.browser;
    const { hub } = env;
    const failure = () => env.browser.log.join('\n');
    await page.goto(`${env.site.url}/?hub=${encodeURIComponent(hub.url)}`);
    const outputName = await mergeToResult(page);

    hub.resetLog();
    await page.getByRole('button', { name: 'Sign in with Hugging Face' }).click();
    await page.getByText(`as ${FAKE_USER}`).waitFor({ timeout: 60_000 });
    expect(await page.getByText('(Hugging Face sign-in', { exact: false }).count(), failure()).toBeGreaterThan(0);

    // The round trip: the Hub's consent page redirected back with a code, exchanged once.
    const authorize = hub.requests.find((r) => r.path === '/oauth/authorize')!;
    const query = new URLSearchParams(authorize.query);
    expect(query.get('client_id')).toBe(OAUTH_CLIENT_ID);
    expect(query.get('code_challenge_method')).toBe('S256');
    expect(query.get('scope')!.split(' ').sort()).toEqual(['gated-repos', 'manage-repos', 'openid', 'profile', 'read-repos', 'write-repos']);
    expect(query.get('redirect_uri')).toBe(`${env.site.url}/?hub=${encodeURIComponent(hub.url)}`);
    expect(hub.requests.filter((r) => r.path === '/oauth/token').map((r) => r.status)).toEqual([200]);
    expect(hub.oauthTokens.length).toBe(1);
    // No code or state left in the address; the Hub address stays.
    const address = new URL(page.url());
    expect(address.searchParams.has('code')).toBe(false);
    expect(address.searchParams.has('state')).toBe(false);
    expect(address.searchParams.get('hub')).toBe(hub.url);
    // The Hub was confirmed before sign-in: no second confirmation after the redirect.
    expect(await page.getByRole('region', { name: 'Confirm the Hub' }).count()).toBe(0);

    // The OAuth token creates the repo and pushes.
    await page.getByRole('button', { name: 'Push to the Hub' }).click();
    await page.getByText('Your model is at').waitFor({ timeout: 120_000 });
    const files = hub.repoFiles(`${FAKE_USER}/${outputName}`);
    expect(files, failure()).not.toBeNull();
    expect([...files!.keys()]).toEqual(expect.arrayContaining(['model.safetensors', 'config.json', 'README.md']));
    const create = hub.requests.find((r) => r.path === '/api/repos/create' && r.method === 'POST')!;
    expect(create.authorization).toBe(`Bearer ${hub.oauthTokens[0]}`);
    expect(create.status).toBe(200);
  });

  it('inside the Space page’s frame, offers to open the app in its own tab, and starts no sign-in there', async () => {
    const { page } = env.browser;
    const { hub } = env;
    const appUrl = `${env.site.url}/?hub=${encodeURIComponent(hub.url)}`;
    // The Space page: another site (localhost, not 127.0.0.1; a secure context as
    // https://huggingface.co is) framing the app, served from loopback like the app.
    const spacePage = createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end(`<!doctype html><title>Space</title><iframe src="${appUrl}" style="width:1400px;height:2000px"></iframe>`);
    });
    await new Promise<void>((resolve) => spacePage.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      spacePage.closeAllConnections();
      return new Promise<void>((resolve) => spacePage.close(() => resolve()));
    });
    hub.resetLog();
    await page.goto(`http://localhost:${(spacePage.address() as AddressInfo).port}/spaces/alloy-tester/alloy`);
    const frame = await (await page.waitForSelector('iframe')).contentFrame();
    // Headless Chromium denies OPFS to this third-party frame ("Storage directory access is
    // denied"), as Chrome does with third-party cookies blocked: the app offers its own tab.
    const notice = frame!.getByRole('region', { name: 'Open Alloy in its own tab' });
    await notice.waitFor({ timeout: 60_000 });
    const link = notice.getByRole('link', { name: 'Open Alloy in its own tab ↗' });
    expect(await link.getAttribute('target')).toBe('_blank');
    expect(await link.getAttribute('href')).toBe(appUrl);
    // The same app opened on its own (not framed) shows no such notice.
    const own = await env.browser.context.newPage();
    try {
      await own.goto(appUrl);
      await own.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
      expect(await own.getByRole('region', { name: 'Open Alloy in its own tab' }).count()).toBe(0);
    } finally {
      await own.close();
    }
    // Nothing was started in the frame.
    expect(hub.requests.filter((r) => r.path.startsWith('/oauth/') || r.path.startsWith('/.well-known/'))).toEqual([]);
  });
});
