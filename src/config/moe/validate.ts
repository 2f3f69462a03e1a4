import { IssueList, type LocatedIssue } from '../issues';
import { formatModelReference } from '../model-reference';
import { childPath } from '../paths';
import type { ModelReference } from '../types';
import { isPlaceholderModel } from './read';
import type { MoeConfig, MoeExpert } from './types';

/**
 * mergekit-moe's own checks (`is_bad_config`, the output architectures' `supports_config`, the
 * shared-expert prompt rule) on a config object, as far as they can be decided without the models'
 * config.json (the input `model_type`s also pick the architecture; that part is left to the merge).
 */

/** mergekit-moe's output architectures, in the order it tries them (Mixtral preferred). */
export const MOE_OUTPUT_ARCHITECTURES = ['Mixtral', 'DeepSeek MoE', 'Qwen MoE', 'Qwen3 MoE'] as const;
export type MoeOutputArchitecture = (typeof MOE_OUTPUT_ARCHITECTURES)[number];

/** The `model_type`s each output architecture takes as inputs (all inputs must share one). */
export const MOE_INPUT_MODEL_TYPES: Readonly<Record<MoeOutputArchitecture, readonly string[]>> = {
  Mixtral: ['llama', 'mistral'],
  'DeepSeek MoE': ['llama', 'mistral'],
  'Qwen MoE': ['llama', 'mistral', 'qwen2'],
  'Qwen3 MoE': ['qwen3'],
};

/** Architectures an `architecture:` value selects: a case-insensitive prefix of the name. */
export function matchingArchitectures(architecture: string | undefined): MoeOutputArchitecture[] {
  if (architecture === undefined) return [...MOE_OUTPUT_ARCHITECTURES];
  return MOE_OUTPUT_ARCHITECTURES.filter((name) => name.toLowerCase().startsWith(architecture.toLowerCase()));
}

/** Why an output architecture cannot take this config's shared experts and gate mode (undefined: it can). */
export function sharedExpertProblem(arch: MoeOutputArchitecture, config: MoeConfig): string | undefined {
  const shared = config.shared_experts ?? [];
  switch (arch) {
    case 'Mixtral':
      return shared.length > 0 ? 'Mixtral has no shared experts' : undefined;
    case 'Qwen3 MoE':
      return shared.length > 0 ? 'Qwen3 MoE has no shared experts' : undefined;
    case 'DeepSeek MoE':
      if (shared.length > 1) return 'DeepSeek MoE takes at most one shared expert';
      if (shared.length === 1 && (hasPrompts(shared[0].positive_prompts) || hasPrompts(shared[0].negative_prompts))) {
        return "DeepSeek MoE's shared expert is not gated, so it must have no prompts";
      }
      return undefined;
    case 'Qwen MoE':
      if (shared.length !== 1) return 'Qwen MoE needs exactly one shared expert';
      if (config.gate_mode !== 'random' && !hasPrompts(shared[0].positive_prompts)) {
        return "Qwen MoE's shared expert is gated, so it needs positive_prompts (unless gate_mode: random)";
      }
      return undefined;
  }
}

function hasPrompts(prompts: readonly string[] | undefined): boolean {
  return prompts !== undefined && prompts.length > 0;
}

export interface MoeCheckOptions {
  /** Checks of the prompts (every expert, identical sets, same model): needs every expert readable. */
  prompts: boolean;
}

