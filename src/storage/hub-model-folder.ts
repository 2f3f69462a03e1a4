import { HubError, type HubClient, type HubFile, type HubRepoSnapshot } from '../hub';
import type { ByteSource, ModelFolder } from './types';

/**
 * A model folder over a Hub repo pinned to one commit. Small files are fetched whole (and kept);
 * weights are opened as ByteSources that read byte ranges over HTTP, so reading the metadata of a
 * model (config.json and safetensors headers) costs a few KB. Merges read weights from the OPFS
 * shard cache instead (see opfs-shard-cache.ts); this folder is for looking before downloading.
 */
export class HubModelFolder implements ModelFolder {
  readonly id: string;
  private readonly texts = new Map<string, Promise<string | null>>();

  constructor(
    readonly client: HubClient,
    readonly snapshot: HubRepoSnapshot,
    id?: string,
  ) {
    this.id = id ?? (snapshot.revision === 'main' ? snapshot.repo : `${snapshot.repo}@${snapshot.revision}`);
  }

  /** Resolves the revision to a commit and lists the repo. */
  static async open(client: HubClient, repo: string, revision?: string, options: { id?: string; signal?: AbortSignal } = {}): Promise<HubModelFolder> {
    const snapshot = await client.resolveRepo(repo, revision, options.signal);
    return new HubModelFolder(client, snapshot, options.id);
  }

  file(path: string): HubFile | undefined {
    return this.snapshot.files.find((f) => f.path === path);
  }

  async listFiles(): Promise<string[]> {
    return this.snapshot.files.map((f) => f.path);
  }

  async open(path: string): Promise<ByteSource | null> {
    const file = this.file(path);
    return file ? new HubRangeSource(this.client, this.snapshot, file) : null;
  }

  async readText(path: string): Promise<string | null> {
    let text = this.texts.get(path);
    if (!text) {
      text = this.file(path) ? this.client.readText(this.snapshot, path) : Promise.resolve(null);
      text.catch(() => this.texts.delete(path));
      this.texts.set(path, text);
    }
    return text;
  }
}

/**
 * Reads a Hub file by HTTP range requests, one request per read, retrying a network failure a
 * couple of times. For headers and small reads: bulk downloads go through the shard cache.
 */
export class HubRangeSource implements ByteSource {
  readonly name: string;
  readonly size: number;

  constructor(
    private readonly client: HubClient,
    private readonly snapshot: HubRepoSnapshot,
    private readonly file: HubFile,
    private readonly options: { signal?: AbortSignal; retries?: number; retryDelayMs?: number } = {},
  ) {
    this.name = `${snapshot.repo}/${file.path}`;
    this.size = file.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const retries = this.options.retries ?? 2;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.client.readRange(this.snapshot, this.file, offset, offset + length, { signal: this.options.signal });
      } catch (error) {
        if (!(error instanceof HubError) || !error.retryable || attempt >= retries) throw error;
        await new Promise((resolve) => setTimeout(resolve, (this.options.retryDelayMs ?? 500) * 2 ** attempt));
      }
    }
  }
}
