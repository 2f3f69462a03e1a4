import { Document } from 'yaml';
import { checkMoeDocument, formatModelReference, parseModelReference, type ConfigIssue, type MergeConfig, type MoeConfig, type MoeExpert } from '../../config';
import type { YamlDocument } from '../../config';

/**
 * The mixture-of-experts side of the app's YAML ↔ form sync (docs/app.md §2):
 * a mergekit-moe config is read with src/config/moe's own rules (the same messages as
 * `alloy validate`), edited as a MoeConfig and written back as mergekit-moe YAML.
 */

export interface MoeTextCheck {
  /** The config as far as it could be read (defaults filled in; an unreadable model is `{ path: '' }`). */
  readonly config: MoeConfig;
  /** No error: mergekit-moe would accept it. */
  readonly valid: boolean;
}

/** Reads a mergekit-moe document: the config the editor shows and every issue, with YAML paths and lines. */
export function checkMoeText(doc: YamlDocument): { moe: MoeTextCheck; issues: ConfigIssue[] } {
  const { config, issues } = checkMoeDocument(doc);
  // The reader's stand-in for an unreadable model is a shared object; the editor shows it as empty.
  const model = (ref: MoeExpert['source_model']) => (ref.path.startsWith('\u0000') ? { path: '' } : ref);
  const expert = (e: MoeExpert): MoeExpert => ({ ...e, source_model: model(e.source_model) });
  const editable: MoeConfig = {
    ...config,
    base_model: model(config.base_model),
    experts: config.experts.map(expert),
    ...(config.shared_experts ? { shared_experts: config.shared_experts.map(expert) } : {}),
  };
  return { moe: { config: structuredClone(editable), valid: !issues.some((i) => i.severity === 'error') }, issues };
}

/** A MoE config as mergekit-moe YAML, keys in the order its docs list them. */
export function moeConfigText(config: MoeConfig): string {
  const out: Record<string, unknown> = {};
  if (config.base_model.path !== '') out.base_model = formatModelReference(config.base_model);
  if (config.architecture !== undefined) out.architecture = config.architecture;
  out.gate_mode = config.gate_mode;
  if (config.dtype !== undefined) out.dtype = config.dtype;
  out.experts_per_token = config.experts_per_token;
  out.experts = config.experts.map(expertYaml);
  if (config.shared_experts !== undefined && config.shared_experts.length > 0) out.shared_experts = config.shared_experts.map(expertYaml);
  return new Document(out, { version: '1.1' }).toString({ lineWidth: 0 });
}

function expertYaml(expert: MoeExpert): Record<string, unknown> {
  const out: Record<string, unknown> = { source_model: formatModelReference(expert.source_model) };
  if (expert.positive_prompts !== undefined) out.positive_prompts = [...expert.positive_prompts];
  if (expert.negative_prompts !== undefined && expert.negative_prompts.length > 0) out.negative_prompts = [...expert.negative_prompts];
  if (expert.noise_scale !== undefined) out.noise_scale = expert.noise_scale;
  if (expert.residual_scale !== undefined) out.residual_scale = expert.residual_scale;
  return out;
}

/** Applies an editor change to the config and returns the new YAML. */
export function editMoeText(moe: MoeTextCheck, change: (config: MoeConfig) => void): string {
  const config = structuredClone(moe.config);
  change(config);
  return moeConfigText(config);
}

/** The models a MoE config names (base, experts, shared experts), each once, in that order. */
export function moeModels(config: MoeConfig): string[] {
  const refs = [config.base_model, ...config.experts.map((e) => e.source_model), ...(config.shared_experts ?? []).map((e) => e.source_model)];
  return [...new Set(refs.filter((r) => r.path !== '').map(formatModelReference))];
}

/** A model reference typed in the editor ('' clears it). */
export function modelFromText(text: string): MoeExpert['source_model'] {
  const trimmed = text.trim();
  if (trimmed === '') return { path: '' };
  try {
    return parseModelReference(trimmed);
  } catch {
    return { path: trimmed };
  }
}

/**
 * "Mixture of experts" chosen in the method step: the merge's models become experts (the base, or
 * else the first model, donates everything but the MLPs). Prompts are left for the user to write.
 */
export function moeFromMerge(config: MergeConfig | null, models: readonly string[], base: string | undefined): MoeConfig {
  const baseKey = base ?? (config?.base_model ? formatModelReference(config.base_model) : models[0]);
  const experts = models.filter((m) => m !== baseKey);
  return {
    base_model: modelFromText(baseKey ?? ''),
    gate_mode: 'hidden',
    experts_per_token: 2,
    experts: (experts.length > 0 ? experts : baseKey ? [baseKey] : []).map((m) => ({ source_model: modelFromText(m), positive_prompts: [] })),
    ...(config?.dtype ? { dtype: config.dtype } : {}),
  };
}

/** Back to a merge: every model of the MoE config in a linear merge (the user then picks a method). */
export function mergeFromMoe(config: MoeConfig): MergeConfig {
  const models = moeModels(config);
  return {
    merge_method: 'linear',
    models: models.map((m) => ({ model: modelFromText(m), parameters: { weight: 1 } })),
    ...(config.dtype ? { dtype: config.dtype } : {}),
  };
}

/** Prompts ↔ the editor's text area: one prompt per line, blank lines dropped. */
export function promptsFromText(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

export function promptsToText(prompts: readonly string[] | undefined): string {
  return (prompts ?? []).join('\n');
}
