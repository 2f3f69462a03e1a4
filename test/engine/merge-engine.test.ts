import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/backend';
import { loadLocalModels } from '../../src/cli/local-models';
import { parseMergeConfig } from '../../src/config';
import { MergeCancelledError, runMerge, type MergeProgress } from '../../src/engine';
import { buildPlan } from '../../src/plan';
import { NodeOutputFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { tempDir } from '../cli/run-alloy';

async function setup() {
  const dir = tempDir();
  const base = await makeTinyModel(join(dir, 'base'), { seed: 1, numLayers: 4, hiddenSize: 64, intermediateSize: 128 });
  await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
  const { config } = parseMergeConfig('models:\n  - {model: ft, parameters: {weight: 0.5, density: 0.5}}\nbase_model: base\nmerge_method: ties\n');
  const models = await loadLocalModels(config, dir);
  const plan = buildPlan(config, models.metadata, { randomSeed: 7 });
  return { dir, plan, models };
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
});