export function collectMoeIssues(config: MoeConfig, options: MoeCheckOptions = { prompts: true }): LocatedIssue[] {
  const issues = new IssueList();
  const experts = config.experts;
  const refs: { ref: ModelReference; path: string }[] = [
    { ref: config.base_model, path: 'base_model' },
    ...experts.map((e, i) => ({ ref: e.source_model, path: childPath(childPath('experts', i), 'source_model') })),
    ...(config.shared_experts ?? []).map((e, i) => ({ ref: e.source_model, path: childPath(childPath('shared_experts', i), 'source_model') })),
  ];
  for (const { ref, path } of refs) {
    if (!isPlaceholderModel(ref) && ref.lora) {
      issues.error(path, 'mergekit-moe does not apply LoRA adapters (model+lora): merge the adapter into the model first and reference the result');
    }
  }

  const perToken = config.experts_per_token;
  if (perToken < 1) issues.error('experts_per_token', `experts_per_token must be at least 1, not ${perToken}`);
  else if (experts.length < perToken) {
    issues.error(
      'experts',
      `${experts.length === 1 ? 'there is 1 expert' : `there are ${experts.length} experts`}, fewer than experts_per_token (${perToken}): add experts or lower experts_per_token`,
    );
  }

  if (options.prompts && config.gate_mode !== 'random') checkPrompts(config, issues);
  if (config.gate_mode === 'random') {
    experts.forEach((e, i) => {
      if (hasPrompts(e.positive_prompts) || hasPrompts(e.negative_prompts)) {
        const key = hasPrompts(e.positive_prompts) ? 'positive_prompts' : 'negative_prompts';
        issues.warning(childPath(childPath('experts', i), key), 'gate_mode: random ignores the prompts (the router is drawn at random)', 'key');
      }
    });
  }

  checkArchitecture(config, issues);

  const shared = config.shared_experts ?? [];
  const powerOfTwo = experts.length > 0 && (experts.length & (experts.length - 1)) === 0;
  if (shared.length === 0 && experts.length > 0 && !powerOfTwo) {
    issues.warning(
      'experts',
      `${experts.length} experts is not a power of two: the model works in transformers, but llama.cpp cannot load it (mergekit warns too)`,
    );
  }
  return issues.issues;
}

function checkPrompts(config: MoeConfig, issues: IssueList): void {
  const experts = config.experts;
  let allHavePrompts = true;
  experts.forEach((expert, i) => {
    if (hasPrompts(expert.positive_prompts)) return;
    allHavePrompts = false;
    const path = childPath('experts', i);
    issues.error(
      expert.positive_prompts ? childPath(path, 'positive_prompts') : path,
      `expert ${i} (${formatModelReference(expert.source_model)}) has no positive_prompts: with gate_mode ${config.gate_mode}, every expert needs example prompts that should be routed to it (or use gate_mode: random)`,
    );
  });
  if (!allHavePrompts || experts.length === 0) return;
  const key = (e: MoeExpert) => JSON.stringify([e.positive_prompts ?? [], e.negative_prompts ?? []]);
  if (experts.every((e) => key(e) === key(experts[0]))) {
    issues.error(
      'experts',
      experts.length === 1
        ? 'with a single expert, mergekit-moe refuses the config (its "prompts are identical for all experts" check always fires): add experts with their own prompts, or use gate_mode: random'
        : 'the positive and negative prompts are identical for all experts, so the router cannot tell them apart: give each expert prompts reflecting what should be routed to it',
    );
    return;
  }
  const first = formatModelReference(experts[0].source_model);
  if (experts.length > 1 && experts.every((e) => formatModelReference(e.source_model) === first)) {
    issues.error(
      'experts',
      `every expert is the same model (${first}): the result uses more resources but gives the same output. mergekit-moe refuses this unless run with --i-understand-this-is-not-useful-without-training (for a model you will train, gate_mode: random also allows it)`,
    );
  }
}

function checkArchitecture(config: MoeConfig, issues: IssueList): void {
  const candidates = matchingArchitectures(config.architecture);
  if (candidates.length === 0) {
    issues.error(
      'architecture',
      `no mergekit-moe output architecture matches '${config.architecture}': use a prefix of ${MOE_OUTPUT_ARCHITECTURES.map((a) => a.toLowerCase()).join(', ')} (or leave architecture out)`,
    );
    return;
  }
  const shared = config.shared_experts ?? [];
  if (shared.length > 1) {
    issues.error(childPath('shared_experts', 1), `mergekit-moe supports at most one shared expert; this config has ${shared.length}`);
    return;
  }
  const problems = candidates.map((arch) => sharedExpertProblem(arch, config));
  if (problems.some((p) => p === undefined)) return;
  const path =
    shared.length === 0
      ? 'architecture'
      : candidates.length === 1 && candidates[0] === 'DeepSeek MoE'
        ? childPath(childPath('shared_experts', 0), hasPrompts(shared[0].positive_prompts) ? 'positive_prompts' : 'negative_prompts')
        : 'shared_experts';
  const which = config.architecture !== undefined ? `architecture '${config.architecture}' (${candidates.join(', ')})` : 'any output architecture';
  issues.error(path, `this config does not fit ${which}: ${problems.join('; ')}`);
}
