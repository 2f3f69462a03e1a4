/** What the Hub's endpoints answer, as Alloy uses it. */

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
