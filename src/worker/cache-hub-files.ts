import type { HubClient } from '../hub';
import type { OpfsShardCache, ShardSpec } from '../storage/browser';
import type { DownloadProgress, VerifiedFile } from './api';
import { modelErrorMessage, type ResolvedModel } from './model-sources';
import { sourceKeyOf } from './run-inputs';

/** A Hub file a job downloads whole, and the model it belongs to. */
export interface HubFile {
  readonly model: ResolvedModel;
  readonly spec: ShardSpec;
}

/**
 * Downloads `files` whole into the verified cache, one after another (the jobs that read whole
 * files: LoRA extraction, MoE builds), reporting each file's progress in `downloads` (keyed like
 * the engine's sources) and through `emit`. The headers the job planned from were read by range
 * before the file could be verified: they must equal the verified file's bytes. Returns the files
 * verified, in order.
 */
export async function cacheHubFiles(
  files: readonly HubFile[],
  cache: OpfsShardCache,
  client: () => HubClient,
  signal: AbortSignal,
  downloads: Map<string, DownloadProgress>,
  emit: (force: boolean) => void,
): Promise<VerifiedFile[]> {
  const verified: VerifiedFile[] = [];
  for (const { model, spec } of files) {
    const hub = model.hub!;
    const file = hub.file(spec.path)!;
    await cache.ensure(spec, (start, end, o) => client().readRange(hub.snapshot, file, start, end, o), {
      signal,
      onProgress: (p) => {
        downloads.set(sourceKeyOf(model.key, spec.path), { model: model.key, file: spec.path, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, state: p.state, ...(p.message ? { message: p.message } : {}) });
        emit(p.state === 'done');
      },
    });
    await hub.recheckRanges(spec.path, await cache.openFile(spec)).catch((error: unknown) => {
      throw new Error(modelErrorMessage(model.key, error), { cause: error });
    });
    verified.push({ model: model.key, file: spec.path, hash: spec.sha256 ? 'sha256' : 'git-blob' });
  }
  return verified;
}
