import {
  formatModelReference,
  matchingArchitectures,
  MOE_INPUT_MODEL_TYPES,
  sharedExpertProblem,
  type MoeConfig,
  type MoeOutputArchitecture,
} from '../../config';
import type { ModelSummary } from '../../worker/api';

/**
 * The Review step of a mixture of experts (docs/app.md §2): the experts, and
 * the output layout worked out from the config and the models' config.json — which mergekit-moe
 * output architecture takes it, how many layers and experts it has — with every mismatch between
 * an expert and the base as an error at the expert's YAML path.
 */

export interface MoeExpertRow {
  readonly path: string;
  readonly model: string;
  readonly shared: boolean;
  readonly positive: number;
  readonly negative: number;
  readonly summary?: ModelSummary;
}

export interface MoePlan {
  readonly experts: readonly MoeExpertRow[];
  /** The output architecture mergekit-moe would pick (undefined until every model is read, or when none fits). */
  readonly architecture?: MoeOutputArchitecture;
  readonly layers?: number;
  readonly hiddenSize?: number;
  readonly errors: readonly { readonly path: string; readonly message: string }[];
  /** Models not read yet (their facts are missing from the plan). */
  readonly pending: readonly string[];
}

export function moePlan(config: MoeConfig, summaryOf: (key: string) => ModelSummary | undefined): MoePlan {
  const row = (shared: boolean) => (e: MoeConfig['experts'][number], i: number): MoeExpertRow => {
    const model = formatModelReference(e.source_model);
    const summary = summaryOf(model);
    return {
      path: `${shared ? 'shared_experts' : 'experts'}[${i}]`,
      model,
      shared,
      positive: e.positive_prompts?.length ?? 0,
      negative: e.negative_prompts?.length ?? 0,
      ...(summary ? { summary } : {}),
    };
  };
  const experts = [...config.experts.map(row(false)), ...(config.shared_experts ?? []).map(row(true))];
  const baseKey = formatModelReference(config.base_model);
  const base = summaryOf(baseKey);
  const pending = [...new Set([baseKey, ...experts.map((e) => e.model)].filter((k) => !summaryOf(k)))];
  const errors: { path: string; message: string }[] = [];
  if (base) {
    for (const e of experts) {
      const s = e.summary;
      if (!s) continue;
      const where = `${e.path}.source_model`;
      if (s.modelType !== base.modelType) {
        errors.push({ path: where, message: `${e.model} is a ${s.modelType} model but the base ${baseKey} is ${base.modelType}: every expert must share the base's architecture` });
      } else if (s.hiddenSize !== base.hiddenSize) {
        errors.push({ path: where, message: `${e.model} has hidden size ${s.hiddenSize} but the base has ${base.hiddenSize}: experts must be fine-tunes of the same base` });
      } else if (s.numLayers !== base.numLayers) {
        errors.push({ path: where, message: `${e.model} has ${s.numLayers} layers but the base has ${base.numLayers}: experts must be fine-tunes of the same base` });
      }
    }
  }
  let architecture: MoeOutputArchitecture | undefined;
  if (base && pending.length === 0) {
    const types = new Set([base.modelType, ...experts.map((e) => e.summary!.modelType)]);
    const fits = matchingArchitectures(config.architecture).filter(
      (arch) => sharedExpertProblem(arch, config) === undefined && [...types].every((t) => MOE_INPUT_MODEL_TYPES[arch].includes(t)),
    );
    architecture = fits[0];
    if (!architecture && errors.length === 0) {
      errors.push({
        path: config.architecture !== undefined ? 'architecture' : 'base_model',
        message: `no mergekit-moe output architecture takes ${[...types].join(' and ')} models${config.architecture !== undefined ? ` as '${config.architecture}'` : ''}: Mixtral and DeepSeek MoE take llama and mistral, Qwen MoE also qwen2, Qwen3 MoE takes qwen3`,
      });
    }
  }
  return {
    experts,
    ...(architecture ? { architecture } : {}),
    ...(base ? { layers: base.numLayers } : {}),
    ...(base?.hiddenSize !== undefined ? { hiddenSize: base.hiddenSize } : {}),
    errors,
    pending,
  };
}
