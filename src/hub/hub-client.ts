import {
  createRepo,
  downloadFile,
  fileDownloadInfo,
  HUB_URL,
  listFiles,
  listModels,
  modelInfo,
  pathsInfo,
  uploadFilesWithProgress,
  whoAmI,
  type FileDownloadInfoOutput,
} from '@huggingface/hub';

type Fetch = typeof globalThis.fetch;
import { explainHubError, FailureRecorder, HubError, tokenSettingsUrl, type HubCallContext } from './errors';
import { verifyHubBytes, type HubHashKind } from './integrity';

/**
 * Everything Alloy asks of the Hugging Face Hub, through `@huggingface/hub` only. Every call
 * takes the configured `hubUrl` (tests point it at a local fake hub) and the optional token.
 */

export interface HubClientOptions {
  /** Default https://huggingface.co. */
  readonly hubUrl?: string;
  /** `hf_…`; needed for private and gated repos and for pushing. */
  readonly accessToken?: string;
  /** Replaces the global fetch for every read (tests count requests with it). */
  readonly fetch?: typeof fetch;
  /**
   * Read Xet-backed files with the Xet protocol (`downloadFile`'s XetBlob, straight from the CAS)
   * instead of plain HTTP ranges on `/resolve/` (which the Hub's LFS bridge serves). Off by default:
   * the plain path is the one the tests cover; see the report on gated repos and CORS.
   */
  readonly xet?: boolean;
  /**
   * Passed to uploads. Undefined keeps the library's default (offer Xet; the Hub picks, and a
   * server that answers `basic`/`multipart` gets plain LFS uploads).
   */
  readonly useXet?: boolean;
}

export interface HubFile {
  readonly path: string;
  /** Real size (for LFS files, the object's size, not the pointer's). */
  readonly size: number;
  /** Git blob id. */
  readonly oid?: string;
  /** SHA-256 of the content, for LFS files (the LFS oid). */
  readonly sha256?: string;
  readonly xetHash?: string;
}

/** A repo pinned to one commit, with its files. */
export interface HubRepoSnapshot {
  readonly repo: string;
  /** The revision asked for (`main` when none). */
  readonly revision: string;
  /** The commit it resolved to: every read uses it, so the files cannot change underneath. */
  readonly commit: string;
  readonly files: readonly HubFile[];
  readonly private?: boolean;
  readonly gated?: false | 'auto' | 'manual';
}

export interface HubModelHit {
  /** `namespace/name`. */
  readonly id: string;
  readonly downloads: number;
  readonly likes: number;
  readonly updatedAt: string;
  readonly private: boolean;
  readonly gated: false | 'auto' | 'manual';
  readonly task?: string;
}

export interface HubIdentity {
  readonly name: string;
  readonly fullname?: string;
  readonly type: 'user' | 'org' | 'app';
  readonly orgs: readonly string[];
  /** `read`, `write`, `fineGrained`… as the Hub says; undefined for OAuth tokens. */
  readonly tokenRole?: string;
  /** false for read-only tokens; null when the Hub does not say (fine-grained, OAuth). */
  readonly canWrite: boolean | null;
}

export interface UploadProgress {
  readonly phase: 'preparing' | 'hashing' | 'uploading' | 'committing';
  /** Path → fraction (0..1) of its upload done. */
  readonly files: ReadonlyMap<string, number>;
}

export interface ReadRangeOptions {
  readonly signal?: AbortSignal;
  /** Called as body bytes arrive (for per-file progress). */
  readonly onBytes?: (bytes: number) => void;
}

const SHA_RE = /^[0-9a-f]{40}$/;
const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export function isHubRepoId(id: string): boolean {
  return REPO_RE.test(id);
}

export class HubClient {
  readonly hubUrl: string;
  readonly accessToken: string | undefined;
  private readonly baseFetch: Fetch;
  private readonly xet: boolean;
  private readonly useXet: boolean | undefined;
  private readonly downloadInfos = new Map<string, Promise<FileDownloadInfoOutput>>();

  constructor(options: HubClientOptions = {}) {
    this.hubUrl = (options.hubUrl ?? HUB_URL).replace(/\/+$/, '');
    this.accessToken = options.accessToken || undefined;
    const fetchImpl = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
    this.baseFetch = fetchImpl;
    this.xet = options.xet ?? false;
    this.useXet = options.useXet;
  }

