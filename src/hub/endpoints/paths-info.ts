import { pathsInfo } from '@huggingface/hub';
import type { HubFile } from '../types';
import { callContext, callHub, checkRepoId, credentials, toHubFile, type HubContext } from './context';

/** Sizes and hashes of some paths only (`paths-info`), without listing the whole repo. */
export async function filesInfo(
  ctx: HubContext,
  repo: string,
  revision: string,
  paths: readonly string[],
  signal?: AbortSignal,
): Promise<HubFile[]> {
  checkRepoId(repo);
  const context = callContext(ctx, { repo, revision, action: 'read' });
  const entries = await callHub(ctx, context, signal, (fetch) =>
    pathsInfo({ repo, revision, paths: [...paths], hubUrl: ctx.hubUrl, fetch, ...credentials(ctx) }),
  );
  return entries.filter((e) => e.type === 'file').map(toHubFile);
}
