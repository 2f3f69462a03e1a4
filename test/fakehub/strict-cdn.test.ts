/**
 * The fake Hub's download origin is as strict as the real CDN where browsers notice (issue 15,
 * item 5): no CORS preflight, only CORS-simple GETs; Xet-backed files are listed with `xetHash`
 * and `resolve` redirects them to a signed bridge URL. So a request the real Hub would refuse
 * fails the tests instead of passing them.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeHub } from './server';

const WEIGHTS = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
let hub: FakeHub;

beforeAll(async () => {
  hub = await FakeHub.start();
  hub.addRepo('owner/xet-model', { 'config.json': '{}', 'model.safetensors': WEIGHTS });
  hub.addRepo('owner/lfs-model', { 'model.safetensors': WEIGHTS }, { storage: 'lfs' });
});
afterAll(() => hub.close());
beforeEach(() => hub.resetLog());

/** The CDN URL `resolve` redirects to (read without following the redirect). */
async function cdnLocation(repo: string): Promise<string> {
  const response = await fetch(`${hub.url}/${repo}/resolve/main/model.safetensors`, { redirect: 'manual' });
  expect(response.status).toBe(302);
  return response.headers.get('Location')!;
}

describe('the strict fake CDN', () => {
  it('lists Xet-backed files with xetHash and redirects them to a signed bridge URL on another origin', async () => {
    const info = (await (
      await fetch(`${hub.url}/api/models/owner/xet-model/paths-info/main`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ paths: ['config.json', 'model.safetensors'] }),
      })
    ).json()) as { path: string; xetHash?: string; lfs?: { oid: string } }[];
    const weights = info.find((e) => e.path === 'model.safetensors')!;
    expect(weights.lfs?.oid).toBe(sha256(WEIGHTS));
    expect(weights.xetHash).toMatch(/^[0-9a-f]{64}$/);
    expect(weights.xetHash).not.toBe(sha256(WEIGHTS));
    expect(info.find((e) => e.path === 'config.json')!.xetHash).toBeUndefined();

    const location = new URL(await cdnLocation('owner/xet-model'));
    expect(location.origin).toBe(hub.cdnUrl);
    expect(location.origin).not.toBe(hub.url);
    expect(location.pathname).toMatch(new RegExp(`^/xet-bridge-us/[0-9a-f]+/${weights.xetHash}$`));
    expect(location.searchParams.get('Signature')).toBeTruthy();

    const legacy = new URL(await cdnLocation('owner/lfs-model'));
    expect(legacy.pathname).toBe(`/lfs/${sha256(WEIGHTS)}`);
  });

  it('serves simple GETs: whole, bytes=N-M and bytes=N-', async () => {
    const url = await cdnLocation('owner/xet-model');
    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('Access-Control-Allow-Origin')).toBe('*');
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(WEIGHTS);
    const part = await fetch(url, { headers: { Range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('Content-Range')).toBe('bytes 10-19/4096');
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(WEIGHTS.subarray(10, 20));
    const tail = await fetch(url, { headers: { Range: 'bytes=4000-' } });
    expect(tail.status).toBe(206);
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(WEIGHTS.subarray(4000));
  });

  it('refuses preflights and every request a browser would have preflighted, without CORS headers', async () => {
    const url = await cdnLocation('owner/xet-model');
    const refused: [string, RequestInit][] = [
      ['preflight', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' } }],
      ['HEAD', { method: 'HEAD' }],
      ['Authorization', { headers: { Authorization: 'Bearer hf_x' } }],
      ['suffix range', { headers: { Range: 'bytes=-100' } }],
      ['two ranges', { headers: { Range: 'bytes=0-9,20-29' } }],
      ['reversed range', { headers: { Range: 'bytes=9-0' } }],
      ['custom header', { headers: { 'X-Request-Id': 'abc' } }],
    ];
    for (const [what, init] of refused) {
      const response = await fetch(url, init);
      expect(response.ok, what).toBe(false);
      expect(response.headers.get('Access-Control-Allow-Origin'), what).toBeNull();
    }
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    expect(cdn.length).toBe(refused.length);
    expect(cdn.every((r) => r.refused !== undefined)).toBe(true);
    expect(cdn.find((r) => r.method === 'OPTIONS')!.refused).toMatch(/preflight/);
    expect(cdn.find((r) => r.authorization !== null)!.refused).toMatch(/Authorization/);
  });

  it('answers a resolve with 429 and Retry-After under the rate-limit fault, readable from a browser', async () => {
    hub.faults = { rateLimit: (n) => (n === 1 ? 30 : undefined) };
    try {
      const limited = await fetch(`${hub.url}/owner/xet-model/resolve/main/model.safetensors`, { redirect: 'manual' });
      expect(limited.status).toBe(429);
      expect(limited.headers.get('Retry-After')).toBe('30');
      expect(limited.headers.get('Access-Control-Expose-Headers')).toMatch(/Retry-After/);
      const next = await fetch(`${hub.url}/owner/xet-model/resolve/main/model.safetensors`, { redirect: 'manual' });
      expect(next.status).toBe(302);
      expect(hub.requests.filter((r) => r.fault === 'rate-limit').length).toBe(1);
    } finally {
      hub.faults = {};
    }
  });
});
