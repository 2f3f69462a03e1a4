import { createRepo as hubCreateRepo } from '@huggingface/hub';
import { HubError } from '../errors';
import { callContext, callHub, checkRepoId, requireToken, type HubContext } from './context';

/** Creates a model repo; an existing one is kept (like `exist_ok=True`). */
export async function createRepo(ctx: HubContext, repo: string, options: { private: boolean }): Promise<{ url: string; created: boolean }> {
  checkRepoId(repo);
  const token = requireToken(ctx, 'create a repo');
  const context = callContext(ctx, { repo, action: 'create', write: true });
  try {
    const { repoUrl } = await callHub(ctx, context, undefined, (fetch) =>
      hubCreateRepo({ repo, visibility: options.private ? 'private' : 'public', accessToken: token, hubUrl: ctx.hubUrl, fetch }),
    );
    return { url: repoUrl || `${ctx.hubUrl}/${repo}`, created: true };
  } catch (error) {
    if (error instanceof HubError && error.status === 409) return { url: `${ctx.hubUrl}/${repo}`, created: false };
    throw error;
  }
}
