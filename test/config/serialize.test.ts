import { describe, expect, it } from 'vitest';
import { configToYaml, parseMergeConfig, type MergeConfig } from '../../src/config';
import { GRADIENT_SLERP_YML, LINEAR_YML, ORCAMINI_PLATY_44_YML, TIES_YML } from './examples';

const roundTrip = (config: MergeConfig) => parseMergeConfig(configToYaml(config)).config;

describe('configToYaml', () => {
  it.each([
    ['linear.yml', LINEAR_YML],
    ['ties.yml', TIES_YML],
    ['gradient-slerp.yml', GRADIENT_SLERP_YML],
    ['orcamini-platy-44layer.yml', ORCAMINI_PLATY_44_YML],
  ])('%s: YAML → config → YAML → config is equal', (_, yaml) => {
    const config = parseMergeConfig(yaml).config;
    expect(roundTrip(config)).toStrictEqual(config);
    expect(configToYaml(roundTrip(config))).toBe(configToYaml(config));
  });

  it('writes idiomatic mergekit YAML', () => {
    expect(configToYaml(parseMergeConfig(TIES_YML).config)).toBe(`models:
  - model: psmathur/orca_mini_v3_13b
    parameters:
      density: [1, 0.7, 0.1]
      weight: 1
  - model: garage-bAInd/Platypus2-13B
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1]
  - model: WizardLM/WizardMath-13B-V1.0
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: TheBloke/Llama-2-13B-fp16
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`);
  });

  it('puts keys in mergekit order whatever the object order', () => {
    const config: MergeConfig = {
      chat_template: 'chatml',
      tokenizer_source: 'base',
      out_dtype: 'bfloat16',
      dtype: 'float32',
      parameters: { t: 0.5 },
      base_model: { path: 'a' },
      merge_method: 'slerp',
      models: [{ model: { path: 'a' } }, { model: { path: 'b', revision: 'r' } }],
    };
    const yaml = configToYaml(config);
    const keys = yaml.split('\n').filter((l) => /^\w/.test(l)).map((l) => l.split(':')[0]);
    expect(keys).toEqual(['models', 'merge_method', 'base_model', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'chat_template']);
    expect(yaml).toContain('- model: b@r\n');
    expect(roundTrip(config)).toStrictEqual({ ...config });
  });

  it('round-trips everything the schema holds', () => {
    const config: MergeConfig = {
      slices: [
        {
          sources: [
            { model: { path: 'org/a', revision: 'v1' }, layer_range: [0, 4], parameters: { weight: [{ filter: '*', value: [0.1, 1] }] } },
            { model: { path: 'org/b', override_architecture: 'MistralForCausalLM' }, layer_range: [2, 6] },
          ],
          base_model: { path: 'org/b', override_architecture: 'MistralForCausalLM' },
          parameters: { density: 1e-8, lambda: -2.5e21, normalize: 0 },
          residual_weight: 0.25,
        },
      ],
      merge_method: 'ties',
      parameters: { weight: 0.5, int8_mask: 1, rescale: 0.5 },
      dtype: 'bfloat16',
      tokenizer: {
        source: { path: 'org/a' },
        tokens: {
          '<|im_end|>': { source: { kind: 'model_token', model: { path: 'org/b' }, token: '</s>' }, force: true },
          yes: { source: { kind: 'zero' } },
          '2024-01-01': { source: { kind: 'model', model: { path: 'org/a' } } },
          '<x>': { source: { kind: 'model_token', model: { path: 'org/a' }, token_id: 7 } },
          '<y>': {},
        },
        pad_to_multiple_of: 64,
      },
      chat_template: "{% for m in messages %}{{ m['content'] }}\n{% endfor %}",
    };
    const yaml = configToYaml(config);
    expect(yaml).toContain('density: 1.0e-8'); // PyYAML needs the dot to read a float
    expect(yaml).toContain('"yes":'); // would be a boolean key in YAML 1.1
    expect(roundTrip(config)).toStrictEqual(config);
  });

  it('modules round-trip', () => {
    const config: MergeConfig = {
      modules: {
        text_decoder: { models: [{ model: { path: 'a' }, parameters: { weight: 1 } }], parameters: { normalize: 1 } },
        vision_tower: { slices: [{ sources: [{ model: { path: 'a' }, layer_range: [0, 2], parameters: { weight: 1 } }] }] },
      },
      merge_method: 'linear',
    };
    expect(roundTrip(config)).toStrictEqual(config);
  });

  it('writes gradients and layer ranges in flow style, like mergekit examples', () => {
    const yaml = configToYaml(parseMergeConfig(ORCAMINI_PLATY_44_YML).config);
    expect(yaml).toBe(`slices:
  - sources:
      - model: psmathur/orca_mini_v3_13b
        layer_range: [0, 24]
  - sources:
      - model: garage-bAInd/Platypus2-13B
        layer_range: [20, 40]
merge_method: passthrough
dtype: float16
`);
  });
});
