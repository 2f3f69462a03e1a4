import { IssueList, describe, isMapping } from '../issues';
import { readModelReference, warnUnknownKeys } from '../model-reference';
import { childPath } from '../paths';
import { readDtype, readLaxInteger, readLaxNumber } from '../read-config';
import { closest } from '../suggest';
import type { ModelReference } from '../types';
import type { MoeConfig, MoeExpert, MoeGateMode } from './types';
import { untrustedText as quoted } from '../../storage';

/**
 * The schema of a mergekit-moe config (mergekit's MoEMergeConfig pydantic model) applied to parsed
 * YAML: types and shapes, defaults filled in. Rules that span keys live in validate.ts.
 */

export const MOE_TOP_LEVEL_KEYS = [
  'base_model',
  'experts',
  'gate_mode',
  'dtype',
  'experts_per_token',
  'shared_experts',
  'architecture',
] as const;
const EXPERT_KEYS = ['source_model', 'positive_prompts', 'negative_prompts', 'noise_scale', 'residual_scale'];

/** The gate modes mergekit-moe implements; the first three are the documented ones. */
export const MOE_GATE_MODES: readonly MoeGateMode[] = ['hidden', 'cheap_embed', 'random', 'uniform_random', 'hidden_avg', 'hidden_last'];

const MERGE_KEYS = ['merge_method', 'models', 'slices', 'modules', 'parameters', 'tokenizer_source', 'tokenizer', 'chat_template', 'out_dtype'];

export interface ReadMoeResult {
  /** Unreadable experts are kept as stand-ins, so that counts stay right. */
  config: MoeConfig;
  /** Every expert and shared expert could be read (the prompt rules can run). */
  expertsReadable: boolean;
}

const PLACEHOLDER: ModelReference = { path: '\u0000invalid' };

export function readMoeConfig(root: unknown, issues: IssueList): ReadMoeResult {
  const config: MoeConfig = { base_model: PLACEHOLDER, experts: [], gate_mode: 'hidden', experts_per_token: 2 };
  if (!isMapping(root)) {
    issues.error('', `a mergekit-moe config must be a mapping with base_model and experts; got ${describe(root)}`);
    return { config, expertsReadable: false };
  }
  warnUnknownKeys(root, '', MOE_TOP_LEVEL_KEYS, issues, 'the mergekit-moe config', (key) =>
    MERGE_KEYS.includes(key) ? 'it belongs to mergekit-yaml merge configs, not to mergekit-moe configs' : undefined,
  );

  if (root.base_model === undefined || root.base_model === null) {
    issues.error('base_model', 'base_model is required: the model that donates attention, norms, embeddings and lm_head');
  } else {
    const base = readModelReference(root.base_model, 'base_model', issues);
    if (base) config.base_model = base;
  }

  let expertsReadable = false;
  if (root.experts === null || root.experts === undefined) {
    issues.error('experts', 'experts is required: a list of {source_model, positive_prompts}');
  } else if (!Array.isArray(root.experts)) {
    issues.error('experts', `experts must be a list of {source_model, positive_prompts, …}; got ${describe(root.experts)}`);
  } else {
    const experts = root.experts.map((item, i) => readExpert(item, childPath('experts', i), issues));
    expertsReadable = experts.every((e) => e.ok);
    config.experts = experts.map((e) => e.expert);
  }

  if (root.gate_mode !== undefined && root.gate_mode !== null) {
    if (typeof root.gate_mode === 'string' && (MOE_GATE_MODES as readonly string[]).includes(root.gate_mode)) {
      config.gate_mode = root.gate_mode as MoeGateMode;
    } else {
      const text = typeof root.gate_mode === 'string' ? root.gate_mode : '';
      const suggestion = closest(text, MOE_GATE_MODES);
      issues.error(
        'gate_mode',
        `unknown gate_mode ${typeof root.gate_mode === 'string' ? `'${quoted(root.gate_mode, 40)}'` : describe(root.gate_mode)}${suggestion ? ` (did you mean '${suggestion}'?)` : ''}: use hidden (the default), cheap_embed, random or uniform_random`,
      );
    }
  }

  const dtype = readDtype(root.dtype, 'dtype', issues);
  if (dtype) config.dtype = dtype;

  const perToken = root.experts_per_token;
  if (perToken !== undefined && perToken !== null) {
    const n = typeof perToken === 'boolean' ? Number(perToken) : readLaxInteger(perToken, 'experts_per_token', issues);
    if (n === undefined) issues.error('experts_per_token', `experts_per_token must be a whole number such as 2; got ${describe(perToken)}`);
    else config.experts_per_token = n;
  }

  if (root.shared_experts !== undefined && root.shared_experts !== null) {
    if (!Array.isArray(root.shared_experts)) {
      issues.error('shared_experts', `shared_experts must be a list with at most one {source_model, …}; got ${describe(root.shared_experts)}`);
    } else {
      const shared = root.shared_experts.map((item, i) => readExpert(item, childPath('shared_experts', i), issues));
      if (!shared.every((e) => e.ok)) expertsReadable = false;
      config.shared_experts = shared.map((e) => e.expert);
    }
  }

  if (root.architecture !== undefined && root.architecture !== null) {
    if (typeof root.architecture === 'string') config.architecture = root.architecture;
    else issues.error('architecture', `architecture must be an output architecture name such as mixtral; got ${describe(root.architecture)}`);
  }
  return { config, expertsReadable };
}