  /** Resolves `revision` (default `main`) to a commit and lists every file with its size and hashes. */
  async resolveRepo(repo: string, revision?: string, signal?: AbortSignal): Promise<HubRepoSnapshot> {
    checkRepoId(repo);
    const asked = revision ?? 'main';
    const context = this.context({ repo, revision: asked, action: 'read' });
    const info = await this.call(context, signal, (fetch) =>
      modelInfo({ name: repo, revision: asked, additionalFields: ['sha'], hubUrl: this.hubUrl, fetch, ...this.credentials() }),
    );
    const commit = typeof info.sha === 'string' && SHA_RE.test(info.sha) ? info.sha : SHA_RE.test(asked) ? asked : undefined;
    if (!commit) {
      throw new HubError(`the Hub did not say which commit ${repo}@${asked} is (no "sha" in its answer)`, 'other');
    }
    const files: HubFile[] = [];
    await this.call({ ...context, action: 'list the files of' }, signal, async (fetch) => {
      for await (const entry of listFiles({ repo, revision: commit, recursive: true, hubUrl: this.hubUrl, fetch, ...this.credentials() })) {
        if (entry.type !== 'file') continue;
        files.push(toHubFile(entry));
      }
    });
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { repo, revision: asked, commit, files, private: info.private, gated: info.gated };
  }

  /** Sizes and hashes of some paths only (`paths-info`), without listing the whole repo. */
  async filesInfo(repo: string, revision: string, paths: readonly string[], signal?: AbortSignal): Promise<HubFile[]> {
    checkRepoId(repo);
    const context = this.context({ repo, revision, action: 'read' });
    const entries = await this.call(context, signal, (fetch) =>
      pathsInfo({ repo, revision, paths: [...paths], hubUrl: this.hubUrl, fetch, ...this.credentials() }),
    );
    return entries.filter((e) => e.type === 'file').map(toHubFile);
  }

  /** The `/resolve/` URL of a file at the snapshot's commit. */
  fileUrl(snapshot: Pick<HubRepoSnapshot, 'repo' | 'commit'>, path: string): string {
    const encodedPath = path.split('/').map(encodeURIComponent).join('/');
    return `${this.hubUrl}/${snapshot.repo}/resolve/${encodeURIComponent(snapshot.commit)}/${encodedPath}`;
  }

  /**
   * A small file read whole (config.json, tokenizer files, mergekit_config.yml); null when absent.
   * Verified against the Hub's hash (LFS sha256, else the git blob id): a mismatch throws a
   * HubError of kind `integrity`, so no unverified byte of it is ever used.
   */
  async readBytes(snapshot: HubRepoSnapshot, path: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    return (await this.readVerified(snapshot, path, signal))?.bytes ?? null;
  }

  /** readBytes, also saying which hash vouched for the bytes. */
  async readVerified(snapshot: HubRepoSnapshot, path: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; hash: HubHashKind } | null> {
    const file = snapshot.files.find((f) => f.path === path);
    if (!file) return null;
    const context = this.context({ repo: snapshot.repo, revision: snapshot.revision, path, action: 'download' });
    const bytes = await this.call(context, signal, async (fetch) => {
      const blob = await this.blobOf(snapshot, file, fetch);
      return new Uint8Array(await blob.arrayBuffer());
    });
    return { bytes, hash: await verifyHubBytes(snapshot.repo, file, bytes) };
  }

  async readText(snapshot: HubRepoSnapshot, path: string, signal?: AbortSignal): Promise<string | null> {
    const bytes = await this.readBytes(snapshot, path, signal);
    return bytes === null ? null : new TextDecoder().decode(bytes);
  }

  /**
   * Bytes [start, end) of a file by one HTTP range request. Throws a HubError (check `retryable`);
   * a short or over-long body is a retryable network error.
   */
  async readRange(snapshot: HubRepoSnapshot, file: HubFile, start: number, end: number, options: ReadRangeOptions = {}): Promise<Uint8Array> {
    if (!(start >= 0 && end <= file.size && start <= end)) {
      throw new RangeError(`${snapshot.repo}/${file.path}: cannot read bytes ${start}..${end} of a ${file.size}-byte file`);
    }
    if (start === end) return new Uint8Array(0);
    const context = this.context({ repo: snapshot.repo, revision: snapshot.revision, path: file.path, action: 'download' });
    const counting = countingFetch(options.onBytes);
    const bytes = await this.call(
      context,
      options.signal,
      async (fetch) => {
        const blob = await this.blobOf(snapshot, file, fetch);
        return new Uint8Array(await blob.slice(start, end).arrayBuffer());
      },
      counting,
    );
    if (bytes.byteLength !== end - start) {
      throw new HubError(
        `the download of ${file.path} from ${snapshot.repo} was cut short: got ${bytes.byteLength} of ${end - start} bytes`,
        'network',
      );
    }
    return bytes;
  }

