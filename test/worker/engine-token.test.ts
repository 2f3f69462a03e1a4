/**
 * The worker's token handling (issue 10, item 4): `configure` replaces the token instead of merging
 * it, `forgetToken` clears it, a token entered for one Hub origin never reaches another, and plain
 * http is refused for a Hub on another machine.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EngineService } from '../../src/worker/engine-service';
import { makeHubModels, serveHubModels, type HubModels } from '../fakehub/models';
import { FakeHub, WRITE_TOKEN } from '../fakehub/server';
import { memoryOpfs } from '../helpers/memory-opfs';

let hub: FakeHub;
let other: FakeHub;
let models: HubModels;

beforeAll(async () => {
  hub = await FakeHub.start();
  other = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
  serveHubModels(other, models);
});
afterAll(async () => {
  await hub.close();
  await other.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => {
  hub.resetLog();
  other.resetLog();
});

function service(): EngineService {
  const root = memoryOpfs().root;
  return new EngineService({ storageRoot: async () => root, demoBaseUrl: 'http://127.0.0.1:9/demo-models/' });
}

const bearer = `Bearer ${WRITE_TOKEN}`;
const hubAuthorizations = (h: FakeHub): (string | null)[] => h.requests.filter((r) => r.server === 'hub').map((r) => r.authorization);

describe('EngineService token handling', () => {
  it('sends the token while signed in, and none after a configure without it (sign-out)', async () => {
    const engine = service();
    await engine.configure({ hubUrl: hub.url, accessToken: WRITE_TOKEN, tokenOrigin: new URL(hub.url).origin });
    await engine.inspectModel({ kind: 'hub', repo: models.ids.a });
    expect(hubAuthorizations(hub).length).toBeGreaterThan(0);
    expect(new Set(hubAuthorizations(hub))).toEqual(new Set([bearer]));

    hub.resetLog();
    await engine.configure({ hubUrl: hub.url });
    await engine.inspectModel({ kind: 'hub', repo: models.ids.b });
    expect(hubAuthorizations(hub).length).toBeGreaterThan(0);
    expect(hubAuthorizations(hub).every((a) => a === null)).toBe(true);
  });

  it('forgetToken clears the token, even without another configure', async () => {
    const engine = service();
    await engine.configure({ hubUrl: hub.url, accessToken: WRITE_TOKEN });
    await engine.forgetToken();
    await engine.inspectModel({ kind: 'hub', repo: models.ids.a });
    expect(hubAuthorizations(hub).length).toBeGreaterThan(0);
    expect(hubAuthorizations(hub).every((a) => a === null)).toBe(true);
  });

  it('does not send a token entered for one Hub origin to another', async () => {
    const engine = service();
    await engine.configure({ hubUrl: hub.url, accessToken: WRITE_TOKEN, tokenOrigin: new URL(hub.url).origin });
    await engine.configure({ hubUrl: other.url, accessToken: WRITE_TOKEN, tokenOrigin: new URL(hub.url).origin });
    await engine.inspectModel({ kind: 'hub', repo: models.ids.a });
    expect(hubAuthorizations(other).length).toBeGreaterThan(0);
    expect(hubAuthorizations(other).every((a) => a === null)).toBe(true);
    expect(other.requests.filter((r) => r.authorization !== null)).toEqual([]);
  });

  it('refuses plain http for a Hub on another machine, and keeps the previous Hub', async () => {
    const engine = service();
    await engine.configure({ hubUrl: hub.url });
    await expect(engine.configure({ hubUrl: 'http://hub.example.com', accessToken: WRITE_TOKEN })).rejects.toThrow(
      /Plain http:\/\/ is refused for a Hub on another machine \(hub\.example\.com\): use https:\/\//,
    );
    await engine.inspectModel({ kind: 'hub', repo: models.ids.a });
    expect(hubAuthorizations(hub).length).toBeGreaterThan(0);
    expect(hubAuthorizations(hub).every((a) => a === null)).toBe(true);
  });
});
