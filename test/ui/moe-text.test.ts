import { describe, expect, it } from 'vitest';
import { parseMoeConfig } from '../../src/config';
import { checkConfigText, configText } from '../../src/ui/lib/config-text';
import { editMoeText, mergeFromMoe, moeConfigText, moeFromMerge, moeModels, promptsFromText } from '../../src/ui/lib/moe-text';
import { moePlan } from '../../src/ui/lib/moe-plan';
import type { ModelSummary } from '../../src/worker/api';

const MOE = `base_model: org/base
gate_mode: hidden
dtype: bfloat16
experts_per_token: 2
experts:
  - source_model: org/code
    positive_prompts:
      - "Write a Python function"
      - "yes"
  - source_model: org/math@v2
    positive_prompts: ["Solve the equation"]
    negative_prompts: ["Tell me a story"]
    residual_scale: 0.5
`;

describe('mergekit-moe configs in the app', () => {
  it('reads a MoE config into the experts editor with mergekit-moe’s rules', () => {
    const check = checkConfigText(MOE);
    expect(check.moe?.valid).toBe(true);
    expect(check.valid).toBeNull();
    expect(check.errorCount).toBe(0);
    expect(check.moe!.config.experts.map((e) => e.positive_prompts)).toEqual([['Write a Python function', 'yes'], ['Solve the equation']]);
    expect(moeModels(check.moe!.config)).toEqual(['org/base', 'org/code', 'org/math@v2']);
  });

  it('writes edits back as YAML that reads the same (YAML 1.1 words stay strings)', () => {
    const check = checkConfigText(MOE);
    const text = editMoeText(check.moe!, (c) => (c.experts[0].positive_prompts = ['Fix this bug', 'no', 'on']));
    expect(text).toContain('  - source_model: org/code\n    positive_prompts:\n      - Fix this bug\n      - "no"\n      - "on"\n');
    const { config } = parseMoeConfig(text);
    expect(config.experts[0].positive_prompts).toEqual(['Fix this bug', 'no', 'on']);
    expect(config.experts[1]).toEqual(parseMoeConfig(MOE).config.experts[1]);
    expect(config.dtype).toBe('bfloat16');
  });

  it('reports an invalid experts_per_token at its YAML path and line', () => {
    const zero = checkConfigText(MOE.replace('experts_per_token: 2', 'experts_per_token: 0'));
    expect(zero.moe?.valid).toBe(false);
    expect(zero.issues).toEqual([expect.objectContaining({ path: 'experts_per_token', line: 4, severity: 'error', message: 'experts_per_token must be at least 1, not 0' })]);
    const three = checkConfigText(MOE.replace('experts_per_token: 2', 'experts_per_token: 3'));
    expect(three.issues.filter((i) => i.severity === 'error')).toEqual([
      expect.objectContaining({ path: 'experts', message: expect.stringMatching(/^there are 2 experts, fewer than experts_per_token \(3\)/) }),
    ]);
  });

  it('switches between a merge and a mixture of experts', () => {
    const moe = moeFromMerge(null, ['org/base', 'org/code', 'org/math'], 'org/base');
    expect(moe).toEqual({
      base_model: { path: 'org/base' },
      gate_mode: 'hidden',
      experts_per_token: 2,
      experts: [
        { source_model: { path: 'org/code' }, positive_prompts: [] },
        { source_model: { path: 'org/math' }, positive_prompts: [] },
      ],
    });
    const check = checkConfigText(moeConfigText(moe));
    expect(check.moe).toBeDefined();
    // Without prompts the hidden gate cannot be built: each expert says so at its path.
    expect(check.issues.filter((i) => i.severity === 'error').map((i) => i.path)).toEqual(['experts[0].positive_prompts', 'experts[1].positive_prompts']);
    const back = checkConfigText(configText(mergeFromMoe(check.moe!.config)));
    expect(back.moe).toBeUndefined();
    expect(back.valid?.merge_method).toBe('linear');
    expect(back.valid?.models?.map((m) => m.model.path)).toEqual(['org/base', 'org/code', 'org/math']);
  });

  it('reads prompts one per line', () => {
    expect(promptsFromText('  a \n\n b\n')).toEqual(['a', 'b']);
  });
});

describe('moePlan', () => {
  const summary = (key: string, over: Partial<ModelSummary> = {}): ModelSummary => ({
    key,
    architecture: 'LlamaForCausalLM',
    modelType: 'llama',
    numLayers: 4,
    hiddenSize: 64,
    parameterCount: 1,
    dtype: 'BF16',
    weightBytes: 1,
    files: [],
    tiedEmbeddings: false,
    hasTokenizer: true,
    ...over,
  });

  it('picks Mixtral for llama experts and lays out the output', () => {
    const config = checkConfigText(MOE).moe!.config;
    const plan = moePlan(config, (k) => summary(k));
    expect(plan.architecture).toBe('Mixtral');
    expect(plan.layers).toBe(4);
    expect(plan.errors).toEqual([]);
    expect(plan.experts.map((e) => [e.path, e.model, e.positive, e.negative])).toEqual([
      ['experts[0]', 'org/code', 2, 0],
      ['experts[1]', 'org/math@v2', 1, 1],
    ]);
  });

  it('says which expert does not fit the base, at its YAML path', () => {
    const config = checkConfigText(MOE).moe!.config;
    const plan = moePlan(config, (k) => (k === 'org/math@v2' ? summary(k, { hiddenSize: 128 }) : k === 'org/code' ? summary(k, { modelType: 'qwen3' }) : summary(k)));
    expect(plan.errors).toEqual([
      { path: 'experts[0].source_model', message: 'org/code is a qwen3 model but the base org/base is llama: every expert must share the base\'s architecture' },
      { path: 'experts[1].source_model', message: 'org/math@v2 has hidden size 128 but the base has 64: experts must be fine-tunes of the same base' },
    ]);
    expect(plan.architecture).toBeUndefined();
    expect(moePlan(config, (k) => (k === 'org/code' ? undefined : summary(k))).pending).toEqual(['org/code']);
  });
});
