import { listModels } from '@huggingface/hub';
import type { HubModelHit } from '../types';
import { callContext, callHub, credentials, type HubContext } from './context';

/** Model search for search-as-you-type (by name, most downloaded first). */
export async function searchModels(
  ctx: HubContext,
  query: string,
  options: { limit?: number; signal?: AbortSignal } = {},
): Promise<HubModelHit[]> {
  const context = callContext(ctx, { action: 'search the models of' });
  const hits: HubModelHit[] = [];
  const limit = options.limit ?? 20;
  await callHub(ctx, context, options.signal, async (fetch) => {
    for await (const model of listModels({
      search: { query: query.trim() },
      limit,
      sort: 'downloads',
      hubUrl: ctx.hubUrl,
      fetch,
      ...credentials(ctx),
    })) {
      hits.push({
        id: model.name,
        downloads: model.downloads ?? 0,
        likes: model.likes ?? 0,
        updatedAt: isNaN(model.updatedAt.getTime()) ? '' : model.updatedAt.toISOString(),
        private: model.private ?? false,
        gated: model.gated ?? false,
        ...(model.task ? { task: model.task } : {}),
      });
      if (hits.length >= limit) break;
    }
  });
  return hits;
}
