import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend, type BackendChunk, type ComputeBackend } from '../../src/backend';
import { loadLocalModels } from '../../src/cli/local-models';
import { parseMergeConfig } from '../../src/config';
import { MergeCancelledError, runMerge, type MergeProgress } from '../../src/engine';
import { buildPlan } from '../../src/plan';
import { NodeOutputFolder } from '../../src/storage/node-fs';
import type { ByteSink, OutputFolder } from '../../src/storage/types';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { tempDir } from '../cli/run-alloy';
import { hookedChunk } from '../helpers/cpu-chunk';

/**
 * The CPU backend as a backend that runs two (or `jobs`) tensor jobs at once (as a worker pool
 * does), each chunk's result delayed so that the jobs' chunks interleave; records the jobs ended
 * and the most jobs with chunks open at once. `fail` makes the output chunks of that tensor fail,
 * `slow` delays those of another by 150 ms.
 */
function twoJobBackend(fail?: string, slow?: string, jobs = 2): ComputeBackend & { readonly ended: number[]; readonly mostJobsOpen: number; readonly open: number } {
  const cpu = new CpuBackend();
  const open = new Map<number, number>();
  const ended: number[] = [];
  let mostJobsOpen = 0;
  const later = <T>(value: T, ms: number): Promise<T> => new Promise((r) => setTimeout(() => r(value), ms));
  return {
    name: 'cpu',
    chunksInFlight: 3,
    jobsInFlight: jobs,
    ended,
    get mostJobsOpen() {
      return mostJobsOpen;
    },
    get open() {
      return [...open.values()].reduce((a, b) => a + b, 0);
    },
    endJob: (jobId) => ended.push(jobId),
    beginChunk(spec, inputs): BackendChunk {
      const job = spec.jobId!;
      open.set(job, (open.get(job) ?? 0) + 1);
      mostJobsOpen = Math.max(mostJobsOpen, open.size);
      const delay = spec.tensorName === slow ? 150 : 1 + (spec.chunkIndex % 3);
      return hookedChunk(cpu.beginChunk(spec, inputs), {
        partials: (partials) => later(partials, delay),
        encoded: async (bytes) => {
          if (spec.tensorName === fail) throw new Error(`chunk ${spec.chunkIndex} of ${spec.tensorName} failed`);
          return later(bytes, delay);
        },
        released: () => {
          const left = open.get(job)! - 1;
          if (left === 0) open.delete(job);
          else open.set(job, left);
        },
      });
    },
    dispose: () => cpu.dispose(),
  };
}

/** `folder` with every sink write ending `ms` later; `written` counts each file's bytes whose writes have ended. */
function slowWrites(folder: OutputFolder, ms: number): { readonly output: OutputFolder; readonly written: Map<string, number> } {
  const written = new Map<string, number>();
  const slow = (file: string, sink: ByteSink): ByteSink => ({
    write: async (bytes) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      await sink.write(bytes);
      written.set(file, (written.get(file) ?? 0) + bytes.byteLength);
    },
    close: () => sink.close(),
  });
  return {
    written,
    output: {
      create: async (file) => slow(file, await folder.create(file)),
      writeText: (file, text) => folder.writeText(file, text),
      writeBytes: (file, bytes) => folder.writeBytes(file, bytes),
      commit: () => folder.commit(),
      abort: () => folder.abort(),
    },
  };
}

/** Where each tensor's data ends in a safetensors file, by name. */
function tensorEnds(path: string): Map<string, number> {
  const bytes = readFileSync(path);
  const headerBytes = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerBytes).toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
  return new Map(Object.entries(header).flatMap(([name, t]) => (t.data_offsets ? [[name, 8 + headerBytes + t.data_offsets[1]] as const] : [])));
}

