import { HubError, type HubClient, type HubFile, type HubHashKind, type HubRepoSnapshot } from '../hub';
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
  /** Files read whole and verified against the Hub's hash, with the hash that vouched for them. */
  readonly verified = new Map<string, HubHashKind>();
  /**
   * Every byte range served by `open()` (safetensors headers read for planning), kept so that they
   * can be compared with the verified download before the plan built from them is used: a range
   * cannot be hashed on its own.
   */
  private readonly ranges = new Map<string, { offset: number; bytes: Uint8Array }[]>();

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
    return file ? new HubRangeSource(this.client, this.snapshot, file, { onRead: (offset, bytes) => this.recordRange(path, offset, bytes) }) : null;
  }

  /** The ranges of a file read so far (for planning), in reading order. */
  rangesRead(path: string): readonly { readonly offset: number; readonly bytes: Uint8Array }[] {
    return this.ranges.get(path) ?? [];
  }

  /**
   * Compares every range read for planning with the same bytes of the verified file. Throws when
   * one differs: the plan was built from bytes the Hub's hash does not vouch for.
   */
  async recheckRanges(path: string, verified: ByteSource): Promise<void> {
    for (const { offset, bytes } of this.rangesRead(path)) {
      const again = await verified.read(offset, bytes.byteLength);
      if (!equalBytes(again, bytes)) {
        throw new HubError(
          `${this.snapshot.repo}: the bytes ${offset}..${offset + bytes.byteLength} of ${path} read for planning (its safetensors header) ` +
            'differ from the verified download: the plan was built from data the Hub does not vouch for, so nothing was merged. ' +
            'Merge again; if this repeats, a proxy or the Hub mirror is altering downloads.',
          'integrity',
        );
      }
    }
  }

  private recordRange(path: string, offset: number, bytes: Uint8Array): void {
    let list = this.ranges.get(path);
    if (!list) this.ranges.set(path, (list = []));
    list.push({ offset, bytes: bytes.slice() });
  }

  async readText(path: string): Promise<string | null> {
    let text = this.texts.get(path);
    if (!text) {
      text = this.file(path)
        ? this.client.readVerified(this.snapshot, path).then((read) => {
            if (!read) return null;
            this.verified.set(path, read.hash);
            return new TextDecoder().decode(read.bytes);
          })
        : Promise.resolve(null);
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
    private readonly options: {
      signal?: AbortSignal;
      retries?: number;
      retryDelayMs?: number;
      /** Told every range it returns (HubModelFolder re-checks them against the verified file). */
      onRead?: (offset: number, bytes: Uint8Array) => void;
    } = {},
  ) {
    this.name = `${snapshot.repo}/${file.path}`;
    this.size = file.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const retries = this.options.retries ?? 2;
    for (let attempt = 0; ; attempt++) {
      try {
        const bytes = await this.client.readRange(this.snapshot, this.file, offset, offset + length, { signal: this.options.signal });
        this.options.onRead?.(offset, bytes);
        return bytes;
      } catch (error) {
        if (!(error instanceof HubError) || !error.retryable || attempt >= retries) throw error;
        await new Promise((resolve) => setTimeout(resolve, (this.options.retryDelayMs ?? 500) * 2 ** attempt));
      }
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
