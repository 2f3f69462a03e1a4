export { runMerge, DEFAULT_BUDGET_BYTES } from './merge-engine';
export type { MergeCheckpoint, MergeOptions, MergeReport, SourceOpener } from './merge-engine';
export { MergeCancelledError } from './progress';
export type { MergeProgress, StageTimes } from './progress';
export { chunkRanges, rowShape } from './chunking';
export { chunkBytesPerElement } from './tensor-job-runner';
export type { ChunkRange } from './chunking';
export {
  NonFiniteError,
  describeNonFiniteTensor,
  formatNonFiniteCounts,
  formatNonFiniteSummary,
  nonFiniteHeadline,
  renderNonFiniteCardSection,
} from './non-finite';
