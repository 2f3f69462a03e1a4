import { uploadFilesWithProgress, type CommitProgressEvent } from '@huggingface/hub';
import { explainHubError } from '../errors';
import type { UploadProgress } from '../types';
import { callContext, checkRepoId, requireToken, type HubContext } from './context';

export interface UploadOptions {
  readonly commitTitle?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: UploadProgress) => void;
  /** Undefined keeps the library's default (see HubClientOptions.useXet). */
  readonly useXet?: boolean;
}

/**
 * Uploads files in one commit with per-file progress. LFS files go through preupload, LFS batch
 * (basic or multipart, or Xet when the Hub offers it) and the commit call.
 */
export async function upload(
  ctx: HubContext,
  repo: string,
  files: readonly { readonly path: string; readonly content: Blob }[],
  options: UploadOptions = {},
): Promise<{ commitUrl?: string; commitOid?: string }> {
  checkRepoId(repo);
  const token = requireToken(ctx, 'upload');
  const context = callContext(ctx, { repo, action: 'upload to', write: true });
  const progress = new UploadTracker(files, options.onProgress);
  try {
    // uploadFilesWithProgress takes no custom fetch (it uses XMLHttpRequest for progress).
    const iterator = uploadFilesWithProgress({
      repo,
      files: files.map((f) => ({ path: f.path, content: f.content })),
      commitTitle: options.commitTitle ?? `Upload ${files.length} files with Alloy`,
      accessToken: token,
      hubUrl: ctx.hubUrl,
      abortSignal: options.signal,
      ...(options.useXet !== undefined ? { useXet: options.useXet } : {}),
    });
    let step = await iterator.next();
    while (!step.done) {
      progress.update(step.value);
      step = await iterator.next();
    }
    const output = step.value;
    return { commitUrl: output?.commit.url, commitOid: output?.commit.oid };
  } catch (error) {
    throw explainHubError(error, context);
  }
}

/** The library's upload events as our phases and per-file fractions, reported after each event. */
class UploadTracker {
  private phase: UploadProgress['phase'] = 'preparing';
  private readonly files: Map<string, number>;

  constructor(
    files: readonly { readonly path: string }[],
    private readonly onProgress: ((progress: UploadProgress) => void) | undefined,
  ) {
    this.files = new Map(files.map((f) => [f.path, 0]));
    this.emit();
  }

  update(event: CommitProgressEvent): void {
    if (event.event === 'phase') {
      this.phase = event.phase === 'preuploading' ? 'preparing' : event.phase === 'uploadingLargeFiles' ? 'uploading' : 'committing';
      if (event.phase === 'committing') for (const key of this.files.keys()) this.files.set(key, 1);
    } else if (event.event === 'fileProgress') {
      if (event.state === 'hashing') this.phase = 'hashing';
      else if (event.state === 'uploading') {
        this.phase = this.phase === 'committing' ? this.phase : 'uploading';
        this.files.set(event.path, Math.min(1, event.progress));
      }
    }
    this.emit();
  }

  private emit(): void {
    this.onProgress?.({ phase: this.phase, files: new Map(this.files) });
  }
}
