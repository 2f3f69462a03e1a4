/**
 * `npm run deploy -- --space OWNER/NAME` (scripts/deploy-space.ts) against the fake Hub: it
 * creates a static Space, uploads the built app with a README whose front matter makes it a
 * static Space with OAuth sign-in, and a second deploy replaces the files (stale ones deleted).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FAKE_USER, FakeHub, READ_TOKEN, WRITE_TOKEN } from '../fakehub/server';

const root = join(import.meta.dirname, '..', '..');
let hub: FakeHub;
let work: string;

function deploy(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(root, 'scripts', 'run-ts.mjs'), 'scripts/deploy-space.ts', ...args],
      { cwd: root, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function writeBuild(dir: string, files: Record<string, string | Uint8Array>): void {
  rmSync(dir, { recursive: true, force: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
}

const WEIGHTS = new Uint8Array(3000).map((_, i) => (i * 13) & 0xff);

beforeAll(async () => {
  hub = await FakeHub.start();
  work = mkdtempSync(join(tmpdir(), 'alloy-deploy-'));
  writeFileSync(join(work, 'token'), `${WRITE_TOKEN}\n`);
  writeFileSync(join(work, 'read-token'), READ_TOKEN);
});
afterAll(async () => {
  await hub.close();
  rmSync(work, { recursive: true, force: true });
});

describe('npm run deploy', () => {
  it('creates a static Space and uploads the build with the README front matter', async () => {
    const build = join(work, 'app');
    writeBuild(build, {
      'index.html': '<!doctype html><title>Alloy</title>',
      'assets/index-abc123.js': 'console.log(1)',
      'manifest.webmanifest': '{"start_url":"./"}',
      'demo-models/base/model.safetensors': WEIGHTS,
    });
    const space = `${FAKE_USER}/alloy`;
    const result = await deploy(['--space', space, '--hub', hub.url, '--token-file', join(work, 'token'), '--dir', build]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`created the Space ${space}`);
    expect(result.stdout).toContain(`done: ${hub.url}/spaces/${space}`);

    const create = hub.requests.find((r) => r.path === '/api/repos/create')!;
    expect(create.status).toBe(200);
    const files = hub.repoFiles(`spaces/${space}`)!;
    expect([...files.keys()].sort()).toEqual(
      ['.gitattributes', 'README.md', 'assets/index-abc123.js', 'demo-models/base/model.safetensors', 'index.html', 'manifest.webmanifest'].sort(),
    );
    expect(new TextDecoder().decode(files.get('index.html'))).toBe('<!doctype html><title>Alloy</title>');
    expect(files.get('demo-models/base/model.safetensors')).toEqual(WEIGHTS);
    // The weights went through LFS (preupload said so), to the storage origin.
    expect(hub.commits.at(-1)!.lfsFiles).toEqual(['demo-models/base/model.safetensors']);
    expect(hub.requests.some((r) => r.server === 'storage' && r.method === 'PUT')).toBe(true);

    const readme = new TextDecoder().decode(files.get('README.md'));
    const front = /^---\n([\s\S]*?)\n---\n/.exec(readme);
    expect(front).not.toBeNull();
    expect(parse(front![1])).toEqual({
      title: 'Alloy',
      emoji: '⚗️',
      colorFrom: 'indigo',
      colorTo: 'purple',
      sdk: 'static',
      app_file: 'index.html',
      pinned: false,
      license: 'lgpl-3.0',
      short_description: 'mergekit-compatible LLM merging in your browser',
      hf_oauth: true,
      hf_oauth_scopes: ['read-repos', 'gated-repos', 'write-repos', 'manage-repos'],
    });
    // The Hub's limit for short_description.
    expect((parse(front![1]) as { short_description: string }).short_description.length).toBeLessThanOrEqual(60);
  }, 120_000);

  it('replaces the files of an existing Space, deleting those of the earlier build (token from HF_TOKEN)', async () => {
    const build = join(work, 'app2');
    writeBuild(build, { 'index.html': '<!doctype html><title>Alloy 2</title>', 'assets/index-def456.js': 'console.log(2)' });
    const space = `${FAKE_USER}/alloy`;
    const result = await deploy(['--space', space, '--hub', hub.url, '--dir', build], { HF_TOKEN: WRITE_TOKEN });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('exists: replacing its files');
    const files = hub.repoFiles(`spaces/${space}`)!;
    expect([...files.keys()].sort()).toEqual(['.gitattributes', 'README.md', 'assets/index-def456.js', 'index.html']);
    expect([...hub.commits.at(-1)!.deleted].sort()).toEqual(['assets/index-abc123.js', 'demo-models/base/model.safetensors', 'manifest.webmanifest']);
  }, 120_000);

  it('says what is wrong: no token, a read-only token, a missing build, a bad Space name', async () => {
    const build = join(work, 'app');
    const noToken = await deploy(['--space', `${FAKE_USER}/x`, '--hub', hub.url, '--dir', build]);
    expect(noToken.code).not.toBe(0);
    expect(noToken.stderr).toMatch(/no token: set HF_TOKEN or pass --token-file FILE/);

    const readOnly = await deploy(['--space', `${FAKE_USER}/y`, '--hub', hub.url, '--dir', build, '--token-file', join(work, 'read-token')]);
    expect(readOnly.code).not.toBe(0);
    expect(readOnly.stderr).toMatch(/could not create the Space alloy-tester\/y on http:\/\/127\.0\.0\.1:\d+ \(403\)/);

    const noBuild = await deploy(['--space', `${FAKE_USER}/z`, '--hub', hub.url, '--dir', join(work, 'nothing')], { HF_TOKEN: WRITE_TOKEN });
    expect(noBuild.stderr).toMatch(/holds no built app \(no index\.html\): run "npm run build" first/);

    const badName = await deploy(['--space', 'just-a-name', '--hub', hub.url, '--dir', build], { HF_TOKEN: WRITE_TOKEN });
    expect(badName.stderr).toMatch(/--space must be OWNER\/NAME/);

    const plainHttp = await deploy(['--space', `${FAKE_USER}/w`, '--hub', 'http://example.com', '--dir', build], { HF_TOKEN: WRITE_TOKEN });
    expect(plainHttp.stderr).toMatch(/Plain http:\/\/ is refused/);
    expect(hub.repoFiles(`spaces/${FAKE_USER}/y`)).toBeNull();
    expect(hub.repoFiles(`spaces/${FAKE_USER}/z`)).toBeNull();
  }, 120_000);
});
