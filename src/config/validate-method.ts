import type { MergeMethod, ParamDecl } from '../methods/types';
import type { ConfigIssue } from './errors';
import { IssueList, withoutTarget, type LocatedIssue } from './issues';
import { formatModelReference, sameModel } from './model-reference';
import { childPath } from './paths';
import { isPlaceholderRef } from './read-config';
import { didYouMean } from './suggest';
import type { MergeConfig, ParameterSetting, Parameters } from './types';
import { parameterMaps, sliceViews, type SliceView, type SourceView } from './walk';

/**
 * The merge method's rules applied to a config, driven by its declarations (src/methods): base
 * policy, number of inputs, required global and per-model parameters, parameters it does not know.
 * Parameter precedence is MERGEKIT_SPEC.md §2.3: per-model [source, slice, module, top], global
 * [slice, module, top] — a global parameter set on one model is ignored, as in mergekit.
 */

/**
 * Per-model parameters whose value must stay above 0: magnitude pruning keeps floor(density·numel)
 * elements and mergekit asserts that this is not 0 (MERGEKIT_SPEC.md §1.4). Not expressible in a
 * ParamDecl (its `min: 0` is the range of forms), so listed here.
 */
const POSITIVE_PARAMS: Readonly<Record<string, readonly string[]>> = {
  ties: ['density'],
};

export function validateMethod(config: MergeConfig, method: MergeMethod): ConfigIssue[] {
  return methodIssues(config, method).map(withoutTarget);
}

/** As validateMethod, keeping which issues point at a key rather than its value (for line numbers). */
export function methodIssues(config: MergeConfig, method: MergeMethod): LocatedIssue[] {
  const issues = new IssueList();
  const views = sliceViews(config, sameModel);
  checkBaseModel(views, method, issues);
  for (const view of views) {
    checkInputCount(view, method, issues);
    checkPerModelParams(view, method, issues);
  }
  checkGlobalParams(views, method, issues);
  checkParameterNamesAndValues(config, method, issues);
  return issues.issues;
}

function has(parameters: Parameters | undefined, name: string): boolean {
  return parameters !== undefined && parameters[name] !== undefined;
}

/** True when the setting gives every tensor a value (no filter list without a catch-all entry). */
function coversEveryTensor(setting: ParameterSetting): boolean {
  if (!Array.isArray(setting) || setting.length === 0 || typeof setting[0] === 'number') return true;
  return (setting as { filter?: string | null }[]).some((e) => e.filter === undefined || e.filter === null || e.filter === '*');
}

/** Every number a setting can produce (scalar, gradient points, filtered values). */
function settingNumbers(setting: ParameterSetting): number[] {
  if (typeof setting === 'number') return [setting];
  if (typeof setting === 'string') return [];
  return (setting as (number | { value: ParameterSetting })[]).flatMap((item) =>
    typeof item === 'number' ? [item] : settingNumbers(item.value as ParameterSetting),
  );
}

function isTheBase(view: SliceView, source: SourceView, method: MergeMethod): boolean {
  return method.base !== 'member' && view.base !== undefined && sameModel(view.base, source.model);
}

function checkBaseModel(views: readonly SliceView[], method: MergeMethod, issues: IssueList): void {
  if (method.base !== 'required') return;
  const missing = views.filter((v) => !v.base);
  const need = `merge method '${method.name}' needs a base_model`;
  if (missing.length > 0) {
    if (missing.length === views.length) {
      const where = views.some((v) => !v.modelsSyntax) ? ' (at the top level, or in every slice)' : '';
      issues.error('base_model', `${need}: add base_model: <org/name>${where}, naming ${baseRole(method)}`);
    } else {
      for (const view of missing) {
        issues.error(childPath(view.path, 'base_model'), `${need}, and this slice has none (nor is there a top-level base_model)`);
      }
    }
  }
  for (const view of views) {
    if (view.modelsSyntax || !view.base) continue;
    // A fixed-arity method (slerp) copies a lone source; the others read the base from the sources.
    if (view.sources.length < 2 && method.maxInputs !== undefined) continue;
    if (!view.sources.some((s) => sameModel(s.model, view.base!))) {
      issues.error(
        childPath(view.path, 'sources'),
        `the base model ${formatModelReference(view.base)} is not among this slice's sources, but ${method.name} reads the base's tensors from them: add it as a source (with a layer_range of the same length)`,
      );
    }
  }
}

