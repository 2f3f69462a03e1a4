/**
 * Storage: safetensors reading and writing, dtype codecs, output sharding. Everything here runs
 * in the browser and in Node; the Node file-system implementations live in `./node-fs` and are
 * imported from there so that browser bundles never pull in `node:fs`.
 */
export type {
  ByteSink,
  ByteSource,
  FileRange,
  FloatDtype,
  ModelFolder,
  ModelTensors,
  OutputFolder,
  SafetensorsDtype,
  SharedFile,
  TensorInfo,
} from './types';
export {
  DTYPE_SIZES,
  decodeToF32,
  dtypeSize,
  encodeFromF32,
  isFloatDtype,
  isSafetensorsDtype,
  safetensorsDtypeFromConfig,
  type ConfigDtypeName,
} from './dtype';
export {
  addNonFinite,
  countNonFinite,
  noNonFinite,
  nonFiniteTotal,
  type NonFiniteCounts,
  type NonFiniteTensor,
} from './non-finite';
export { SafetensorsError, type SafetensorsErrorLocation } from './errors';
export { formatBytes } from './format-bytes';
export { whileHeld } from './held-objects';
export { writableFile } from './opfs-handles';
export { escapeMessage, UNTRUSTED_MAX_CHARS, untrustedText } from './untrusted-text';
export {
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  type ReadHeaderOptions,
  type SafetensorsHeader,
} from './safetensors-reader';
export { INDEX_FILE, SINGLE_FILE, loadModelTensors } from './model-tensors';
export {
  DEFAULT_METADATA,
  SafetensorsStreamWriter,
  WRITE_BLOCK_BYTES,
  encodeSafetensorsHeader,
  type SafetensorsEntry,
} from './safetensors-writer';
export {
  DEFAULT_SHARD_SIZE,
  MERGEKIT_VERSION,
  buildShardIndex,
  layoutShards,
  parseShardSize,
  shardFileName,
  type ShardLayout,
  type ShardTensor,
} from './shard-layout';
export { MemoryByteSource, MemorySink, memoryModelFolder } from './memory';
export { outputNameProblem } from './output-name';
