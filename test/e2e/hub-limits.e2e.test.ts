/**
 * The real Hub's limits, in the app (issue 15, item 6), against the strict fake Hub (no CDN
 * preflights): every `resolve` counts against the Hub's quota, so a merge of 3 models reads each
 * shard in whole blocks (one request per 16 MiB block, here one per shard), never per tensor; a
 * 429 is waited out for its `Retry-After`, visibly in the Run step's download list; and a limit
 * that does not lift ends with a clear message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HUB_NAMESPACE } from '../fakehub/models';
import { chromiumAvailable } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';

const BLOCK_BYTES = 16 * 1024 * 1024; // the OPFS cache's default block (src/storage/opfs-shard-cache.ts)

const tiesYaml = (models: readonly string[], base: string): string =>
  [
    'models:',
    ...models.flatMap((m) => [`  - model: ${m}`, '    parameters: {weight: 0.5, density: 0.5}']),
    `base_model: ${base}`,
    'merge_method: ties',
    'dtype: bfloat16',
    '',
  ].join('\n');

describe.skipIf(!chromiumAvailable())('the Hub’s limits in the app', () => {
  let env: AppEnvironment;
  beforeAll(async () => {
    env = await startAppEnvironment();
    // A copy of ft-b under another id: downloaded fresh by the second test (the first one's
    // downloads stay in the OPFS cache).
    env.hub.addModelDir(`${HUB_NAMESPACE}/ft-c`, env.models.b.dir);
  }, 300_000);
  afterAll(async () => {
    await env?.close();
  });

  async function openWithConfig(yaml: string): Promise<void> {
    const { page } = env.browser;
    await page.goto(`${env.site.url}/?hub=${encodeURIComponent(env.hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.locator('#yaml-editor').fill(yaml);
    await page.getByText('valid', { exact: true }).waitFor({ timeout: 60_000 });
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).first().waitFor({ timeout: 60_000 });
  }

  it('merges 3 models with one resolve request per shard block, waiting out a 429 visibly', async () => {
    const { page } = env.browser;
    const { hub, models } = env;
    const ids = [models.ids.base, models.ids.a, models.ids.b];
    await openWithConfig(tiesYaml([models.ids.a, models.ids.b], models.ids.base));

    hub.resetLog();
    let limited = false;
    hub.faults = {
      rateLimit: (_n, record) => {
        if (limited || !record.path.startsWith(`/${models.ids.a}/`) || !record.path.endsWith('.safetensors')) return undefined;
        limited = true;
        return 2;
      },
    };
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    const wait = page.locator('.downloads .message', { hasText: 'The Hub asks to wait 2 s (rate limit); retrying…' });
    await wait.waitFor({ timeout: 60_000 });
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    hub.faults = {};

    const resolves = hub.requests.filter((r) => r.server === 'hub' && r.path.includes('/resolve/'));
    const weightResolves = resolves.filter((r) => r.path.endsWith('.safetensors') && r.fault === undefined);
    // Each model is one shard smaller than a block: one range request each, whatever its tensor count.
    const shards = ids.map((id) => hub.repoFiles(id)!.get('model.safetensors')!.byteLength);
    expect(shards.every((size) => size < BLOCK_BYTES)).toBe(true);
    expect(weightResolves.map((r) => r.path.split('/resolve/')[0].slice(1)).sort()).toEqual([...ids].sort());
    // A shard no larger than a block is one whole-file GET (no Range header at all).
    expect(weightResolves.map((r) => r.range)).toEqual([null, null, null]);
    // Besides: the one refused by the rate limit, and the base's small files copied to the output
    // (whole, one request each). 8 requests for this merge; at real size it is one per 16 MiB of
    // weights: 320 for a 5 GB shard, about 900 for a 7B model in bf16.
    const others = resolves.filter((r) => !r.path.endsWith('.safetensors')).map((r) => r.path.split('/').pop());
    expect(others.sort()).toEqual(['generation_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(resolves.filter((r) => r.path.startsWith(`/${models.ids.base}/`) && !r.path.endsWith('.safetensors')).length).toBe(4);
    expect(resolves.length).toBe(8);
    expect(resolves.filter((r) => r.fault === 'rate-limit').length).toBe(1);
    // Every CDN request was one a browser sends without a preflight.
    expect(hub.requests.filter((r) => r.server === 'cdn' && r.refused !== undefined)).toEqual([]);
  });

  it('ends with a clear message in the download list when the limit does not lift', async () => {
    const { page } = env.browser;
    const { hub, models } = env;
    const ftC = `${HUB_NAMESPACE}/ft-c`;
    await openWithConfig(tiesYaml([models.ids.a, ftC], models.ids.base));
    hub.resetLog();
    hub.faults = { rateLimit: (_n, record) => (record.path.startsWith(`/${ftC}/`) && record.path.endsWith('.safetensors') ? 1 : undefined) };
    try {
      await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
      const message = page.locator('.downloads .message', { hasText: 'stopped by the Hub’s rate limit (429)' });
      await message.waitFor({ timeout: 120_000 });
      expect(await message.textContent()).toMatch(
        /downloading model\.safetensors of alloy-test\/ft-c was stopped by the Hub’s rate limit \(429\): it kept refusing after 6 tries\. .*wait a few minutes, then merge again\./,
      );
      expect(hub.requests.filter((r) => r.fault === 'rate-limit').length).toBe(6);
    } finally {
      hub.faults = {};
    }
  });
});
