import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { buildPlan, loadModelMetadata, PlanError, type ModelMetadata } from '../../src/plan';
import { memoryModelFolder } from '../../src/storage';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { tempDir } from '../cli/run-alloy';

/** What the planner throws for `yaml` (fails when it does not throw a PlanError). */
function planError(yaml: string, models: Map<string, ModelMetadata>, options = {}): PlanError {
  try {
    buildPlan(parseMergeConfig(yaml).config, models, options);
  } catch (error) {
    expect(error).toBeInstanceOf(PlanError);
    return error as PlanError;
  }
  return expect.fail('expected a PlanError');
}

describe('the planner checks counts against the models before sizing anything by them', () => {
  let models: Map<string, ModelMetadata>;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1, numLayers: 4 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
    await makeTinyModel(join(dir, 'wide'), { seed: 3, numLayers: 4, intermediateSize: 40 });
    models = new Map();
    for (const key of ['base', 'ft', 'wide']) models.set(key, await loadModelMetadata(nodeModelFolder(join(dir, key), key), key));
  });

  const slices = (first: string, second: string) =>
    `slices:\n  - sources:\n      - {model: base, layer_range: ${first}}\n      - {model: ft, layer_range: ${second}}\nmerge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\n`;

  it('refuses layer_range [0, 100000000] on a 4-layer model with the YAML path', () => {
    // The validator already refuses a range past any model; the planner does not rely on it.
    const config = parseMergeConfig(slices('[0, 4]', '[0, 4]')).config;
    config.slices![0].sources[1].layer_range = [0, 100_000_000];
    let error: unknown;
    try {
      buildPlan(config, models);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).yamlPath).toBe('slices[0].sources[1].layer_range');
    expect((error as PlanError).message).toBe(
      'slices[0].sources[1].layer_range: layer_range [0, 100000000] is outside model ft, which has 4 layers: use 0 ≤ start ≤ end ≤ 4 (end is exclusive)',
    );
    expect(planError(slices('[0, 90000]', '[0, 90000]'), models).message).toContain('layer_range [0, 90000] is outside model base, which has 4 layers');
    expect(planError(slices('[3, 5]', '[3, 5]'), models).message).toContain('layer_range [3, 5] is outside model base, which has 4 layers');
    // The boundary itself is fine: [0, 4] and an empty [4, 4].
    const plan = buildPlan(parseMergeConfig(slices('[0, 4]', '[0, 4]')).config, models);
    expect(plan.jobs.filter((j) => j.name.endsWith('.mlp.down_proj.weight'))).toHaveLength(4);
  });

  it('refuses a config.json whose layer count exceeds the tensors its weights hold', () => {
    const base = models.get('base')!;
    const lying: ModelMetadata = { ...base, key: 'liar', config: { ...base.config, num_hidden_layers: 100_000_000 } };
    const error = planError('models:\n  - {model: liar, parameters: {weight: 1}}\nmerge_method: linear\n', new Map([['liar', lying]]));
    expect(error.message).toBe(
      `config.json of model liar says it has 100000000 layers, but its weights hold only ${base.tensors.tensors.size} tensors: ` +
        "the config.json does not belong to these weights; use the model's own config.json",
    );
  });

  it('a missing config.json is a PlanError (a wrong folder, exit 2 in the CLI)', async () => {
    const error = await loadModelMetadata(memoryModelFolder('m', {}), 'org/m').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toMatch(/^Model org\/m has no config\.json \(looked in m\)/);
  });

  const taskArithmetic = 'models:\n  - {model: ft, parameters: {weight: 1}}\n  - {model: wide, parameters: {weight: 1}}\nbase_model: base\nmerge_method: task_arithmetic\n';

  it('refuses a task-arithmetic model whose tensor shape differs from the base, naming the tensor and both shapes', () => {
    const error = planError(taskArithmetic, models);
    // The first in merge order (mergekit's llama template: attention, then mlp up/gate/down); up_proj is [intermediate, hidden].
    expect(error.message).toBe(
      'tensor model.layers.0.mlp.up_proj.weight of model wide has shape [40, 32], but the base model base has [48, 32]: ' +
        'the model is probably not a fine-tune of the base. Check the models; pass --allow-crimes to merge anyway, ' +
        'leaving that model out of this tensor (as mergekit does).',
    );
  });

  it('keeps mergekit\'s skip-with-warning under allowCrimes: the model is left out of those tensors only', () => {
    const plan = buildPlan(parseMergeConfig(taskArithmetic).config, models, { allowCrimes: true });
    const gate = plan.jobs.find((j) => j.name === 'model.layers.1.mlp.gate_proj.weight')!;
    expect(gate.inputs.map((i) => i.model).sort()).toEqual(['base', 'ft']);
    expect(gate.shape).toEqual([48, 32]);
    const q = plan.jobs.find((j) => j.name === 'model.layers.1.self_attn.q_proj.weight')!;
    expect(q.inputs.map((i) => i.model).sort()).toEqual(['base', 'ft', 'wide']);
    expect(plan.warnings.filter((w) => w.includes('skipping model wide because its shape'))).toHaveLength(3 * 4);
    expect(plan.warnings).toContain(
      'model.layers.0.mlp.down_proj.weight: skipping model wide because its shape [32, 40] differs from the base [32, 48].',
    );
  });
});
