import type { ComputeBackend } from '../backend/compute-backend';
import { HistogramTotals } from '../backend/reduction';
import { findMethod } from '../methods';
import type { MergePlan } from '../plan/types';
import type { NonFiniteTensor } from '../storage';
import type { ByteSource, OutputFolder } from '../storage/types';
import { NonFiniteError, renderNonFiniteCardSection } from './non-finite';
import { ShardedOutputWriter } from './output-writer';
import { MergeCancelledError, type MergeProgress, type StageTimes } from './progress';
import { TensorJobRunner } from './tensor-job-runner';

/** Opens the files of the plan's models; the engine never knows where the bytes come from. */
export interface SourceOpener {
  open(model: string, file: string): Promise<ByteSource>;
}

export interface MergeOptions {
  readonly backend: ComputeBackend;
  readonly sources: SourceOpener;
  readonly output: OutputFolder;
  /** Working memory for one chunk (default 128 MiB). */
  readonly budgetBytes?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: MergeProgress) => void;
  /** Minimum time between progress events (default 100 ms). */
  readonly progressIntervalMs?: number;
  /**
   * Refuse a result with NaN or Inf in any input or output tensor: the merge stops with a
   * NonFiniteError after the first such tensor and the output folder is removed, never committed.
   */
  readonly refuseNonFinite?: boolean;
  /**
   * Continue a merge interrupted after this checkpoint (a reload): its tensors are already in
   * `output`, which must support `reopen`, and are not computed again.
   */
  readonly resume?: MergeCheckpoint;
  /**
   * Called after every tensor, once its bytes are in the output folder: what to keep to resume
   * from there. Calls come one at a time, in tensor order, while the merge goes on; the merge
   * commits only after the last one, and stops when one fails.
   */
  readonly onCheckpoint?: (checkpoint: MergeCheckpoint) => Promise<void>;
}

/** How far a merge got: its first `tensorsDone` jobs (plan order) are written. */
export interface MergeCheckpoint {
  readonly tensorsDone: number;
  /** The tensors done fill whole output files, all closed: a resume needs no file reopened. */
  readonly atFileBoundary?: boolean;
  readonly warnings: readonly string[];
  readonly nonFinite: readonly NonFiniteTensor[];
}

export interface MergeReport {
  readonly warnings: string[];
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly elapsedMs: number;
  readonly stageTimes: StageTimes;
  /** Tensors whose inputs or output hold NaN or Inf, in plan order (empty when none do). */
  readonly nonFinite: NonFiniteTensor[];
}

/** The model card, which gets a "Non-finite values" section when there are any. */
const MODEL_CARD_FILE = 'README.md';

export const DEFAULT_BUDGET_BYTES = 128 * 1024 * 1024;

/**
 * Runs a plan: every tensor job in order through its method on the backend, output shards and
 * text files into the output folder, which is committed only when everything succeeded and
 * aborted (removed) otherwise.
 */