function baseRole(method: MergeMethod): string {
  return method.maxInputs === 2 ? 'one of the two models (the one at t = 0)' : 'the model the others were fine-tuned from';
}

function checkInputCount(view: SliceView, method: MergeMethod, issues: IssueList): void {
  const count = new Set(view.sources.map((s) => formatModelReference(s.model))).size;
  const where = view.modelsSyntax ? view.path : childPath(view.path, 'sources');
  const perSlice = view.modelsSyntax ? '' : ' per slice';
  const max = method.maxInputs;
  const implicit = view.sources.find((s) => s.implicit);
  if (max !== undefined && count > max) {
    const takes = max === 1 ? 'exactly one model' : `at most ${max} models`;
    if (implicit && count - 1 <= max) {
      issues.error(
        'base_model',
        max === 1
          ? `${method.name} takes exactly one model, and base_model ${formatModelReference(implicit.model)} is not the listed one, so it would be merged as a second: remove base_model`
          : `${method.name} takes ${takes}, and base_model ${formatModelReference(implicit.model)} is not among the listed models, so it would be merged as an extra one: set base_model to one of them`,
      );
    } else {
      issues.error(where, `${method.name} takes ${takes}${perSlice}, but ${view.modelsSyntax ? 'this config lists' : 'this slice has'} ${count}`);
    }
    return;
  }
  if (view.modelsSyntax && method.base === 'required' && max !== undefined && count < max) {
    issues.error(where, `${method.name} merges exactly ${max} models (the base_model and ${max === 2 ? 'one other' : 'the others'}), but this config has ${count}`);
    return;
  }
  const min = method.minInputs;
  if (min !== undefined && count < min) {
    issues.error(where, `${method.name} needs at least ${min} models${perSlice}, but ${view.modelsSyntax ? 'this config lists' : 'this slice has'} ${count}`);
  }
}

function checkPerModelParams(view: SliceView, method: MergeMethod, issues: IssueList): void {
  const required = method.params.filter((d) => d.scope === 'model' && d.required);
  const perModel = new Set(method.params.filter((d) => d.scope === 'model').map((d) => d.name));
  for (const source of view.sources) {
    if (isPlaceholderRef(source.model)) continue;
    if (isTheBase(view, source, method)) {
      for (const name of Object.keys(source.parameters ?? {})) {
        if (!perModel.has(name)) continue;
        issues.warning(
          childPath(childPath(source.path, 'parameters'), name),
          `'${name}' on the base model is ignored by ${method.name}: only the other models' values are used`,
          'key',
        );
      }
      continue;
    }
    for (const decl of required) {
      const settings = [source.parameters, ...view.levels.map((l) => l.parameters)]
        .filter((p) => has(p, decl.name))
        .map((p) => p![decl.name]);
      const model = formatModelReference(source.model);
      if (settings.length === 0) {
        issues.error(source.path, missingPerModelMessage(view, source, method, decl, model));
      } else if (!settings.some(coversEveryTensor)) {
        issues.warning(
          source.path,
          `every '${decl.name}' that applies to ${model} is a filtered list without a catch-all entry, so tensors that match no filter get no ${decl.name} and the merge fails there: add an entry without a filter`,
        );
      }
    }
  }
}

function missingPerModelMessage(view: SliceView, source: SourceView, method: MergeMethod, decl: ParamDecl, model: string): string {
  if (source.implicit) {
    return `${method.name} merges base_model ${model} like any other model, so it needs a ${decl.name} too: list it under models with a ${decl.name}, or set ${decl.name} for all models in the top-level parameters`;
  }
  const levels = view.levels.map((l) => (l.path === 'parameters' ? 'the top-level' : l.path.includes('slices[') ? "the slice's" : "the module's"));
  const elsewhere = `${levels.join(' or ')} parameters`;
  return `${method.name} needs a ${decl.name} for ${model}: add ${decl.name} to this model's parameters, or set one for all models in ${elsewhere}`;
}

