import { findMethod, METHODS, MERGEKIT_METHOD_NAMES, type MergeMethod } from '../methods/index';
import type { ConfigIssue } from './errors';
import { IssueList, withoutTarget, type LocatedIssue } from './issues';
import { layerRangeProblems } from './layer-ranges';
import { formatModelReference, LORA_UNSUPPORTED_MESSAGE, sameModel } from './model-reference';
import { childPath } from './paths';
import { isPlaceholderRef } from './read-config';
import { closest } from './suggest';
import type { MergeConfig } from './types';
import { methodIssues } from './validate-method';
import { modelReferences, sliceViews } from './walk';
import { untrustedText as quoted } from '../storage';

/** Built-in chat templates mergekit ships (docs/tokenizers.md §5). */
export const BUILTIN_CHAT_TEMPLATES = ['alpaca', 'chatml', 'llama3', 'mistral', 'exaone'] as const;

/**
 * Checks a typed config (from YAML or the app's form): the rules that span several keys, then the
 * merge method's own (validate-method.ts), then whether Alloy can run it. Issues carry paths but no
 * line numbers.
 */
export function validateConfig(config: MergeConfig): ConfigIssue[] {
  return [
    ...collectConfigIssues(config, { methodName: true, methodRules: true }),
    ...unsupportedByAlloy(config),
  ].map(withoutTarget);
}

export interface CollectOptions {
  /** Check that merge_method names a method mergekit registers. */
  methodName: boolean;
  /** Apply the method's rules (needs a readable models/slices/modules layout). */
  methodRules: boolean;
}

/**
 * What mergekit itself would reject (or fail on during the merge): every valid mergekit config
 * passes, whether or not Alloy can run it (see unsupportedByAlloy).
 */
export function collectConfigIssues(config: MergeConfig, options: CollectOptions): LocatedIssue[] {
  const issues = new IssueList();
  checkLayout(config, issues);
  const method = options.methodName ? checkMethodName(config.merge_method, issues) : undefined;
  checkLayerRanges(config, issues);
  checkDuplicates(config, issues);
  if (config.tokenizer_source !== undefined && config.tokenizer !== undefined) {
    issues.error(
      'tokenizer',
      'tokenizer_source and tokenizer cannot both be given: tokenizer_source: X is the older spelling of tokenizer: {source: X}; keep one',
    );
  }
  if (config.chat_template !== undefined) checkChatTemplate(config.chat_template, issues);
  const lora = modelReferences(config).find(({ model }) => model.lora);
  if (lora) {
    issues.warning(
      lora.path,
      'mergekit merges LoRA adapters (model+lora) only when run with --lora-merge-cache DIR, where it saves the merged model first (mergekit issue #442)',
    );
  }
  config.slices?.forEach((slice, i) => {
    if (slice.residual_weight !== undefined) {
      issues.warning(childPath(childPath('slices', i), 'residual_weight'), 'residual_weight has no effect (mergekit reads it but never uses it)', 'key');
    }
  });
  if (method && options.methodRules) issues.add(methodIssues(config, method));
  return issues.issues;
}

/**
 * What a valid mergekit config may use but Alloy cannot run yet: merge methods not implemented,
 * LoRA adapters, multi-module merges. Reported when merging (`parseMergeConfig`), not by
 * `validateConfigText`.
 */
export function unsupportedByAlloy(config: MergeConfig): LocatedIssue[] {
  const issues = new IssueList();
  if (isUnimplementedMergekitMethod(config.merge_method)) {
    issues.error(
      'merge_method',
      `merge method '${config.merge_method}' is not supported by Alloy yet (the config is valid for mergekit; Alloy can merge with: ${METHODS.map((m) => m.name).join(', ')})`,
    );
  }
  for (const { model, path } of modelReferences(config)) {
    if (model.lora) issues.error(path, LORA_UNSUPPORTED_MESSAGE);
  }
  if (config.modules !== undefined) {
    issues.warning('modules', 'multi-module (modules:) merges are not supported by Alloy yet: this config can be read and checked, but not run');
  }
  return issues.issues;
}

function isUnimplementedMergekitMethod(name: string): boolean {
  return MERGEKIT_METHOD_NAMES.includes(name) && !findMethod(name);
}

