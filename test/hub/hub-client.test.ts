import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { downloadFile, fileExists } from '@huggingface/hub';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HubClient, HubError } from '../../src/hub';
import { makeHubModels, serveHubModels, type HubModels } from '../fakehub/models';
import { FAKE_USER, FakeHub, READ_TOKEN, WRITE_TOKEN } from '../fakehub/server';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

let hub: FakeHub;
let models: HubModels;

beforeAll(async () => {
  // Small tree pages and a small multipart threshold, to exercise pagination and multipart uploads.
  hub = await FakeHub.start({ treePageSize: 3, multipartThreshold: 64 * 1024, multipartChunkSize: 20 * 1024 });
  models = await makeHubModels();
  serveHubModels(hub, models);
  hub.addRepo('alloy-test/private-model', { 'config.json': '{}' }, { private: true, owner: 'someone-else' });
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => hub.resetLog());

describe('reading a repo', () => {
  it('resolves main to a commit and lists every file with its size and LFS sha256, across pages', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const snapshot = await client.resolveRepo(models.ids.a);
    expect(snapshot.commit).toBe(hub.headCommit(models.ids.a));
    expect(snapshot.revision).toBe('main');
    const onDisk = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
    expect(snapshot.files.map((f) => f.path).sort()).toEqual([...onDisk].sort());
    for (const file of snapshot.files) {
      const bytes = readFileSync(join(models.a.dir, file.path));
      expect(file.size).toBe(bytes.byteLength);
      if (file.path.endsWith('.safetensors')) expect(file.sha256).toBe(sha256(bytes));
      else expect(file.sha256).toBeUndefined();
    }
    // 6 files at 3 per page: the listing followed the Link header.
    expect(hub.requests.filter((r) => r.path.includes('/tree/')).length).toBe(2);
  });

  it('reads small files whole and byte ranges of weights (through the CDN redirect)', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const snapshot = await client.resolveRepo(models.ids.base);
    const config = JSON.parse((await client.readText(snapshot, 'config.json'))!) as Record<string, unknown>;
    expect(config.architectures).toEqual(['LlamaForCausalLM']);
    expect(await client.readText(snapshot, 'missing.json')).toBeNull();
    const weights = snapshot.files.find((f) => f.path === 'model.safetensors')!;
    const disk = readFileSync(join(models.base.dir, 'model.safetensors'));
    let counted = 0;
    const bytes = await client.readRange(snapshot, weights, 100, 1100, { onBytes: (n) => (counted += n) });
    expect(Buffer.from(bytes).equals(disk.subarray(100, 1100))).toBe(true);
    expect(counted).toBe(1000);
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    expect(cdn.map((r) => [r.range, r.status])).toEqual([['bytes=100-1099', 206]]);
  });

  it('pins a revision: the commit id works as a revision, an unknown one is explained', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const commit = hub.headCommit(models.ids.base)!;
    expect((await client.resolveRepo(models.ids.base, commit)).commit).toBe(commit);
    await expect(client.resolveRepo(models.ids.base, 'no-such-branch')).rejects.toThrow(/has no revision "no-such-branch" \(404\)/);
  });

  it('answers the library’s own probes: HEAD on raw (fileExists) and the resolve redirect (downloadFile)', async () => {
    expect(await fileExists({ repo: models.ids.a, path: 'model.safetensors', hubUrl: hub.url })).toBe(true);
    expect(await fileExists({ repo: models.ids.a, path: 'nope.safetensors', hubUrl: hub.url })).toBe(false);
    expect(hub.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/raw/')).length).toBe(2);
    const blob = await downloadFile({ repo: models.ids.a, path: 'model.safetensors', hubUrl: hub.url, xet: false });
    const disk = readFileSync(join(models.a.dir, 'model.safetensors'));
    expect(blob!.size).toBe(disk.byteLength);
    expect(Buffer.from(await blob!.slice(8, 16).arrayBuffer()).equals(disk.subarray(8, 16))).toBe(true);
    const probe = hub.requests.find((r) => r.server === 'hub' && r.range === 'bytes=0-0')!;
    expect(probe.status).toBe(302);
  });

  it('paths-info gives the same sizes and hashes as the listing', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const [info] = await client.filesInfo(models.ids.b, 'main', ['model.safetensors']);
    expect(info.sha256).toBe(hub.sha256Of(models.ids.b, 'model.safetensors'));
    expect(info.size).toBe(readFileSync(join(models.b.dir, 'model.safetensors')).byteLength);
  });

  it('explains a missing repo (404) and a private one', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const missing = await client.resolveRepo('alloy-test/nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HubError);
    expect((missing as HubError).kind).toBe('repo-not-found');
    expect((missing as Error).message).toBe(
      'no model alloy-test/nope on the Hub (404) — check the name, or sign in for private/gated models',
    );
    const hidden = await client.resolveRepo('alloy-test/private-model').catch((e: unknown) => e);
    expect((hidden as HubError).kind).toBe('repo-not-found');
    expect((hidden as Error).message).toMatch(/no model alloy-test\/private-model on the Hub .*sign in for private\/gated models/);
    expect(() => client.fileUrl({ repo: 'a/b', commit: 'c' }, 'x y/z.json')).not.toThrow();
    await expect(client.resolveRepo('not a repo id')).rejects.toThrow(/is not a Hub model id/);
  });
});