export async function runMerge(plan: MergePlan, options: MergeOptions): Promise<MergeReport> {
  const { backend, output, signal } = options;
  const budgetBytes = options.budgetBytes ?? DEFAULT_BUDGET_BYTES;
  const resumed = options.resume?.tensorsDone ?? 0;
  if (!Number.isSafeInteger(resumed) || resumed < 0 || resumed > plan.jobs.length) {
    throw new Error(`internal: cannot resume after ${resumed} tensors of a plan of ${plan.jobs.length}`);
  }
  const warnings: string[] = [...(options.resume?.warnings ?? [])];
  const nonFinite: NonFiniteTensor[] = [...(options.resume?.nonFinite ?? [])];
  const started = Date.now();
  const opened = new Map<string, Promise<ByteSource>>();
  const source = (model: string, file: string): Promise<ByteSource> => {
    const key = `${model}\u0000${file}`;
    let s = opened.get(key);
    if (!s) opened.set(key, (s = options.sources.open(model, file)));
    return s;
  };

  let bytesRead = 0;
  let bytesWritten = 0;
  const jobInputBytesOf = (job: MergePlan['jobs'][number]): number => job.inputs.reduce((s, i) => s + i.tensor.byteLength, 0);
  let tensorsDone = resumed;
  let inputBytesDone = plan.jobs.slice(0, resumed).reduce((s, job) => s + jobInputBytesOf(job), 0);
  let currentShare = 0;
  let currentTensor: string | null = null;
  const stageTimes = { readMs: 0, computeMs: 0, writeMs: 0 };
  let lastReport = -Infinity;
  const interval = options.progressIntervalMs ?? 100;
  /** A report held back by the interval, made when it has passed: the state a burst of tensors ended in shows even if nothing follows (a read that stalls). */
  let trailing: ReturnType<typeof setTimeout> | null = null;
  /** What onProgress threw in a held-back report: the merge fails with it at its next report. */
  let trailingError: { readonly error: unknown } | null = null;
  const clearTrailing = (): void => {
    if (trailing !== null) clearTimeout(trailing);
    trailing = null;
  };
  const report = (phase: MergeProgress['phase'], force = false): void => {
    if (!options.onProgress) return;
    if (trailingError) throw trailingError.error;
    const now = Date.now();
    if (!force && now - lastReport < interval) {
      trailing ??= setTimeout(() => {
        trailing = null;
        try {
          report(phase);
        } catch (error) {
          trailingError = { error };
        }
      }, interval - (now - lastReport));
      return;
    }
    clearTrailing();
    lastReport = now;
    const elapsedMs = now - started;
    const done = inputBytesDone + currentShare;
    const bytesPerSecond = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
    options.onProgress({
      phase,
      tensorsDone,
      tensorsTotal: plan.jobs.length,
      currentTensor,
      inputBytesDone: done,
      inputBytesTotal: plan.totalInputBytes,
      bytesRead,
      bytesWritten,
      elapsedMs,
      bytesPerSecond,
      etaMs: done > 0 && elapsedMs > 500 ? ((plan.totalInputBytes - done) / done) * elapsedMs : null,
      stageTimes: { ...stageTimes },
    });
  };

  const writer = new ShardedOutputWriter(plan, output);
  const histograms = new HistogramTotals();
  /** The tensors begun and not yet done, oldest first. */
  const running: { readonly done: Promise<void>; readonly holds: number }[] = [];
  // Stops the tensors still running when one fails.
  const stop = new AbortController();
  const jobSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  // The checkpoint being kept: one at a time, in tensor order; a failure stops the merge.
  let saving: Promise<void> = Promise.resolve();
  let savingFailed = false;
  try {
    await writer.resume(resumed);
    // Up to `jobsInFlight` tensors at once (a worker pool: the next tensors' first passes fill the
    // workers while this one's passes drain), each written, checked and counted strictly in plan
    // order: a tensor begins its output once the one before it is done. Beyond two, only while
    // the tensors in flight hold no more than two whole-budget tensors would: small tensors.
    const window = Math.max(1, Math.floor(backend.jobsInFlight ?? 1));
    const heldBytes = (job: MergePlan['jobs'][number]): number => Math.min(jobInputBytesOf(job), budgetBytes);
    let held = 0;
    const finishOldest = (): Promise<void> => {
      const oldest = running.shift()!;
      held -= oldest.holds;
      return oldest.done;
    };
    let previous: Promise<void> = Promise.resolve();
    let failed = false;
    for (const job of plan.jobs.slice(resumed)) {
      const holds = heldBytes(job);
      while (running.length >= 2 && held + holds > 2 * budgetBytes) await finishOldest();
      if (signal?.aborted) throw new MergeCancelledError();
      const method = findMethod(job.method);
      if (!method) throw new Error(`internal: the plan uses unknown method ${job.method}`);
      const jobInputBytes = jobInputBytesOf(job);
      const before = previous;
      let writing: Promise<void> | null = null;
      // The tensor's turn: the one before it is done, and its bytes go next.
      const turn = (): Promise<void> =>
        (writing ??= before.then(async () => {
          currentTensor = job.name;
          await writer.beginTensor(job.name);
        }));
      const jobWarnings: string[] = [];
      const runner = new TensorJobRunner(job, {
        backend,
        source,
        seed: plan.randomSeed,
        budgetBytes,
        histograms,
        wholeRows: method.wholeRows,
        signal: jobSignal,
        warn: (m) => jobWarnings.push(m),
        onRead: (n) => {
          bytesRead += n;
        },
        onOutput: (fraction) => {
          currentShare = fraction * jobInputBytes;
          report('merging');
        },
        write: async (bytes, released) => {
          await turn();
          bytesWritten += bytes.length;
          const waited = performance.now();
          await writer.write(bytes, released);
          stageTimes.writeMs += performance.now() - waited;
        },
        onWait: (stage, ms) => {
          if (stage === 'read') stageTimes.readMs += ms;
          else stageTimes.computeMs += ms;
        },
      });
      const done = (async (): Promise<void> => {
        try {
          await method.merge(runner);
        } catch (error) {
          if (error instanceof MergeCancelledError) throw error;
          throw new Error(`Merging tensor ${job.name} (${job.method}) failed: ${(error as Error).message}`, { cause: error });
        } finally {
          runner.release();
        }
        await turn();
        warnings.push(...jobWarnings);
        if (!runner.complete) throw new Error(`internal: method ${job.method} wrote no complete output for ${job.name}`);
        const found = runner.nonFinite();
        if (found) {
          nonFinite.push(found);
          if (options.refuseNonFinite) throw new NonFiniteError(found);
        }
        tensorsDone++;
        inputBytesDone += jobInputBytes;
        currentShare = 0;
        if (options.onCheckpoint) {
          // An earlier checkpoint failed: its error.
          if (savingFailed) await saving;
          const keep = options.onCheckpoint;
          const { written } = await writer.checkpoint();
          const checkpoint: MergeCheckpoint = { tensorsDone, warnings: [...warnings], nonFinite: [...nonFinite], atFileBoundary: writer.atFileBoundary };
          // Kept once the output holds every byte it vouches for, while the next tensors go on:
          // waiting here for the writes and the checkpoint file took a quarter of an app merge.
          saving = Promise.all([saving, written]).then(() => keep(checkpoint));
          saving.catch(() => (savingFailed = true));
        }
        report('merging');
      })();
      // A failure is thrown where the job is awaited, in plan order, not as an unhandled rejection;
      // no job begins after one has failed.
      done.catch(() => (failed = true));
      previous = done;
      running.push({ done, holds });
      held += holds;
      while (running.length >= window || (failed && running.length > 0)) await finishOldest();
    }
    while (running.length > 0) await finishOldest();
    await saving;
    currentTensor = null;
    report('writing', true);
    const finishing = performance.now();
    await writer.finish();
    for (const [file, text] of Object.entries(plan.textFiles)) {
      const card = file === MODEL_CARD_FILE && nonFinite.length > 0;
      await output.writeText(file, card ? text + renderNonFiniteCardSection(nonFinite) : text);
    }
    for (const copy of plan.copyFiles) {
      const src = await source(copy.model, copy.file);
      await output.writeBytes(copy.file, await src.read(0, src.size));
    }
    if (signal?.aborted) throw new MergeCancelledError();
    await output.commit();
    stageTimes.writeMs += performance.now() - finishing;
  } catch (error) {
    clearTrailing();
    // Tensors still running stop at their next chunk, or at their turn (the one before failed).
    stop.abort();
    await Promise.allSettled(running.map((r) => r.done));
    await saving.catch(() => undefined);
    await writer.abandon();
    await output.abort().catch(() => undefined);
    throw error;
  }
  report('done', true);
  return { warnings, bytesRead, bytesWritten, elapsedMs: Date.now() - started, stageTimes: { ...stageTimes }, nonFinite };
}
