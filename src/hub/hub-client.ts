import { HUB_URL, type FileDownloadInfoOutput } from '@huggingface/hub';
import type { HubHashKind } from './integrity';
import type { HubFile, HubIdentity, HubModelHit, HubRepoSnapshot, ReadRangeOptions, UploadProgress } from './types';
import { type Fetch } from './endpoints/context';
import { createRepo } from './endpoints/create-repo';
import { fileUrl, type DownloadContext } from './endpoints/file-blob';
import { filesInfo } from './endpoints/paths-info';
import { readVerified } from './endpoints/read-file';
import { readRange } from './endpoints/resolve-range';
import { resolveRepo } from './endpoints/resolve-repo';
import { searchModels } from './endpoints/search';
import { upload } from './endpoints/upload';
import { checkToken } from './endpoints/whoami';

export { isHubRepoId } from './endpoints/context';
export type { HubFile, HubIdentity, HubModelHit, HubRepoSnapshot, ReadRangeOptions, UploadProgress } from './types';

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

/**
 * The endpoint functions (src/hub/endpoints/) bound to one configuration: one hub URL, one token,
 * one fetch, and the Xet download infos it has asked for.
 */
export class HubClient {
  readonly hubUrl: string;
  readonly accessToken: string | undefined;
  private readonly ctx: DownloadContext;
  private readonly useXet: boolean | undefined;

  constructor(options: HubClientOptions = {}) {
    this.hubUrl = (options.hubUrl ?? HUB_URL).replace(/\/+$/, '');
    this.accessToken = options.accessToken || undefined;
    const fetch: Fetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
    this.ctx = {
      hubUrl: this.hubUrl,
      accessToken: this.accessToken,
      fetch,
      xet: options.xet ?? false,
      downloadInfos: new Map<string, Promise<FileDownloadInfoOutput>>(),
    };
    this.useXet = options.useXet;
  }

  /** Resolves `revision` (default `main`) to a commit and lists every file with its size and hashes. */
  resolveRepo(repo: string, revision?: string, signal?: AbortSignal): Promise<HubRepoSnapshot> {
    return resolveRepo(this.ctx, repo, revision, signal);
  }

  /** Sizes and hashes of some paths only (`paths-info`), without listing the whole repo. */
  filesInfo(repo: string, revision: string, paths: readonly string[], signal?: AbortSignal): Promise<HubFile[]> {
    return filesInfo(this.ctx, repo, revision, paths, signal);
  }

  /** The `/resolve/` URL of a file at the snapshot's commit. */
  fileUrl(snapshot: Pick<HubRepoSnapshot, 'repo' | 'commit'>, path: string): string {
    return fileUrl(this.hubUrl, snapshot, path);
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
  readVerified(snapshot: HubRepoSnapshot, path: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; hash: HubHashKind } | null> {
    return readVerified(this.ctx, snapshot, path, signal);
  }

  async readText(snapshot: HubRepoSnapshot, path: string, signal?: AbortSignal): Promise<string | null> {
    const bytes = await this.readBytes(snapshot, path, signal);
    return bytes === null ? null : new TextDecoder().decode(bytes);
  }

  /**
   * Bytes [start, end) of a file by one HTTP range request. Throws a HubError (check `retryable`);
   * a short or over-long body is a retryable network error.
   */
  readRange(snapshot: HubRepoSnapshot, file: HubFile, start: number, end: number, options: ReadRangeOptions = {}): Promise<Uint8Array> {
    return readRange(this.ctx, snapshot, file, start, end, options);
  }

  /** Model search for search-as-you-type (by name, most downloaded first). */
  searchModels(query: string, options: { limit?: number; signal?: AbortSignal } = {}): Promise<HubModelHit[]> {
    return searchModels(this.ctx, query, options);
  }

  /** Who the token belongs to and whether it can write (throws a HubError for a bad token). */
  checkToken(token: string | undefined = this.accessToken): Promise<HubIdentity> {
    return checkToken(this.ctx, token);
  }

  /** Creates a model repo; an existing one is kept (like `exist_ok=True`). */
  createRepo(repo: string, options: { private: boolean }): Promise<{ url: string; created: boolean }> {
    return createRepo(this.ctx, repo, options);
  }

  /**
   * Uploads files in one commit with per-file progress. LFS files go through preupload, LFS batch
   * (basic or multipart, or Xet when the Hub offers it) and the commit call.
   */
  upload(
    repo: string,
    files: readonly { readonly path: string; readonly content: Blob }[],
    options: { commitTitle?: string; signal?: AbortSignal; onProgress?: (progress: UploadProgress) => void } = {},
  ): Promise<{ commitUrl?: string; commitOid?: string }> {
    return upload(this.ctx, repo, files, { ...options, ...(this.useXet !== undefined ? { useXet: this.useXet } : {}) });
  }
}
