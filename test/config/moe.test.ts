import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  matchingArchitectures,
  parseMoeConfig,
  sharedExpertProblem,
  validateMoeConfig,
  type MoeConfig,
} from '../../src/config';

const TWO_EXPERTS = `base_model: mistralai/Mistral-7B-v0.1
experts:
  - source_model: org/code
    positive_prompts: ["def f():"]
  - source_model: org/chat
    positive_prompts: ["Hello"]
    negative_prompts: ["def f():"]
    noise_scale: 1e-2
    residual_scale: "0.5"
`;

describe('mergekit-moe configs', () => {
  it('parse with mergekit-moe defaults filled in (gate_mode hidden, experts_per_token 2)', () => {
    const { config, warnings } = parseMoeConfig(TWO_EXPERTS, 'moe.yml');
    expect(config).toEqual({
      base_model: { path: 'mistralai/Mistral-7B-v0.1' },
      gate_mode: 'hidden',
      experts_per_token: 2,
      experts: [
        { source_model: { path: 'org/code' }, positive_prompts: ['def f():'] },
        { source_model: { path: 'org/chat' }, positive_prompts: ['Hello'], negative_prompts: ['def f():'], noise_scale: 0.01, residual_scale: 0.5 },
      ],
    });
    expect(warnings.map((w) => [w.path, w.line])).toEqual([['experts[1].residual_scale', 9]]);
  });

  it('throw a ConfigError listing every error with its path and position', () => {
    const yaml = 'base_model: a\ngate_mode: cheap\nexperts_per_token: 0\nexperts:\n  - source_model: b\n    positive_prompts: [1]\n';
    let caught: unknown;
    try {
      parseMoeConfig(yaml, 'moe.yml');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).issues.map((i) => [i.path, i.line, i.column])).toEqual([
      ['gate_mode', 2, 12],
      ['experts_per_token', 3, 20],
      ['experts[0].positive_prompts[0]', 6, 24],
    ]);
  });

  it('output architectures: prefix match, and the shared-expert rule of each', () => {
    expect(matchingArchitectures('qwen')).toEqual(['Qwen MoE', 'Qwen3 MoE']);
    expect(matchingArchitectures('DEEP')).toEqual(['DeepSeek MoE']);
    expect(matchingArchitectures(undefined)).toHaveLength(4);
    const config: MoeConfig = {
      base_model: { path: 'a' },
      experts: [],
      gate_mode: 'random',
      experts_per_token: 2,
      shared_experts: [{ source_model: { path: 's' } }],
    };
    expect(sharedExpertProblem('Qwen MoE', config)).toBeUndefined(); // random gates need no prompts
    expect(sharedExpertProblem('Qwen MoE', { ...config, gate_mode: 'uniform_random' })).toMatch(/needs positive_prompts/);
    expect(sharedExpertProblem('DeepSeek MoE', config)).toBeUndefined();
    expect(sharedExpertProblem('Mixtral', config)).toMatch(/no shared experts/);
  });

  it('validateMoeConfig checks a config object (the app form) by path', () => {
    const issues = validateMoeConfig({
      base_model: { path: 'a', lora: { path: 'lora' } },
      experts: [{ source_model: { path: 'x' } }, { source_model: { path: 'y' }, positive_prompts: ['p'] }, { source_model: { path: 'z' }, positive_prompts: ['q'] }],
      gate_mode: 'hidden',
      experts_per_token: 2,
      architecture: 'llama',
    });
    expect(issues.map((i) => [i.path, i.severity])).toEqual([
      ['base_model', 'error'],
      ['experts[0]', 'error'],
      ['architecture', 'error'],
      ['experts', 'warning'],
    ]);
  });
});
