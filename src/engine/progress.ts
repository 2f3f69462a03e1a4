/**
 * Wall time the merge loop spent waiting on each stage, in ms: for input bytes (disk, network),
 * for the backend's arithmetic, for the output sink. The largest share is what bounds the merge.
 */
export interface StageTimes {
  readonly readMs: number;
  readonly computeMs: number;
  readonly writeMs: number;
}

/** What a running merge reports, several times a second at most. */
export interface MergeProgress {
  readonly phase: 'merging' | 'writing' | 'done';
  readonly tensorsDone: number;
  readonly tensorsTotal: number;
  readonly currentTensor: string | null;
  /** Input bytes of finished tensors plus the finished part of the current one (each tensor once). */
  readonly inputBytesDone: number;
  readonly inputBytesTotal: number;
  /** Bytes actually read from the sources (statistics passes read a tensor several times). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly elapsedMs: number;
  /** Input bytes per second so far. */
  readonly bytesPerSecond: number;
  /** Estimated time left, or null before there is enough to estimate. */
  readonly etaMs: number | null;
  readonly stageTimes: StageTimes;
}

export class MergeCancelledError extends Error {
  constructor() {
    super('The merge was cancelled; nothing was written.');
    this.name = 'MergeCancelledError';
  }
}
