/** Element types of the safetensors format (names as in the file header). */
export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

/** The float dtypes Alloy decodes to f32 and encodes back (everything else is copied as raw bytes). */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

/**
 * Random access to the bytes of one file, wherever it lives (Node fs, a browser File/Blob,
 * an HTTP range request, an OPFS cache). `read` must return exactly `length` bytes or throw.
 */
export interface ByteSource {
  /** Human-readable location used in error messages (a path or URL). */
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * The same file as a worker thread can read it itself (FileRange), where there is such a form:
   * a CPU pool's workers then read their chunks' bytes in parallel, straight into their own memory.
   */
  readonly shared?: SharedFile | null;
  /**
   * Releases what the source holds open (a Node file handle). Optional: sources that hold
   * nothing omit it. Callers that open a source call `close?.()` when done with it.
   */
  close?(): Promise<void>;
}

/**
 * A file that other threads of this process can read: an open Node file descriptor (worker_threads
 * share the process's descriptors; valid until its ByteSource closes), or a Blob (a File the user
 * picked, an OPFS file), which a Web Worker receives as a structured clone of the same bytes.
 */
export type SharedFile =
  | { readonly kind: 'fd'; readonly name: string; readonly fd: number; readonly size: number }
  | { readonly kind: 'blob'; readonly name: string; readonly blob: Blob }
  /**
   * A complete file of the Hub download cache: a worker reads it through a read-only sync access
   * handle of its own (storage/opfs-range-reader.ts), or as the Blob where it cannot open one.
   * `key` names the file uniquely (repo, commit and path), whatever clone of `handle` a worker received.
   */
  | { readonly kind: 'opfs'; readonly name: string; readonly key: string; readonly handle: FileSystemFileHandle; readonly blob: Blob };

/** `length` bytes of a SharedFile from byte `offset` (within the file: its ByteSource checked that). */
export interface FileRange {
  readonly file: SharedFile;
  readonly offset: number;
  readonly length: number;
}

/** One tensor of a safetensors file, with its absolute byte position inside that file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** File name relative to the model folder (e.g. `model-00001-of-00002.safetensors`). */
  readonly file: string;
  /** Absolute offset of the first byte of the tensor data in `file`. */
  readonly offset: number;
  readonly byteLength: number;
}

/** The tensors of one model, merged over all of its shards. */
export interface ModelTensors {
  /** Shard file names in order (one entry for an unsharded model). */
  readonly files: readonly string[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
}

/**
 * A model folder as a set of named files (local folder, Hub repo at a revision, dropped files).
 * Only small files are read whole (`readText`); weights are opened as ranged byte sources.
 */
export interface ModelFolder {
  /** How the user referred to the model (used in messages). */
  readonly id: string;
  listFiles(): Promise<string[]>;
  /** Returns null when the file does not exist. */
  open(file: string): Promise<ByteSource | null>;
  /** Returns null when the file does not exist. */
  readText(file: string): Promise<string | null>;
}

/**
 * A file being written front to back. `write` must be done with `bytes` when its promise
 * resolves: the caller may then reuse the buffer (the safetensors writer does).
 */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
  /**
   * The sink copies every byte into buffers of its own and writes them in large pieces (direct
   * writes): a writer hands it each write as it comes rather than gathering small ones first.
   */
  readonly gathersWrites?: boolean;
}

/**
 * Where a merge writes its files. Implementations make the output appear only on `commit`
 * (Node: temporary sibling folder renamed at the end) and remove everything on `abort`.
 */
export interface OutputFolder {
  create(file: string): Promise<ByteSink>;
  /**
   * Reopens a file written before (a merge resumed after a reload): the sink appends at byte
   * `at`, dropping what followed. Only outputs that survive a reload have it.
   */
  reopen?(file: string, at: number): Promise<ByteSink>;
  writeText(file: string, text: string): Promise<void>;
  writeBytes(file: string, bytes: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}
