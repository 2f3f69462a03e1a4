/**
 * How a merge reads Hub inputs ("cache": downloaded whole into the browser's storage first, and
 * kept for the next merge; "stream": read by large HTTP ranges while merging, nothing kept) and
 * how much disk each way needs. Pure functions: the worker feeds them the plan's sizes and
 * `navigator.storage.estimate()`.
 */

export type InputModeSetting = 'auto' | 'cache' | 'stream';
export type InputMode = 'cache' | 'stream';
export type OutputTarget = 'browser' | 'folder';

/** What `navigator.storage.estimate()` says; either may be missing. */
export interface StorageEstimate {
  readonly usage?: number;
  readonly quota?: number;
}

/** Share of the reported free space a merge may plan to use (the estimate is rounded, and other tabs write too). */
export const USABLE_FRACTION = 0.9;

/** Bytes the browser reports free for this site, or null when it does not say. */
export function availableBytes(estimate: StorageEstimate | undefined): number | null {
  if (!estimate || estimate.quota === undefined) return null;
  return Math.max(0, estimate.quota - (estimate.usage ?? 0));
}

export interface DiskNeed {
  readonly input: InputMode;
  readonly output: OutputTarget;
  /** Bytes written into the browser's storage (cache downloads, browser output). */
  readonly browserBytes: number;
  /** Bytes written into the picked folder. */
  readonly folderBytes: number;
  /** Whether `browserBytes` fits the usable free space (null when the browser does not say). */
  readonly fits: boolean | null;
}

export interface DiskEstimate {
  /** Bytes still to download from the Hub (cache mode: into storage; stream mode: read once, kept nowhere). */
  readonly downloadBytes: number;
  readonly outputBytes: number;
  /** Free space the browser reports for this site (null: unknown). */
  readonly availableBytes: number | null;
  /** The four combinations of input mode and output target. */
  readonly needs: readonly DiskNeed[];
  /** The input mode the merge will use with the current setting and output target. */
  readonly input: InputMode;
  readonly inputReason: string;
  readonly output: OutputTarget;
}

export interface DiskFacts {
  /** Hub bytes not in the cache yet. */
  readonly missingDownloadBytes: number;
  /** Whether any input comes from the Hub (local and demo models are read where they are). */
  readonly hasHubInputs: boolean;
  readonly outputBytes: number;
  readonly output: OutputTarget;
  readonly estimate: StorageEstimate | undefined;
}

function need(input: InputMode, output: OutputTarget, facts: DiskFacts, available: number | null): DiskNeed {
  const browserBytes = (input === 'cache' ? facts.missingDownloadBytes : 0) + (output === 'browser' ? facts.outputBytes : 0);
  return {
    input,
    output,
    browserBytes,
    folderBytes: output === 'folder' ? facts.outputBytes : 0,
    fits: available === null ? null : browserBytes <= available * USABLE_FRACTION,
  };
}

/**
 * The rule of the "auto" setting: cache when everything fits the browser's free space (a second
 * merge of the same models then downloads nothing), stream when the cache would not fit.
 */
export function chooseInputMode(setting: InputModeSetting, facts: DiskFacts): { mode: InputMode; reason: string } {
  if (!facts.hasHubInputs) return { mode: 'cache', reason: 'no model comes from the Hub: local models are read where they are' };
  if (setting === 'cache') return { mode: 'cache', reason: 'Settings ask to download into the browser cache' };
  if (setting === 'stream') return { mode: 'stream', reason: 'Settings ask to stream Hub models' };
  const available = availableBytes(facts.estimate);
  if (available === null) return { mode: 'cache', reason: 'the browser does not report its free space, so models are cached as usual' };
  const cached = need('cache', facts.output, facts, available);
  if (cached.fits) return { mode: 'cache', reason: 'the download fits the browser storage, so it is cached for the next merge' };
  return { mode: 'stream', reason: 'the download would not fit the browser storage, so Hub models are streamed (nothing kept)' };
}

export function estimateDisk(setting: InputModeSetting, facts: DiskFacts): DiskEstimate {
  const available = availableBytes(facts.estimate);
  const chosen = chooseInputMode(setting, facts);
  const needs: DiskNeed[] = [];
  for (const input of ['cache', 'stream'] as const) for (const output of ['browser', 'folder'] as const) needs.push(need(input, output, facts, available));
  return {
    downloadBytes: facts.missingDownloadBytes,
    outputBytes: facts.outputBytes,
    availableBytes: available,
    needs,
    input: chosen.mode,
    inputReason: chosen.reason,
    output: facts.output,
  };
}
