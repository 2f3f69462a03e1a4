/**
 * Tiny models for the fake hub: a Llama base and two fine-tunes of it, written to disk (so the
 * CLI can merge the same folders) and served by a FakeHub under `alloy-test/<name>`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFineTune, makeTinyModel, type TinyModel, type TinyModelOptions } from '../fixtures/models';
import { randomValues, writeAdapter, type AdapterModule } from '../lora/adapters';
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

/** A PEFT LoRA adapter of `base` for the fake hub (`alloy-test/lora-a`), written like PEFT writes one. */
export interface HubAdapter {
  readonly id: string;
  readonly dir: string;
  /** PEFT module names it has factors for. */
  readonly modules: readonly string[];
  readonly rank: number;
  readonly alpha: number;
}

/**
 * Writes a rank-4 adapter of `models.base` (q_proj and v_proj of every layer, down_proj of layer 1
 * at rank 2 through rank_pattern, lm_head saved whole) under `<root>/alloy-test/lora-a`, so a
 * CLI run from `root` reads the same files the fake hub serves.
 */
export function makeHubAdapter(models: HubModels, name = 'lora-a', seed = 500): HubAdapter {
  const id = `${HUB_NAMESPACE}/${name}`;
  const dir = join(models.root, id);
  const shape = (tensor: string): [number, number] => {
    const s = models.base.shapes.get(tensor);
    if (!s || s.length !== 2) throw new Error(`test adapter: the base has no matrix ${tensor}`);
    return [s[0], s[1]];
  };
  const layers = Number(models.base.config.num_hidden_layers);
  const modules: AdapterModule[] = [];
  for (let l = 0; l < layers; l++) {
    for (const proj of ['q_proj', 'v_proj']) modules.push({ module: `model.layers.${l}.self_attn.${proj}`, rank: 4, weightShape: shape(`model.layers.${l}.self_attn.${proj}.weight`) });
  }
  modules.push({ module: 'model.layers.1.mlp.down_proj', rank: 2, weightShape: shape('model.layers.1.mlp.down_proj.weight') });
  const [vocab, hidden] = shape('lm_head.weight');
  writeAdapter(
    dir,
    {
      r: 4,
      lora_alpha: 8,
      target_modules: ['q_proj', 'v_proj', 'down_proj'],
      rank_pattern: { 'model.layers.1.mlp.down_proj': 2 },
      modules_to_save: ['lm_head'],
      base_model_name_or_path: models.ids.base,
    },
    modules,
    { seed, replacements: [{ name: 'base_model.model.lm_head.weight', dtype: 'F32', shape: [vocab, hidden], values: randomValues(vocab * hidden, seed + 99, 0.02) }] },
  );
  return { id, dir, modules: modules.map((m) => m.module), rank: 4, alpha: 8 };
}

export function serveHubAdapter(hub: FakeHub, adapter: HubAdapter, options: FakeRepoOptions = {}): void {
  hub.addModelDir(adapter.id, adapter.dir, { downloads: 50, ...options });
}
