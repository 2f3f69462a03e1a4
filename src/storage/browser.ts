/**
 * The browser side of storage: Hub folders read by HTTP range, the OPFS shard cache and output
 * store, local File folders and the demo models. Kept out of `index.ts` (which the CLI bundles)
 * because these pull in `@huggingface/hub` and browser-only APIs; nothing here imports `node:*`.
 */
export { BlobByteSource } from './blob-source';
export { HubModelFolder, HubRangeSource } from './hub-model-folder';
export {
  DEFAULT_BLOCK_BYTES,
  OpfsShardCache,
  ShardCacheError,
  type CachedFileInfo,
  type RangeFetch,
  type ShardCacheErrorKind,
  type ShardCacheOptions,
  type ShardProgress,
  type ShardSpec,
  type ShardState,
} from './opfs-shard-cache';
export { isResumeId, MANIFEST_FILE, OpfsOutputFolder, OpfsOutputStore, outputNameProblem, resumableFolderName, type OutputManifest } from './opfs-output';
export { inThreadFileWriter, remoteFileWriter, serveFileWrites, type OpfsFileWriter, type WriterPort, type WriterRequest } from './opfs-file-writer';
export { opfsWriterThread } from './opfs-writer-thread';
export { LocalFilesModelFolder, localFilePaths } from './local-files-folder';
export { DEMO_INDEX_FILE, DemoModelFolder, loadDemoIndex, type DemoIndex, type DemoModelEntry } from './demo-model-folder';
export { Sha256, Sha256StateError, type Sha256State } from './sha256';
export { DirectoryOutputFolder, directoryOutputProblem } from './directory-output';
export {
  DEFAULT_STREAM_WINDOW_BYTES,
  StreamIntegrityError,
  StreamingRangeSource,
  type StreamRangeFetch,
  type StreamVerification,
  type StreamingRangeSourceOptions,
} from './streaming-range-source';
export { formatBytes } from './format-bytes';
