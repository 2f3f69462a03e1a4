import { verifyHubBytes, type HubHashKind } from '../integrity';
import type { HubRepoSnapshot } from '../types';
import { callContext, callHub } from './context';
import { fileBlob, type DownloadContext } from './file-blob';

/**
 * A small file read whole (config.json, tokenizer files, mergekit_config.yml), verified against
 * the Hub's hash (LFS sha256, else the git blob id); null when the snapshot has no such file. A
 * mismatch throws a HubError of kind `integrity`, so no unverified byte of it is ever used.
 */
export async function readVerified(
  ctx: DownloadContext,
  snapshot: HubRepoSnapshot,
  path: string,
  signal?: AbortSignal,
): Promise<{ bytes: Uint8Array; hash: HubHashKind } | null> {
  const file = snapshot.files.find((f) => f.path === path);
  if (!file) return null;
  const context = callContext(ctx, { repo: snapshot.repo, revision: snapshot.revision, path, action: 'download' });
  const bytes = await callHub(ctx, context, signal, async (fetch) => {
    const blob = await fileBlob(ctx, snapshot, file, fetch);
    return new Uint8Array(await blob.arrayBuffer());
  });
  return { bytes, hash: await verifyHubBytes(snapshot.repo, file, bytes) };
}
