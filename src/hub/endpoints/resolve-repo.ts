import { listFiles, modelInfo } from '@huggingface/hub';
import { HubError } from '../errors';
import type { HubFile, HubRepoSnapshot } from '../types';
import { callContext, callHub, checkRepoId, credentials, toHubFile, type HubContext } from './context';

const SHA_RE = /^[0-9a-f]{40}$/;

/**
 * Resolves `revision` (default `main`) to a commit (model info) and lists every file with its
 * size and hashes at that commit (the tree, all pages).
 */
export async function resolveRepo(ctx: HubContext, repo: string, revision?: string, signal?: AbortSignal): Promise<HubRepoSnapshot> {
  checkRepoId(repo);
  const asked = revision ?? 'main';
  const context = callContext(ctx, { repo, revision: asked, action: 'read' });
  const info = await callHub(ctx, context, signal, (fetch) =>
    modelInfo({ name: repo, revision: asked, additionalFields: ['sha'], hubUrl: ctx.hubUrl, fetch, ...credentials(ctx) }),
  );
  const commit = typeof info.sha === 'string' && SHA_RE.test(info.sha) ? info.sha : SHA_RE.test(asked) ? asked : undefined;
  if (!commit) {
    throw new HubError(`the Hub did not say which commit ${repo}@${asked} is (no "sha" in its answer)`, 'other');
  }
  const files: HubFile[] = [];
  await callHub(ctx, { ...context, action: 'list the files of' }, signal, async (fetch) => {
    for await (const entry of listFiles({ repo, revision: commit, recursive: true, hubUrl: ctx.hubUrl, fetch, ...credentials(ctx) })) {
      if (entry.type !== 'file') continue;
      files.push(toHubFile(entry));
    }
  });
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { repo, revision: asked, commit, files, private: info.private, gated: info.gated };
}