function checkLayout(config: MergeConfig, issues: IssueList): void {
  const present = (['models', 'slices', 'modules'] as const).filter((k) => config[k] !== undefined);
  if (present.length === 0) {
    issues.error('', 'the config needs one of models (merge whole models), slices (merge layer ranges) or modules');
  }
  for (const key of present.slice(1)) {
    issues.error(key, `${present[0]} and ${key} cannot both be given: use exactly one of models, slices or modules`, 'key');
  }
  const empty = (list: readonly unknown[] | undefined, path: string) => {
    if (list !== undefined && list.length === 0) issues.error(path, 'this list is empty: it needs at least one entry');
  };
  empty(config.models, 'models');
  empty(config.slices, 'slices');
  config.slices?.forEach((s, i) => empty(s.sources, childPath(childPath('slices', i), 'sources')));
  for (const [name, module] of Object.entries(config.modules ?? {})) {
    const path = childPath('modules', name);
    const count = (module.models ? 1 : 0) + (module.slices ? 1 : 0);
    if (count !== 1) issues.error(path, `module '${quoted(name, 80)}' needs exactly one of models or slices`);
  }
}

/**
 * The declaration of merge method `name`, or undefined: with an error for a name mergekit does not
 * register, silently for one it registers that Alloy lacks (there is no declaration to check the
 * config against; `unsupportedByAlloy` reports it).
 */
function checkMethodName(name: string, issues: IssueList): MergeMethod | undefined {
  if (name === '') {
    issues.error('merge_method', 'merge_method is required (for example linear, slerp, ties or passthrough)');
    return undefined;
  }
  const method = findMethod(name);
  if (method || isUnimplementedMergekitMethod(name)) return method;
  const suggestion = closest(name, MERGEKIT_METHOD_NAMES);
  issues.error(
    'merge_method',
    `unknown merge method '${quoted(name, 80)}'${suggestion ? ` (did you mean '${suggestion}'?)` : ''}; mergekit's methods are ${MERGEKIT_METHOD_NAMES.join(', ')}`,
  );
  return undefined;
}

/** No model has more layers; a range past it is a typo or an attack, not a model. */
const MAX_LAYERS = 100_000;

function checkLayerRanges(config: MergeConfig, issues: IssueList): void {
  for (const view of sliceViews(config, sameModel)) {
    if (view.modelsSyntax) continue;
    const ranges = view.sources.map((s) => ({ start: s.layerRange?.[0] ?? NaN, end: s.layerRange?.[1] ?? NaN }));
    const pathOf = (source: number) => childPath(view.sources[source].path, 'layer_range');
    // Checked against each model's real layer count when planning; no model comes near this.
    ranges.forEach(({ start, end }, source) => {
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end <= MAX_LAYERS) return;
      issues.error(pathOf(source), `layer_range [${start}, ${end}] goes past layer ${MAX_LAYERS}, more than any model has: use the model's layer count (num_hidden_layers in its config.json) as the end`);
      ranges[source] = { start: NaN, end: NaN };
    });
    const modelOf = (source: number) => {
      const s = view.sources[source];
      return isPlaceholderRef(s.model) ? s.path : formatModelReference(s.model);
    };
    // Invalid ranges first, then unequal lengths: the order the YAML panel lists them in.
    const problems = layerRangeProblems(ranges);
    for (const p of problems) {
      if (p.kind !== 'invalid') continue;
      const { start, end } = ranges[p.source];
      issues.error(pathOf(p.source), `layer_range [${start}, ${end}] is not a valid range [start, end): it needs 0 ≤ start ≤ end (end is exclusive)`);
    }
    for (const p of problems) {
      if (p.kind !== 'length') continue;
      issues.error(
        pathOf(p.source),
        `All inputs to a slice must contain the same number of layers: this source has ${p.count}, but the first (${modelOf(p.first)}) has ${p.firstCount}`,
      );
    }
  }
}

function checkDuplicates(config: MergeConfig, issues: IssueList): void {
  for (const view of sliceViews(config, sameModel)) {
    const seen = new Set<string>();
    for (const source of view.sources) {
      if (isPlaceholderRef(source.model)) continue;
      const key = formatModelReference(source.model);
      if (seen.has(key)) {
        issues.warning(
          source.path,
          `${key} is listed more than once ${view.modelsSyntax ? 'in models' : 'in this slice'}: a model takes part in a merge once (the parameters of its last entry are used)`,
        );
      }
      seen.add(key);
    }
  }
}

function checkChatTemplate(template: string, issues: IssueList): void {
  if (template === '') {
    issues.warning('chat_template', 'an empty chat_template has no effect (mergekit skips it); remove it or name a template');
    return;
  }
  if (template === 'auto' || (BUILTIN_CHAT_TEMPLATES as readonly string[]).includes(template)) return;
  if (template.length >= 20 && template.includes('{')) return;
  const suggestion = closest(template, [...BUILTIN_CHAT_TEMPLATES, 'auto']);
  issues.error(
    'chat_template',
    `Invalid chat template '${quoted(template, 40)}'${suggestion ? ` (did you mean '${suggestion}'?)` : ''}: use auto, a built-in name (${BUILTIN_CHAT_TEMPLATES.join(', ')}) or a Jinja template (at least 20 characters, containing '{')`,
  );
}