async function setup() {
  const dir = tempDir();
  const base = await makeTinyModel(join(dir, 'base'), { seed: 1, numLayers: 4, hiddenSize: 64, intermediateSize: 128 });
  await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
  const { config } = parseMergeConfig('models:\n  - {model: ft, parameters: {weight: 0.5, density: 0.5}}\nbase_model: base\nmerge_method: ties\n');
  const models = await loadLocalModels(config, dir);
  const plan = buildPlan(config, models.metadata, { randomSeed: 7 });
  return { dir, plan, models };
}

/** The CPU backend with the chunks of tensor `name` held until `open` is called. */
function stallingTensor(name: string): { readonly backend: ComputeBackend; readonly open: () => void } {
  const cpu = new CpuBackend();
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const backend: ComputeBackend = {
    name: 'cpu',
    beginChunk: (spec, inputs) =>
      hookedChunk(cpu.beginChunk(spec, inputs), {
        partials: async (partials) => (spec.tensorName === name ? gate.then(() => partials) : partials),
        encoded: async (bytes) => (spec.tensorName === name ? gate.then(() => bytes) : bytes),
      }),
    dispose: () => cpu.dispose(),
  };
  return { backend, open };
}

describe('runMerge', () => {
  it('cancels between chunks, removes the temporary output and writes nothing', async () => {
    const { dir, plan, models } = await setup();
    const output = await NodeOutputFolder.open(join(dir, 'out'));
    const controller = new AbortController();
    const events: MergeProgress[] = [];
    const run = runMerge(plan, {
      backend: new CpuBackend(),
      sources: models.sources,
      output,
      budgetBytes: 16 * 1024,
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        events.push(p);
        if (p.tensorsDone === 3) controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(MergeCancelledError);
    await models.sources.closeAll();
    expect(existsSync(join(dir, 'out'))).toBe(false);
    expect(readdirSync(dir).some((f) => f.includes('alloy-tmp'))).toBe(false);
    expect(events.at(-1)!.tensorsDone).toBeLessThan(plan.jobs.length);
  });

  it('reports monotone progress that ends with every tensor and byte accounted for', async () => {
    const { dir, plan, models } = await setup();
    const output = await NodeOutputFolder.open(join(dir, 'out'));
    const events: MergeProgress[] = [];
    const report = await runMerge(plan, {
      backend: new CpuBackend(),
      sources: models.sources,
      output,
      budgetBytes: 16 * 1024,
      progressIntervalMs: 0,
      onProgress: (p) => events.push(p),
    });
    await models.sources.closeAll();
    const last = events.at(-1)!;
    expect(last.phase).toBe('done');
    expect(last.tensorsDone).toBe(plan.jobs.length);
    expect(last.inputBytesDone).toBe(plan.totalInputBytes);
    for (let i = 1; i < events.length; i++) expect(events[i].inputBytesDone).toBeGreaterThanOrEqual(events[i - 1].inputBytesDone);
    // statistics passes re-read inputs that are larger than a quarter of the budget
    expect(report.bytesRead).toBeGreaterThan(plan.totalInputBytes);
    expect(report.bytesWritten).toBe(plan.totalOutputBytes);
    expect(readModelDir(join(dir, 'out')).tensors.size).toBe(plan.jobs.length);
  });

  it('reports the tensors a burst finished when the merge then stalls, before anything else happens', async () => {
    // Every tensor but the last finishes at once; the last one's chunks wait for a gate. With a
    // report at most every 300 ms, the burst's last state is reported when that interval has
    // passed, not when the stalled tensor finishes.
    const { dir, plan, models } = await setup();
    const stalled = stallingTensor(plan.jobs.at(-1)!.name);
    const events: MergeProgress[] = [];
    const run = runMerge(plan, { backend: stalled.backend, sources: models.sources, output: await NodeOutputFolder.open(join(dir, 'out')), progressIntervalMs: 300, onProgress: (p) => events.push(p) });
    await expect.poll(() => events.at(-1)?.tensorsDone, { timeout: 5000, interval: 20 }).toBe(plan.jobs.length - 1);
    stalled.open();
    await run;
    await models.sources.closeAll();
    expect(events.at(-1)!.tensorsDone).toBe(plan.jobs.length);
  });

  it('fails the merge with what onProgress throws in a held-back report, at its next report (no uncaught error)', async () => {
    const { dir, plan, models } = await setup();
    const stalled = stallingTensor(plan.jobs.at(-1)!.name);
    let thrown = false;
    const run = runMerge(plan, {
      backend: stalled.backend,
      sources: models.sources,
      output: await NodeOutputFolder.open(join(dir, 'out')),
      progressIntervalMs: 300,
      // Only the held-back report sees the burst's end: the stall holds every other report back.
      onProgress: (p) => {
        if (p.tensorsDone !== plan.jobs.length - 1) return;
        thrown = true;
        throw new Error('progress sink closed');
      },
    });
    await expect.poll(() => thrown, { timeout: 5000, interval: 20 }).toBe(true);
    stalled.open();
    await expect(run).rejects.toThrow('progress sink closed');
    await models.sources.closeAll();
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('gives identical bytes whatever the memory budget', async () => {
    const { dir, plan, models } = await setup();
    for (const [name, budget] of [['small', 8 * 1024], ['large', 64 * 1024 * 1024]] as const) {
      const output = await NodeOutputFolder.open(join(dir, name));
      await runMerge(plan, { backend: new CpuBackend(), sources: models.sources, output, budgetBytes: budget });
    }
    await models.sources.closeAll();
    const small = readModelDir(join(dir, 'small'));
    const large = readModelDir(join(dir, 'large'));
    for (const [name, t] of large.tensors) expect(Buffer.from(small.tensors.get(name)!.raw).equals(Buffer.from(t.raw)), name).toBe(true);
  });

  it('with two tensors in flight: the same bytes, each written, checked and checkpointed in plan order', async () => {
    const { dir, plan, models } = await setup();
    const reference = await NodeOutputFolder.open(join(dir, 'one'));
    await runMerge(plan, { backend: new CpuBackend(), sources: models.sources, output: reference, budgetBytes: 16 * 1024 });
    const backend = twoJobBackend();
    const checkpoints: number[] = [];
    const report = await runMerge(plan, {
      backend,
      sources: models.sources,
      output: await NodeOutputFolder.open(join(dir, 'two')),
      budgetBytes: 16 * 1024,
      onCheckpoint: async ({ tensorsDone }) => {
        checkpoints.push(tensorsDone);
      },
    });
    await models.sources.closeAll();
    // The next tensor's chunks ran while this one's were open: the jobs did overlap.
    expect(backend.mostJobsOpen).toBe(2);
    expect(backend.ended).toHaveLength(plan.jobs.length);
    expect(checkpoints).toEqual(plan.jobs.map((_, i) => i + 1));
    expect(report.bytesWritten).toBe(plan.totalOutputBytes);
    const one = readModelDir(join(dir, 'one'));
    const two = readModelDir(join(dir, 'two'));
    expect([...two.tensors.keys()]).toEqual([...one.tensors.keys()]);
    for (const [name, t] of one.tensors) expect(Buffer.from(two.tensors.get(name)!.raw).equals(Buffer.from(t.raw)), name).toBe(true);
  });

  it('keeps each checkpoint once the output holds every byte it vouches for, while the next tensors are written', async () => {
    const { dir, plan, models } = await setup();
    expect(plan.shards).toHaveLength(1);
    const file = plan.shards[0].file;
    const { output, written } = slowWrites(await NodeOutputFolder.open(join(dir, 'out')), 5);
    const kept: { tensorsDone: number; written: number }[] = [];
    let wroteMeanwhile = false;
    await runMerge(plan, {
      backend: new CpuBackend(),
      sources: models.sources,
      output,
      budgetBytes: 16 * 1024,
      onCheckpoint: async ({ tensorsDone }) => {
        const before = written.get(file) ?? 0;
        kept.push({ tensorsDone, written: before });
        // A slow checkpoint: the merge does not wait for it.
        await new Promise((resolve) => setTimeout(resolve, 30));
        if ((written.get(file) ?? 0) > before) wroteMeanwhile = true;
      },
    });
    await models.sources.closeAll();
    const ends = tensorEnds(join(dir, 'out', file));
    expect(kept.map((k) => k.tensorsDone)).toEqual(plan.jobs.map((_, i) => i + 1));
    for (const { tensorsDone, written: bytes } of kept) {
      expect(bytes, `checkpoint after ${tensorsDone} tensors`).toBeGreaterThanOrEqual(ends.get(plan.jobs[tensorsDone - 1].name)!);
    }
    expect(wroteMeanwhile).toBe(true);
  });

  it('stops with the error of a checkpoint that could not be kept, and commits nothing', async () => {
    const { dir, plan, models } = await setup();
    const run = runMerge(plan, {
      backend: new CpuBackend(),
      sources: models.sources,
      output: await NodeOutputFolder.open(join(dir, 'out')),
      budgetBytes: 16 * 1024,
      onCheckpoint: async ({ tensorsDone }) => {
        if (tensorsDone === 2) throw new Error('the checkpoint file could not be written');
      },
    });
    await expect(run).rejects.toThrow('the checkpoint file could not be written');
    await models.sources.closeAll();
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('with four tensors allowed in flight: small tensors overlap beyond two, tensors as large as the budget two at most, with the same bytes', async () => {
    const { dir, plan, models } = await setup();
    const reference = await NodeOutputFolder.open(join(dir, 'one'));
    await runMerge(plan, { backend: new CpuBackend(), sources: models.sources, output: reference, budgetBytes: 16 * 1024 });
    const one = readModelDir(join(dir, 'one'));
    // Every tensor's inputs (two f32 models of 64 × 128 at most) within a 1 MiB budget's share;
    // at 2 KiB, most tensors hold a whole budget.
    expect(Math.max(...plan.jobs.map((job) => job.inputs.reduce((s, i) => s + i.tensor.byteLength, 0)))).toBeLessThan(256 * 1024);
    for (const [budgetBytes, most] of [[1024 * 1024, 4], [2 * 1024, 2]] as const) {
      const backend = twoJobBackend(undefined, undefined, 4);
      const out = join(dir, `budget-${budgetBytes}`);
      await runMerge(plan, { backend, sources: models.sources, output: await NodeOutputFolder.open(out), budgetBytes });
      expect(backend.mostJobsOpen, `budget ${budgetBytes}`).toBe(most);
      const got = readModelDir(out);
      for (const [name, t] of one.tensors) expect(Buffer.from(got.tensors.get(name)!.raw).equals(Buffer.from(t.raw)), name).toBe(true);
    }
    await models.sources.closeAll();
  });

  it('with two tensors in flight, a tensor that fails stops the merge with its error, after the one running beside it settles', async () => {
    const { dir, plan, models } = await setup();
    const failing = plan.jobs[3].name;
    const backend = twoJobBackend(failing, plan.jobs[4].name);
    const run = runMerge(plan, { backend, sources: models.sources, output: await NodeOutputFolder.open(join(dir, 'out')), budgetBytes: 16 * 1024 });
    // Taken as the merge fails, before anything else runs: no chunk of the tensor beside it is still open.
    let openAtFailure = -1;
    const error = await run.then(
      () => null,
      (e: unknown) => ((openAtFailure = backend.open), e as Error),
    );
    expect(error?.message).toMatch(new RegExp(`^Merging tensor ${failing.replace(/\./g, '\\.')} \\(ties\\) failed: chunk \\d+ of`));
    expect(openAtFailure).toBe(0);
    await models.sources.closeAll();
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});