describe('search and tokens', () => {
  it('searches models by name, most downloaded first, with a limit', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const hits = await client.searchModels('alloy-test/', { limit: 2 });
    expect(hits.map((h) => h.id)).toEqual([models.ids.base, models.ids.a]);
    expect(hits[0].downloads).toBe(300);
    expect(await client.searchModels('ft-b')).toMatchObject([{ id: models.ids.b }]);
    expect(hub.requests.some((r) => r.path === '/api/models' && r.query.includes('search=ft-b'))).toBe(true);
  });

  it('checks a token: who it is, whether it can write; a bad one is explained', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    expect(await client.checkToken(WRITE_TOKEN)).toMatchObject({ name: FAKE_USER, canWrite: true, tokenRole: 'write', orgs: ['alloy-org'] });
    expect(await client.checkToken(READ_TOKEN)).toMatchObject({ canWrite: false, tokenRole: 'read' });
    await expect(client.checkToken('hf_not_a_real_token')).rejects.toThrow(
      `the Hub rejected this token (401): create a token with write access at ${hub.url}/settings/tokens`,
    );
    await expect(client.checkToken('sk-123')).rejects.toThrow(/not a Hugging Face access token \(they start with "hf_"\)/);
  });

  it('a bad token on reads is explained too', async () => {
    const client = new HubClient({ hubUrl: hub.url, accessToken: 'hf_wrong' });
    await expect(client.resolveRepo(models.ids.base)).rejects.toThrow(/the Hub rejected this token \(401\)/);
  });
});

describe('pushing', () => {
  it('creates a repo and uploads regular, basic-LFS and multipart-LFS files in one commit with progress', async () => {
    const client = new HubClient({ hubUrl: hub.url, accessToken: WRITE_TOKEN });
    const repo = `${FAKE_USER}/pushed-model`;
    expect(await client.createRepo(repo, { private: true })).toEqual({ url: `${hub.url}/${repo}`, created: true });
    expect((await client.createRepo(repo, { private: true })).created).toBe(false);

    const small = new Uint8Array(30 * 1024).map((_, i) => (i * 7) & 0xff);
    const large = new Uint8Array(100 * 1024).map((_, i) => (i * 13 + 5) & 0xff);
    const readme = '---\nlicense: apache-2.0\n---\n# pushed-model\n';
    const phases = new Set<string>();
    const finalProgress = new Map<string, number>();
    const result = await client.upload(
      repo,
      [
        { path: 'README.md', content: new Blob([readme]) },
        { path: 'model-00001-of-00002.safetensors', content: new Blob([small]) },
        { path: 'model-00002-of-00002.safetensors', content: new Blob([large]) },
      ],
      {
        commitTitle: 'Upload merge',
        onProgress: (p) => {
          phases.add(p.phase);
          for (const [path, fraction] of p.files) finalProgress.set(path, fraction);
        },
      },
    );
    expect(result.commitOid).toBe(hub.headCommit(repo));
    const commit = hub.commits.at(-1)!;
    expect(commit.summary).toBe('Upload merge');
    expect([...commit.lfsFiles].sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    const files = hub.repoFiles(repo)!;
    expect(new TextDecoder().decode(files.get('README.md'))).toBe(readme);
    expect(Buffer.from(files.get('model-00001-of-00002.safetensors')!).equals(Buffer.from(small))).toBe(true);
    expect(Buffer.from(files.get('model-00002-of-00002.safetensors')!).equals(Buffer.from(large))).toBe(true);
    // 100 KiB at 20 KiB parts: 5 part PUTs and one completion; the small LFS file in one PUT.
    expect(hub.requests.filter((r) => r.method === 'PUT' && r.path.includes('/part/')).length).toBe(5);
    expect(hub.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/complete')).length).toBe(1);
    expect(hub.requests.filter((r) => r.method === 'PUT' && !r.path.includes('/part/')).length).toBe(1);
    expect(phases.has('committing')).toBe(true);
    expect([...finalProgress.values()].every((f) => f === 1)).toBe(true);
  });

  it('explains a read-only token and a token that may not write to a namespace', async () => {
    const reader = new HubClient({ hubUrl: hub.url, accessToken: READ_TOKEN });
    await expect(reader.createRepo(`${FAKE_USER}/x`, { private: false })).rejects.toThrow(/may not create .* \(403\).*create a token with write access/);
    const writer = new HubClient({ hubUrl: hub.url, accessToken: WRITE_TOKEN });
    await expect(writer.createRepo('someone-else/x', { private: false })).rejects.toThrow(/\(403\)/);
    const anonymous = new HubClient({ hubUrl: hub.url });
    await expect(anonymous.createRepo(`${FAKE_USER}/x`, { private: false })).rejects.toThrow(/sign in to create a repo/);
  });
});
