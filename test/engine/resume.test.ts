import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/backend';
import { loadLocalModels } from '../../src/cli/local-models';
import { parseMergeConfig } from '../../src/config';
import { runMerge, type MergeCheckpoint } from '../../src/engine';
import { buildPlan } from '../../src/plan';
import { OpfsOutputStore } from '../../src/storage/opfs-output';
import type { OutputFolder } from '../../src/storage/types';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { tempDir } from '../cli/run-alloy';
import { memoryOpfs } from '../helpers/memory-opfs';

class Interrupted extends Error {}

async function filesOf(store: OpfsOutputStore, name: string): Promise<Map<string, Buffer>> {
  const manifest = (await store.readManifest(name))!;
  const out = new Map<string, Buffer>();
  for (const f of manifest.files) out.set(f.name, Buffer.from(await (await store.file(name, f.name)).arrayBuffer()));
  return out;
}

describe('runMerge resumed from a checkpoint', () => {
  it('gives the bytes of an uninterrupted merge from every tensor boundary, shard boundaries included', async () => {
    const dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1, numLayers: 2, hiddenSize: 32, intermediateSize: 64, vocabSize: 64 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
    // DARE: random, so a resumed tensor must draw what it would have drawn in one go.
    const { config } = parseMergeConfig('models:\n  - {model: ft, parameters: {weight: 0.8, density: 0.5}}\nbase_model: base\nmerge_method: dare_ties\n');
    const models = await loadLocalModels(config, dir);
    const plan = buildPlan(config, models.metadata, { randomSeed: 3, outShardSize: 6000 });
    expect(plan.shards.length).toBeGreaterThan(2);

    const referenceStore = await OpfsOutputStore.open(memoryOpfs().root);
    await runMerge(plan, { backend: new CpuBackend(), sources: models.sources, output: await referenceStore.begin('out') });
    const expected = await filesOf(referenceStore, 'out');

    const boundaries = new Set<number>();
    let before = 0;
    for (const shard of plan.shards) boundaries.add((before += shard.tensors.length));
    let tested = 0;
    for (let stopAt = 1; stopAt <= plan.jobs.length; stopAt++) {
      const opfs = memoryOpfs();
      const store = await OpfsOutputStore.open(opfs.root);
      const first = await store.beginResumable('out', 'resumetest');
      expect(first.checkpoint).toBeNull();
      // A crash: the merge stops after `stopAt` tensors and nothing is cleaned up.
      const crashing: OutputFolder = { ...bind(first.folder), abort: async () => {} };
      await expect(
        runMerge(plan, {
          backend: new CpuBackend(),
          sources: models.sources,
          output: crashing,
          onCheckpoint: async (c) => {
            await first.folder.saveCheckpoint(c);
            if (c.tensorsDone === stopAt) throw new Interrupted();
          },
        }),
      ).rejects.toBeInstanceOf(Interrupted);
      opfs.releaseLocks();

      const again = await store.beginResumable('out', 'resumetest');
      const checkpoint = again.checkpoint as MergeCheckpoint;
      expect(checkpoint.tensorsDone).toBe(stopAt);
      await runMerge(plan, { backend: new CpuBackend(), sources: models.sources, output: again.folder, resume: checkpoint });
      const actual = await filesOf(store, 'out');
      expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [name, bytes] of expected) expect(actual.get(name)!.equals(bytes), `${name} after ${stopAt}`).toBe(true);
      tested++;
    }
    expect(tested).toBe(plan.jobs.length);
    expect([...boundaries].some((b) => b < plan.jobs.length)).toBe(true);
    await models.sources.closeAll();
  });
});

/** The folder's methods bound to it, so they survive being spread into another object. */
function bind(folder: OutputFolder): OutputFolder {
  return {
    create: (f) => folder.create(f),
    reopen: (f, at) => folder.reopen!(f, at),
    writeText: (f, t) => folder.writeText(f, t),
    writeBytes: (f, b) => folder.writeBytes(f, b),
    commit: () => folder.commit(),
    abort: () => folder.abort(),
  };
}
