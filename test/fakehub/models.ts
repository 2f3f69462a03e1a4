/**
 * Tiny models for the fake hub: a Llama base and two fine-tunes of it, written to disk (so the
 * CLI can merge the same folders) and served by a FakeHub under `alloy-test/<name>`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFineTune, makeTinyModel, type TinyModel, type TinyModelOptions } from '../fixtures/models';
import type { FakeHub, FakeRepoOptions } from './server';

export const HUB_NAMESPACE = 'alloy-test';

export interface HubModels {
  /** Folder holding `alloy-test/base`, `alloy-test/ft-a`, `alloy-test/ft-b` (a CLI cwd where the YAML's ids are paths). */
  readonly root: string;
  readonly base: TinyModel;
  readonly a: TinyModel;
  readonly b: TinyModel;
  readonly ids: { readonly base: string; readonly a: string; readonly b: string };
}

/** Options of models large enough to span several download blocks (about 200 KB each). */
export const MULTI_BLOCK_MODEL: TinyModelOptions = {
  arch: 'llama',
  dtype: 'BF16',
  seed: 1,
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 3,
  vocabSize: 256,
  numHeads: 4,
  numKvHeads: 2,
};

export async function makeHubModels(options: TinyModelOptions = MULTI_BLOCK_MODEL, root = mkdtempSync(join(tmpdir(), 'alloy-hub-'))): Promise<HubModels> {
  const ids = { base: `${HUB_NAMESPACE}/base`, a: `${HUB_NAMESPACE}/ft-a`, b: `${HUB_NAMESPACE}/ft-b` };
  const base = await makeTinyModel(join(root, ids.base), options);
  const a = await makeFineTune(join(root, ids.a), base, { seed: 2, deltaScale: 0.02, deltaDensity: 0.6 });
  const b = await makeFineTune(join(root, ids.b), base, { seed: 3, deltaScale: 0.02, deltaDensity: 0.6 });
  return { root, base, a, b, ids };
}

export function serveHubModels(hub: FakeHub, models: HubModels, options: FakeRepoOptions = {}): void {
  hub.addModelDir(models.ids.base, models.base.dir, { downloads: 300, ...options });
  hub.addModelDir(models.ids.a, models.a.dir, { downloads: 200, ...options });
  hub.addModelDir(models.ids.b, models.b.dir, { downloads: 100, ...options });
}

export const TIES_YAML = (ids: HubModels['ids']): string =>
  [
    'models:',
    `  - model: ${ids.a}`,
    '    parameters: {weight: 1.0, density: 0.5}',
    `  - model: ${ids.b}`,
    '    parameters: {weight: 0.7, density: 0.7}',
    'merge_method: ties',
    `base_model: ${ids.base}`,
    'parameters: {normalize: true}',
    'dtype: bfloat16',
    '',
  ].join('\n');
