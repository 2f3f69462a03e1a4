import { sha256 } from 'hash-wasm';
import type { MergeCheckpoint } from '../engine';
import type { MergePlan } from '../plan';
import type { NonFiniteTensor } from '../storage';

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