function readExpert(item: unknown, path: string, issues: IssueList): { expert: MoeExpert; ok: boolean } {
  if (!isMapping(item)) {
    const hint = typeof item === 'string' ? `; write \`- source_model: ${item}\`` : '';
    issues.error(path, `each expert must be a mapping with source_model (and positive_prompts)${hint}; got ${describe(item)}`);
    return { expert: { source_model: PLACEHOLDER }, ok: false };
  }
  warnUnknownKeys(item, path, EXPERT_KEYS, issues, 'an expert', (key) =>
    key === 'model' ? 'an expert names its model with source_model' : key === 'prompts' ? 'write positive_prompts (and optionally negative_prompts)' : undefined,
  );
  let ok = true;
  let model: ModelReference | undefined;
  const modelPath = childPath(path, 'source_model');
  if (item.source_model === undefined || item.source_model === null) {
    issues.error(modelPath, 'source_model is required: the model whose MLPs become this expert');
    ok = false;
  } else {
    model = readModelReference(item.source_model, modelPath, issues);
    ok &&= model !== undefined;
  }
  const expert: MoeExpert = { source_model: model ?? PLACEHOLDER };
  for (const key of ['positive_prompts', 'negative_prompts'] as const) {
    const prompts = readPrompts(item[key], childPath(path, key), issues);
    if (prompts === null) ok = false;
    else if (prompts !== undefined) expert[key] = prompts;
  }
  for (const key of ['noise_scale', 'residual_scale'] as const) {
    const value = item[key];
    if (value === undefined || value === null) continue;
    const n = readLaxNumber(value, childPath(path, key), issues);
    if (n === undefined) {
      issues.error(childPath(path, key), `${key} must be a number; got ${describe(value)}`);
      ok = false;
    } else expert[key] = n;
  }
  return { expert, ok };
}

/** A list of strings; undefined when absent, null when reported as an error. */
function readPrompts(value: unknown, path: string, issues: IssueList): string[] | undefined | null {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    issues.error(path, `prompts are a list of strings: write \`- "${value.length > 30 ? `${value.slice(0, 27)}...` : value}"\` on its own line`);
    return null;
  }
  if (!Array.isArray(value)) {
    issues.error(path, `prompts must be a list of strings; got ${describe(value)}`);
    return null;
  }
  let ok = true;
  value.forEach((prompt, i) => {
    if (typeof prompt !== 'string') {
      issues.error(childPath(path, i), `each prompt must be a string (quote it); got ${describe(prompt)}`);
      ok = false;
    }
  });
  return ok ? (value as string[]) : null;
}

export function isPlaceholderModel(ref: ModelReference): boolean {
  return ref === PLACEHOLDER;
}
