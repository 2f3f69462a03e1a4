import { formatModelReference, type MoeConfig } from '../config';
import type { MoePlan } from './types';

/** README.md of a MoE build: what it is made of and how it routes (mergekit-moe writes no card; Alloy does). */
export interface MoeCardInput {
  readonly title: string;
  readonly config: MoeConfig;
  readonly plan: MoePlan;
  readonly seed: number;
  readonly configText?: string;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

const GATE_WORDS: Readonly<Record<string, string>> = {
  hidden: "the base model's hidden states at the last token of each expert's prompts (positive minus negative), per layer",
  hidden_last: "the base model's hidden states at the last token of each expert's prompts (positive minus negative), per layer",
  hidden_avg: "the base model's hidden states averaged over the tokens of each expert's prompts (positive minus negative), per layer",
  cheap_embed: "the token embeddings of each expert's prompts (positive minus negative), the same for every layer",
  random: 'random normal vectors (the router is meant to be trained)',
  uniform_random: "random uniform vectors like nn.Linear's initialisation (the router is meant to be trained)",
};

export function renderMoeCard(input: MoeCardInput): string {
  const { config, plan } = input;
  const refs = [config.base_model, ...config.experts.map((e) => e.source_model), ...(config.shared_experts ?? []).map((e) => e.source_model)].map(formatModelReference);
  const hub = [...new Set(refs)].filter((r) => HUB_ID.test(r));
  const front = ['---'];
  if (hub.length > 0) front.push('base_model:', ...hub.map((r) => `- ${JSON.stringify(r)}`));
  front.push('library_name: transformers', 'tags:', '- moe', '- merge', '- mergekit', '- alloy', '---');
  const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 200);
  const prompts = (list: readonly string[] | undefined): string => (list && list.length > 0 ? list.map((p) => `“${cell(p)}”`).join('<br>') : '—');
  const random = config.gate_mode === 'random' || config.gate_mode === 'uniform_random' || [...config.experts, ...(config.shared_experts ?? [])].some((e) => e.noise_scale !== undefined);
  const lines = [
    front.join('\n'),
    `# ${input.title}`,
    '',
    'A mixture of experts built with Alloy from a [mergekit-moe](https://github.com/arcee-ai/mergekit/blob/main/docs/moe.md) configuration: ' +
      `the attention, norms and embeddings of ${formatModelReference(config.base_model)}, and the MLP of each expert model as one expert.`,
    '',
    '## Architecture',
    '',
    `* ${plan.architecture.name} (${plan.layout} tensor layout), ${plan.layers} layers`,
    `* ${config.experts.length} experts, ${config.experts_per_token} used per token` +
      ((config.shared_experts ?? []).length > 0 ? `, plus ${config.shared_experts!.length} shared expert used for every token` : ''),
    `* weights in ${plan.outDtype ?? 'the dtypes of the input models'}`,
    '',
    '## Experts',
    '',
    '| # | Model | Positive prompts | Negative prompts |',
    '|---|---|---|---|',
    ...config.experts.map((e, i) => `| ${i} | ${cell(formatModelReference(e.source_model))} | ${prompts(e.positive_prompts)} | ${prompts(e.negative_prompts)} |`),
    ...(config.shared_experts ?? []).map((e) => `| shared | ${cell(formatModelReference(e.source_model))} | ${prompts(e.positive_prompts)} | ${prompts(e.negative_prompts)} |`),
    '',
    '## Routing',
    '',
    `The router of each layer was initialised from ${GATE_WORDS[config.gate_mode]} (\`gate_mode: ${config.gate_mode}\`).` +
      (random ? ` Random numbers were drawn with seed ${input.seed} (\`--random-seed ${input.seed}\` reproduces them).` : ''),
    ...(plan.warnings.length > 0 ? ['', ...plan.warnings.map((w) => `* Note: ${w}`)] : []),
  ];
  if (input.configText !== undefined) lines.push('', '## Configuration', '', '```yaml', input.configText.replace(/```/g, '` ` `').trimEnd(), '```');
  return lines.join('\n') + '\n';
}
