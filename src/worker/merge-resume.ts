import { sha256 } from 'hash-wasm';
import type { MergeCheckpoint } from '../engine';
import type { MergePlan } from '../plan';
import type { NonFiniteTensor } from '../storage';
import { DirectoryOutputFolder, outputNameProblem, resumableFolderName, type OpfsOutputFolder, type OpfsOutputStore } from '../storage/browser';
import type { MergeRequest } from './api';

/**
 * What a resumable merge keeps next to its partial output (docs/browser.md §7): how far it got,
 * and a fingerprint of the plan it was running. A merge resumed after a reload continues only
 * from a checkpoint of the very same plan (same tensors, shards, parameters and random seed);
 * anything else starts afresh.
 */
export interface SavedCheckpoint {
  readonly version: 1;
  readonly plan: string;
  readonly checkpoint: MergeCheckpoint;
}

/** A fingerprint of everything in the plan that decides the output's bytes. */
export async function planFingerprint(plan: MergePlan): Promise<string> {
  const text = JSON.stringify(
    { jobs: plan.jobs, shards: plan.shards, seed: plan.randomSeed, text: plan.textFiles, copy: plan.copyFiles },
    (_key, value: unknown) => (ArrayBuffer.isView(value) ? Array.from(value as unknown as ArrayLike<number>) : typeof value === 'bigint' ? value.toString() : value),
  );
  return sha256(text);
}

export function savedCheckpoint(plan: string, checkpoint: MergeCheckpoint): SavedCheckpoint {
  return { version: 1, plan, checkpoint };
}

/** The checkpoint saved for this plan, or null (none, another plan, or not readable). */
export function checkpointFor(saved: unknown, fingerprint: string, tensorCount: number): MergeCheckpoint | null {
  if (typeof saved !== 'object' || saved === null) return null;
  const { version, plan, checkpoint } = saved as Partial<Record<keyof SavedCheckpoint, unknown>>;
  if (version !== 1 || plan !== fingerprint || typeof checkpoint !== 'object' || checkpoint === null) return null;
  const { tensorsDone, warnings, nonFinite } = checkpoint as Partial<Record<keyof MergeCheckpoint, unknown>>;
  if (!Number.isSafeInteger(tensorsDone) || (tensorsDone as number) < 0 || (tensorsDone as number) > tensorCount) return null;
  if (!Array.isArray(warnings) || !warnings.every((w) => typeof w === 'string')) return null;
  if (!Array.isArray(nonFinite)) return null;
  const { atFileBoundary } = checkpoint as { atFileBoundary?: unknown };
  return {
    tensorsDone: tensorsDone as number,
    warnings: warnings as string[],
    nonFinite: nonFinite as NonFiniteTensor[],
    ...(atFileBoundary === true ? { atFileBoundary: true } : {}),
  };
}

export interface MergeOutput {
  /** The picked folder's output, when the request has one. */
  readonly folderOutput: DirectoryOutputFolder | null;
  /** The output in the browser's storage, otherwise. */
  readonly opfsOutput: OpfsOutputFolder | null;
  /** The checkpoint to continue from (same plan), or null: the merge starts from the first tensor. */
  readonly resume: MergeCheckpoint | null;
  /** Keeps the engine's checkpoints, for a resumable merge. */
  readonly onCheckpoint?: (checkpoint: MergeCheckpoint) => Promise<void>;
}

/**
 * Opens the output of a merge: in the picked folder or the browser's storage, resumable when the
 * request has a `resumeId`. Temporary folders of other unfinished merges are removed first.
 */
export async function openMergeOutput(outputs: OpfsOutputStore, request: MergeRequest, plan: MergePlan): Promise<MergeOutput> {
  const resumeId = request.resumeId;
  await outputs.removeUnfinished(resumeId !== undefined && !request.outputDirectory ? new Set([resumableFolderName(resumeId)]) : undefined);
  let folderOutput: DirectoryOutputFolder | null = null;
  let opfsOutput: OpfsOutputFolder | null = null;
  let resumable: OpfsOutputFolder | DirectoryOutputFolder | null = null;
  let saved: unknown = null;
  if (request.outputDirectory) {
    const problem = outputNameProblem(request.outputName);
    if (problem) throw new Error(problem);
    if (resumeId !== undefined) {
      const begun = await DirectoryOutputFolder.beginResumable(request.outputDirectory, request.outputName, resumeId);
      folderOutput = begun.folder;
      if (begun.resumable) (resumable = begun.folder), (saved = begun.checkpoint);
    } else folderOutput = await DirectoryOutputFolder.begin(request.outputDirectory, request.outputName);
  } else if (resumeId !== undefined) {
    const begun = await outputs.beginResumable(request.outputName, resumeId);
    resumable = opfsOutput = begun.folder;
    saved = begun.checkpoint;
  } else opfsOutput = await outputs.begin(request.outputName);
  if (!resumable) return { folderOutput, opfsOutput, resume: null };
  const inBrowser = resumable === opfsOutput;
  const fingerprint = await planFingerprint(plan);
  const found = checkpointFor(saved, fingerprint, plan.jobs.length);
  // Files written through a swap file (a picked folder) exist only once closed: resume from whole files there.
  const resume = found && (inBrowser || found.atFileBoundary) ? found : null;
  if (!resume) await resumable.restart();
  const target = resumable;
  return {
    folderOutput,
    opfsOutput,
    resume,
    onCheckpoint: async (c) => {
      if (inBrowser || c.atFileBoundary) await target.saveCheckpoint(savedCheckpoint(fingerprint, c));
    },
  };
}

/** Removes what an unfinished resumable merge wrote (in the browser's storage, or in the picked folder). */
export async function discardMergeOutput(outputs: OpfsOutputStore, request: Pick<MergeRequest, 'resumeId' | 'outputName' | 'outputDirectory'>): Promise<void> {
  if (request.resumeId === undefined) return;
  if (request.outputDirectory) await DirectoryOutputFolder.discardResumable(request.outputDirectory, request.outputName, request.resumeId);
  else await outputs.discardResumable(request.resumeId);
}
