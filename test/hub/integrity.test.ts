/**
 * Integrity of Hub downloads (issue 10, item 5): small files read whole are checked against the git
 * blob id (non-LFS) or sha256 (LFS) the listing gives, and safetensors header bytes read by range
 * for planning are compared with the verified file.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gitBlobId, HubClient, HubError, sha256Hex } from '../../src/hub';
import { loadModelMetadata } from '../../src/plan';
import { MemoryByteSource } from '../../src/storage';
import { HubModelFolder } from '../../src/storage/browser';
import { makeHubModels, serveHubModels, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';

let hub: FakeHub;
let models: HubModels;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => {
  hub.resetLog();
  hub.faults = {};
});

describe('hashes', () => {
  it('computes git blob ids and sha256 as git and sha256sum do', async () => {
    // `printf 'hello\n' | git hash-object --stdin`, and the empty blob every git knows.
    expect(await gitBlobId(new TextEncoder().encode('hello\n'))).toBe('ce013625030ba8dba906f756967f9e9ca394464a');
    expect(await gitBlobId(new Uint8Array(0))).toBe('e69de29bb2d1d6434b8b29ae775ad8c2e48c5391');
    const bytes = readFileSync(join(models.a.dir, 'config.json'));
    expect(await sha256Hex(bytes)).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});

describe('verified downloads', () => {
  it('lists the Hub’s git blob id for non-LFS files and the pointer’s for LFS files', async () => {
    const snapshot = await new HubClient({ hubUrl: hub.url }).resolveRepo(models.ids.a);
    const config = snapshot.files.find((f) => f.path === 'config.json')!;
    const bytes = readFileSync(join(models.a.dir, 'config.json'));
    expect(config.oid).toBe(createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex'));
    const weights = snapshot.files.find((f) => f.path === 'model.safetensors')!;
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${weights.sha256}\nsize ${weights.size}\n`;
    expect(weights.oid).toBe(createHash('sha1').update(`blob ${pointer.length}\0`).update(pointer).digest('hex'));
  });

  it('reads config.json verified by its git blob id, and refuses a tampered one naming the file', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const folder = await HubModelFolder.open(client, models.ids.a);
    expect(await folder.readText('config.json')).toBe(readFileSync(join(models.a.dir, 'config.json'), 'utf8'));
    expect(folder.verified.get('config.json')).toBe('git-blob');

    hub.faults = { tamper: (repo, path) => repo === models.ids.b && path === 'config.json' };
    const tampered = await HubModelFolder.open(client, models.ids.b);
    const error = await tampered.readText('config.json').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).kind).toBe('integrity');
    expect((error as Error).message).toMatch(
      /^alloy-test\/ft-b: the download of config\.json does not match the Hub's git blob id \(got [0-9a-f]{40}, the Hub lists [0-9a-f]{40}\): it was not used/,
    );
    expect(tampered.verified.has('config.json')).toBe(false);
  });

  it('keeps the header ranges read for planning and re-checks them against the verified file', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const folder = await HubModelFolder.open(client, models.ids.a);
    await loadModelMetadata(folder, models.ids.a, models.ids.a);
    const ranges = folder.rangesRead('model.safetensors');
    expect(ranges.length).toBeGreaterThan(0);
    expect(ranges[0].offset).toBe(0);

    const disk = new Uint8Array(readFileSync(join(models.a.dir, 'model.safetensors')));
    await folder.recheckRanges('model.safetensors', new MemoryByteSource('verified', disk));

    // A verified file whose header differs in one byte from what the plan was built from.
    const other = disk.slice();
    other[9] ^= 0x20;
    await expect(folder.recheckRanges('model.safetensors', new MemoryByteSource('verified', other))).rejects.toThrow(
      /^alloy-test\/ft-a: the bytes \d+\.\.\d+ of model\.safetensors read for planning \(its safetensors header\) differ from the verified download/,
    );
  });
});