  /** Model search for search-as-you-type (by name, most downloaded first). */
  async searchModels(query: string, options: { limit?: number; signal?: AbortSignal } = {}): Promise<HubModelHit[]> {
    const context = this.context({ action: 'search the models of' });
    const hits: HubModelHit[] = [];
    const limit = options.limit ?? 20;
    await this.call(context, options.signal, async (fetch) => {
      for await (const model of listModels({
        search: { query: query.trim() },
        limit,
        sort: 'downloads',
        hubUrl: this.hubUrl,
        fetch,
        ...this.credentials(),
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

  /** Who the token belongs to and whether it can write (throws a HubError for a bad token). */
  async checkToken(token: string | undefined = this.accessToken): Promise<HubIdentity> {
    if (!token) {
      throw new HubError(`no access token: create one with write access at ${tokenSettingsUrl(this.hubUrl)}`, 'bad-token');
    }
    const context: HubCallContext = { hubUrl: this.hubUrl, action: 'check the token with', repo: 'the Hub', authenticated: true };
    const me = await this.call(context, undefined, (fetch) => whoAmI({ accessToken: token, hubUrl: this.hubUrl, fetch }));
    const role = me.auth?.accessToken?.role;
    return {
      name: me.name,
      ...('fullname' in me && me.fullname ? { fullname: me.fullname } : {}),
      type: me.type,
      orgs: 'orgs' in me && Array.isArray(me.orgs) ? me.orgs.map((o) => o.name) : [],
      ...(role ? { tokenRole: role } : {}),
      canWrite: role === 'read' ? false : role === 'write' ? true : null,
    };
  }

  /** Creates a model repo; an existing one is kept (like `exist_ok=True`). */
  async createRepo(repo: string, options: { private: boolean }): Promise<{ url: string; created: boolean }> {
    checkRepoId(repo);
    const token = this.requireToken('create a repo');
    const context = this.context({ repo, action: 'create', write: true });
    try {
      const { repoUrl } = await this.call(context, undefined, (fetch) =>
        createRepo({ repo, visibility: options.private ? 'private' : 'public', accessToken: token, hubUrl: this.hubUrl, fetch }),
      );
      return { url: repoUrl || `${this.hubUrl}/${repo}`, created: true };
    } catch (error) {
      if (error instanceof HubError && error.status === 409) return { url: `${this.hubUrl}/${repo}`, created: false };
      throw error;
    }
  }

  /**
   * Uploads files in one commit with per-file progress. LFS files go through preupload, LFS batch
   * (basic or multipart, or Xet when the Hub offers it) and the commit call.
   */
  async upload(
    repo: string,
    files: readonly { readonly path: string; readonly content: Blob }[],
    options: { commitTitle?: string; signal?: AbortSignal; onProgress?: (progress: UploadProgress) => void } = {},
  ): Promise<{ commitUrl?: string; commitOid?: string }> {
    checkRepoId(repo);
    const token = this.requireToken('upload');
    const context = this.context({ repo, action: 'upload to', write: true });
    const progress = new Map(files.map((f) => [f.path, 0]));
    let phase: UploadProgress['phase'] = 'preparing';
    const emit = (): void => options.onProgress?.({ phase, files: new Map(progress) });
    emit();
    try {
      // uploadFilesWithProgress takes no custom fetch (it uses XMLHttpRequest for progress).
      const iterator = uploadFilesWithProgress({
        repo,
        files: files.map((f) => ({ path: f.path, content: f.content })),
        commitTitle: options.commitTitle ?? `Upload ${files.length} files with Alloy`,
        accessToken: token,
        hubUrl: this.hubUrl,
        abortSignal: options.signal,
        ...(this.useXet !== undefined ? { useXet: this.useXet } : {}),
      });
      let step = await iterator.next();
      while (!step.done) {
        const event = step.value;
        if (event.event === 'phase') {
          phase = event.phase === 'preuploading' ? 'preparing' : event.phase === 'uploadingLargeFiles' ? 'uploading' : 'committing';
          if (event.phase === 'committing') for (const key of progress.keys()) progress.set(key, 1);
        } else if (event.event === 'fileProgress') {
          if (event.state === 'hashing') phase = 'hashing';
          else if (event.state === 'uploading') {
            phase = phase === 'committing' ? phase : 'uploading';
            progress.set(event.path, Math.min(1, event.progress));
          }
        }
        emit();
        step = await iterator.next();
      }
      const output = step.value;
      return { commitUrl: output?.commit.url, commitOid: output?.commit.oid };
    } catch (error) {
      throw explainHubError(error, context);
    }
  }

  // -------------------------------------------------------------------------------------------

  private credentials(): { accessToken: string } | Record<string, never> {
    return this.accessToken ? { accessToken: this.accessToken } : {};
  }

  private requireToken(action: string): string {
    if (!this.accessToken) {
      throw new HubError(`sign in to ${action}: create an access token with write access at ${tokenSettingsUrl(this.hubUrl)}`, 'bad-token');
    }
    return this.accessToken;
  }

  private context(partial: Omit<HubCallContext, 'hubUrl' | 'authenticated'>): HubCallContext {
    return { hubUrl: this.hubUrl, authenticated: this.accessToken !== undefined, ...partial };
  }

  /**
   * Runs one library call with a fetch that carries the abort signal and records failures, and
   * turns what it throws into a HubError.
   */
  private async call<T>(
    context: HubCallContext,
    signal: AbortSignal | undefined,
    run: (fetch: Fetch) => Promise<T>,
    wrap: (inner: Fetch) => Fetch = (f) => f,
  ): Promise<T> {
    const base = this.baseFetch;
    const withSignal: Fetch = signal
      ? (input, init) => base(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal })
      : base;
    const recorder = new FailureRecorder(wrap(withSignal));
    try {
      signal?.throwIfAborted();
      return await run(recorder.fetch);
    } catch (error) {
      if (signal?.aborted) throw new HubError('cancelled', 'aborted', undefined, { cause: error });
      throw explainHubError(error, context, recorder.last);
    }
  }

  /** A lazy Blob of the file (ranges are fetched on `slice().arrayBuffer()`). */
  private async blobOf(snapshot: HubRepoSnapshot, file: HubFile, fetch: Fetch): Promise<Blob> {
    let info: FileDownloadInfoOutput;
    if (this.xet && file.xetHash) {
      const key = `${snapshot.repo}@${snapshot.commit}/${file.path}`;
      let pending = this.downloadInfos.get(key);
      if (!pending) {
        pending = fileDownloadInfo({ repo: snapshot.repo, path: file.path, revision: snapshot.commit, hubUrl: this.hubUrl, fetch, ...this.credentials() }).then(
          (found) => {
            if (!found) throw new HubError(`${snapshot.repo} has no file ${file.path} at ${snapshot.commit} (404)`, 'file-not-found', 404);
            return found;
          },
        );
        pending.catch(() => this.downloadInfos.delete(key));
        this.downloadInfos.set(key, pending);
      }
      info = await pending;
    } else {
      // Known from the listing: no probe request needed.
      info = { size: file.size, etag: file.sha256 ?? file.oid ?? '', url: this.fileUrl(snapshot, file.path) };
    }
    const blob = await downloadFile({
      repo: snapshot.repo,
      path: file.path,
      revision: snapshot.commit,
      hubUrl: this.hubUrl,
      fetch,
      downloadInfo: info,
      xet: this.xet,
      ...this.credentials(),
    });
    if (!blob) throw new HubError(`${snapshot.repo} has no file ${file.path} (404)`, 'file-not-found', 404);
    return blob;
  }
}

function checkRepoId(repo: string): void {
  if (!isHubRepoId(repo)) {
    throw new HubError(`"${repo}" is not a Hub model id: it must look like namespace/name (e.g. meta-llama/Llama-3.2-1B)`, 'other');
  }
}

function toHubFile(entry: { path: string; size: number; oid?: string; lfs?: { oid: string; size: number }; xetHash?: string }): HubFile {
  return {
    path: entry.path,
    size: entry.lfs?.size ?? entry.size,
    ...(entry.oid ? { oid: entry.oid } : {}),
    ...(entry.lfs?.oid ? { sha256: entry.lfs.oid } : {}),
    ...(entry.xetHash ? { xetHash: entry.xetHash } : {}),
  };
}

/**
 * Wraps fetch so that range requests bypass the HTTP cache, replies are checked (a server that
 * ignores `Range` would send the whole file) and their body bytes counted as they arrive.
 */
function countingFetch(onBytes: ((bytes: number) => void) | undefined): (inner: Fetch) => Fetch {
  return (inner) => async (input, init) => {
    // The bytes go to the OPFS cache: the browser's HTTP cache would keep a second copy of every
    // shard (and, holding earlier ranges, split later requests into revalidations).
    const response = await inner(input, { ...init, cache: 'no-store' });
    const range = new Headers(init?.headers).get('Range');
    if (response.ok && range && response.status !== 206) {
      await response.body?.cancel();
      throw new HubError(`the server ignored the byte range (${response.status} instead of 206) for ${response.url}`, 'other', response.status);
    }
    if (!response.ok || !onBytes || !response.body) return response;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onBytes(chunk.byteLength);
        controller.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(counter), { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