function checkGlobalParams(views: readonly SliceView[], method: MergeMethod, issues: IssueList): void {
  for (const decl of method.params.filter((d) => d.scope === 'global' && d.required)) {
    const missing = views.filter((v) => !v.levels.some((l) => has(l.parameters, decl.name)));
    const need = `merge method '${method.name}' needs parameter '${decl.name}' (${decl.description})`;
    if (missing.length > 0 && missing.length === views.length) {
      const where = views.some((v) => !v.modelsSyntax) ? ' at the top level, or in every slice' : '';
      issues.error(childPath('parameters', decl.name), `${need}: add it under parameters${where}`);
      continue;
    }
    for (const view of missing) {
      issues.error(childPath(view.levels[0].path, decl.name), `${need}, and it is set neither here nor in the top-level parameters`);
    }
    for (const view of views) {
      if (missing.includes(view)) continue;
      const settings = view.levels.filter((l) => has(l.parameters, decl.name)).map((l) => l.parameters![decl.name]);
      if (!settings.some(coversEveryTensor)) {
        const level = view.levels.find((l) => has(l.parameters, decl.name))!;
        issues.warning(
          childPath(level.path, decl.name),
          `'${decl.name}' is a filtered list without a catch-all entry, so tensors that match no filter get no ${decl.name} and the merge fails there: add an entry without a filter`,
        );
      }
    }
  }
}

function checkParameterNamesAndValues(config: MergeConfig, method: MergeMethod, issues: IssueList): void {
  const names = method.params.map((d) => d.name);
  const takes = names.length > 0 ? `${method.name} takes: ${names.join(', ')}` : `${method.name} takes no parameters`;
  const positive = POSITIVE_PARAMS[method.name] ?? [];
  // The base model's per-model parameters are never used, so their values cannot fail the merge.
  const baseParameterPaths = new Set(
    sliceViews(config, sameModel).flatMap((view) =>
      view.sources.filter((s) => isTheBase(view, s, method)).map((s) => childPath(s.path, 'parameters')),
    ),
  );
  for (const { parameters, path, level } of parameterMaps(config)) {
    const ofBase = baseParameterPaths.has(path);
    for (const [name, setting] of Object.entries(parameters)) {
      const paramPath = childPath(path, name);
      const decl = method.params.find((d) => d.name === name);
      if (!decl) {
        issues.warning(paramPath, `parameter '${name}' is ignored by ${method.name}${didYouMean(name, names)} (${takes})`, 'key');
        continue;
      }
      if (decl.scope === 'global' && level === 'source') {
        issues.warning(
          paramPath,
          `'${name}' is a global parameter of ${method.name}: set on one model it is ignored (as in mergekit); move it to the slice's or the top-level parameters`,
          'key',
        );
      }
      const values = settingNumbers(setting);
      if (positive.includes(name) && !ofBase) {
        const bad = values.find((v) => v <= 0);
        if (bad !== undefined) {
          issues.error(
            paramPath,
            `${name} ${bad} keeps no element of a tensor: ${method.name}'s magnitude pruning needs ${name} > 0 everywhere (mergekit stops with an assertion); use a small positive ${name} instead`,
          );
          continue;
        }
      }
      if (decl.type !== 'boolean' && (decl.min !== undefined || decl.max !== undefined)) {
        const outside = values.find((v) => (decl.min !== undefined && v < decl.min) || (decl.max !== undefined && v > decl.max));
        if (outside !== undefined) {
          issues.warning(
            paramPath,
            `${name} ${outside} is outside the usual range [${decl.min ?? '-∞'}, ${decl.max ?? '∞'}] (mergekit does not clamp it)`,
          );
        }
      }
    }
  }
}
