import type { MergeMethod, ParamDecl } from '../methods/index';
import type { ConfigIssue } from './errors';
import { IssueList, withoutTarget, type LocatedIssue } from './issues';
import { formatModelReference, sameModel } from './model-reference';
import { childPath } from './paths';
import { isPlaceholderRef } from './read-config';
import { evaluateGradient, layerT, PRE_POST_LAYER_T } from './resolve';
import { didYouMean } from './suggest';
import type { MergeConfig, ParameterSetting, Parameters } from './types';
import { parameterMaps, sliceViews, type ParameterLevel, type SliceView, type SourceView } from './walk';
import { untrustedText as quoted } from '../storage';

/**
 * The merge method's rules applied to a config, all read from its declaration in src/methods:
 * base policy, number of models per slice (`sliceInputs`), required global and per-model
 * parameters, parameter types (strict or lax booleans, integers), parameters it does not know, and
 * the value checks mergekit makes at merge time (`densityCheck`: TIES density > 0, DELLA's
 * density ± epsilon window).
 * Parameter precedence is docs/config.md §3: per-model [source, slice, module, top], global
 * [slice, module, top] — a global parameter set on one model is ignored, as in mergekit.
 */

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
  if (method.densityCheck === 'dellaWindow') checkDellaWindow(views, method, issues);
  checkNegativeWeights(views, method, issues);
  checkZeroWeightSum(views, method, issues);
  return issues.issues;
}

function has(parameters: Parameters | undefined, name: string): boolean {
  return parameters !== undefined && parameters[name] !== undefined;
}

/** True when the setting gives every tensor a value (no filter list without a catch-all entry). */
function coversEveryTensor(setting: ParameterSetting): boolean {
  if (!Array.isArray(setting) || setting.length === 0 || typeof setting[0] === 'number') return true;
  return (setting as { filter?: string | null }[]).some((e) => isCatchAll(e.filter));
}

function isCatchAll(filter: string | null | undefined): boolean {
  return filter === undefined || filter === null || filter === '*';
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

function distinctModels(view: SliceView): number {
  return new Set(view.sources.map((s) => formatModelReference(s.model))).size;
}

function checkBaseModel(views: readonly SliceView[], method: MergeMethod, issues: IssueList): void {
  const inputs = method.sliceInputs;
  if (method.base === 'required') {
    const missing = views.filter((v) => !v.base);
    const need = `merge method '${method.name}' needs a base_model`;
    if (missing.length > 0 && missing.length === views.length) {
      const where = views.some((v) => !v.modelsSyntax) ? ' (at the top level, or in every slice)' : '';
      issues.error('base_model', `${need}: add base_model: <org/name>${where}, naming ${baseRole(method)}`);
    } else {
      for (const view of missing) {
        issues.error(childPath(view.path, 'base_model'), `${need}, and this slice has none (nor is there a top-level base_model)`);
      }
    }
  }
  if (!inputs.baseInSources) return;
  for (const view of views) {
    if (view.modelsSyntax || !view.base) continue;
    // A lone source that the method copies needs no base.
    if (distinctModels(view) < 2 && inputs.loneSource === 'copied') continue;
    if (!view.sources.some((s) => sameModel(s.model, view.base!))) {
      issues.error(
        childPath(view.path, 'sources'),
        `the base model ${formatModelReference(view.base)} is not among this slice's sources, but ${method.name} reads the base's tensors from them: add it as a source (with a layer_range of the same length)`,
      );
    }
  }
}

function baseRole(method: MergeMethod): string {
  return method.sliceInputs.models?.max === 2 ? 'one of the two models (the one at t = 0)' : 'the model the others were fine-tuned from';
}

function checkInputCount(view: SliceView, method: MergeMethod, issues: IssueList): void {
  const { models: range, others: otherRange, loneSource } = method.sliceInputs;
  const count = distinctModels(view);
  if (!view.modelsSyntax && count === 1 && loneSource !== 'counted') return;
  const where = view.modelsSyntax ? view.path : childPath(view.path, 'sources');
  const perSlice = view.modelsSyntax ? '' : ' per slice';
  const has = view.modelsSyntax ? 'this config lists' : 'this slice has';
  const implicit = view.sources.find((s) => s.implicit);

  if (range?.max !== undefined && count > range.max) {
    const max = range.max;
    const takes = max === 1 ? 'exactly one model' : `at most ${max} models`;
    if (implicit && count - 1 <= max) {
      issues.error(
        'base_model',
        max === 1
          ? `${method.name} takes exactly one model, and base_model ${formatModelReference(implicit.model)} is not the listed one, so it would be merged as a second: remove base_model`
          : `${method.name} takes ${takes}, and base_model ${formatModelReference(implicit.model)} is not among the listed models, so it would be merged as an extra one: set base_model to one of them`,
      );
    } else {
      issues.error(where, `${method.name} takes ${takes}${perSlice}, but ${has} ${count}`);
    }
    return;
  }
  if (range?.min !== undefined && count < range.min) {
    if (range.max === range.min && method.base === 'required') {
      issues.error(
        where,
        `${method.name} merges exactly ${range.max} models (the base_model and ${range.max === 2 ? 'one other' : 'the others'}), but ${has} ${count}`,
      );
    } else {
      issues.error(where, `${method.name} needs at least ${range.min} models${perSlice}, but ${has} ${count}`);
    }
    return;
  }
  if (!otherRange) return;
  const baseListed = view.base !== undefined && view.sources.some((s) => sameModel(s.model, view.base!));
  // A missing base, or one missing from the slice's sources, is reported by checkBaseModel.
  if (method.base === 'required' && (!view.base || !baseListed)) return;
  const others = count - (baseListed ? 1 : 0);
  const tooFew = otherRange.min !== undefined && others < otherRange.min;
  const tooMany = otherRange.max !== undefined && others > otherRange.max;
  if (!tooFew && !tooMany) return;
  if (method.base === 'optional') {
    // nuslerp: two models, and a base (optional) must be a third one.
    const n = otherRange.min === otherRange.max ? `exactly ${otherRange.min}` : `at least ${otherRange.min}`;
    const baseNote =
      view.base && baseListed && tooFew && count === otherRange.min
        ? `: base_model ${formatModelReference(view.base)} is one of them, but it must be a separate model (or leave base_model out)`
        : `, but ${has} ${others}${baseListed ? ' besides the base_model' : ''}`;
    issues.error(where, `${method.name} merges ${n} models (plus, optionally, a base_model as a further model)${baseNote}`);
    return;
  }
  const n = otherRange.min === otherRange.max ? `exactly ${otherRange.min}` : `at least ${otherRange.min}`;
  const total = otherRange.min !== undefined && otherRange.min !== otherRange.max ? ` (${otherRange.min + 1} models in all)` : '';
  issues.error(
    where,
    `${method.name} merges the base_model with ${n} other model${otherRange.min === 1 && otherRange.max === 1 ? '' : 's'}${total}, but ${has} ${others} besides the base_model`,
  );
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
          `'${quoted(name, 80)}' on the base model is ignored by ${method.name}: only the other models' values are used`,
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
        issues.error(source.path, missingPerModelMessage(view, source, method.name, decl, model));
      } else if (!settings.some(coversEveryTensor)) {
        issues.warning(
          source.path,
          `every '${decl.name}' that applies to ${model} is a filtered list without a catch-all entry, so tensors that match no filter get no ${decl.name} and the merge fails there: add an entry without a filter`,
        );
      }
    }
  }
}

function missingPerModelMessage(view: SliceView, source: SourceView, method: string, decl: ParamDecl, model: string): string {
  if (source.implicit) {
    return `${method} merges base_model ${model} like any other model, so it needs a ${decl.name} too: list it under models with a ${decl.name}, or set ${decl.name} for all models in the top-level parameters`;
  }
  const levels = view.levels.map((l) => (l.path === 'parameters' ? 'the top-level' : l.path.includes('slices[') ? "the slice's" : "the module's"));
  const elsewhere = `${levels.join(' or ')} parameters`;
  return `${method} needs a ${decl.name} for ${model}: add ${decl.name} to this model's parameters, or set one for all models in ${elsewhere}`;
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
  const positive = method.densityCheck === 'positive' ? ['density'] : [];
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
        issues.warning(paramPath, `parameter '${quoted(name, 80)}' is ignored by ${method.name}${didYouMean(name, names)} (${takes})`, 'key');
        continue;
      }
      if (decl.scope === 'global' && level === 'source') {
        issues.warning(
          paramPath,
          `'${quoted(name, 80)}' is a global parameter of ${method.name}: set on one model it is ignored (as in mergekit); move it to the slice's or the top-level parameters`,
          'key',
        );
        continue;
      }
      if (ofBase && decl.scope === 'model') continue;
      const values = settingNumbers(setting);
      if (decl.type === 'boolean') {
        const bad = values.find((v) => v !== 0 && v !== 1);
        if (bad !== undefined) {
          if (decl.laxBoolean) {
            issues.warning(paramPath, `${name} is an on/off flag: ${bad} counts as true (write true or false)`);
          } else {
            issues.error(paramPath, `${name} is an on/off flag: write true or false (or 1/0), not ${bad} (mergekit rejects it)`);
          }
        }
        continue;
      }
      if (decl.type === 'integer') {
        const bad = values.find((v) => !Number.isInteger(v));
        if (bad !== undefined) {
          issues.error(paramPath, `${name} must be a whole number, not ${bad}`);
          continue;
        }
      }
      if (positive.includes(name)) {
        const bad = values.find((v) => v <= 0);
        if (bad !== undefined) {
          issues.error(
            paramPath,
            `${name} ${bad} keeps no element of a tensor: ${method.name}'s magnitude pruning needs ${name} > 0 everywhere (mergekit stops with an assertion); use a small positive ${name} instead`,
          );
          continue;
        }
      }
      if (decl.min !== undefined || decl.max !== undefined) {
        const outside = values.find((v) => (decl.min !== undefined && v < decl.min) || (decl.max !== undefined && v > decl.max));
        if (outside !== undefined) {
          issues.warning(
            paramPath,
            `${name} ${outside} is outside the usual range [${decl.min ?? '-∞'}, ${decl.max ?? '∞'}] (mergekit does not clamp it)`,
          );
        }
      }
      if (name === 'gamma' && values.some((v) => v <= 0)) {
        issues.warning(
          paramPath,
          `gamma ≤ 0 removes no outliers, and mergekit's breadcrumbs then zeroes the whole change of the tensor (a known mergekit bug): use a small positive gamma such as 0.01`,
        );
      }
    }
  }
}

// ----- DELLA: density ± epsilon must stay inside (0, 1) -------------------------------------------

/** One way a setting can evaluate: a value or gradient, for the tensors its filter selects. */
interface Piece {
  readonly filter: string | null;
  /** Filters that match first (earlier entries, higher precedence levels): tensors they match never get here. */
  readonly excludes: readonly string[];
  readonly values: readonly number[];
  readonly path: string;
  readonly explicit: boolean;
}

function piecesOf(setting: ParameterSetting, path: string, excludes: readonly string[]): Piece[] {
  if (typeof setting === 'number') return [{ filter: null, excludes, values: [setting], path, explicit: true }];
  if (typeof setting === 'string' || setting.length === 0) return [];
  if (typeof setting[0] === 'number') return [{ filter: null, excludes, values: setting as number[], path, explicit: true }];
  const pieces: Piece[] = [];
  const earlier = [...excludes];
  for (const entry of setting as { filter?: string | null; value: number | string | number[] }[]) {
    const filter = isCatchAll(entry.filter) ? null : (entry.filter as string);
    const values = typeof entry.value === 'number' ? [entry.value] : Array.isArray(entry.value) ? entry.value : undefined;
    if (values) pieces.push({ filter, excludes: [...earlier], values, path, explicit: true });
    if (filter === null) break; // later entries are never reached
    earlier.push(filter);
  }
  return pieces;
}

/** The pieces a per-model parameter can take for one source: its levels in precedence order, then the default. */
function effectivePieces(source: SourceView, levels: readonly ParameterLevel[], decl: ParamDecl): Piece[] {
  const all = [{ parameters: source.parameters, path: childPath(source.path, 'parameters') }, ...levels];
  const pieces: Piece[] = [];
  const earlier: string[] = [];
  for (const level of all) {
    if (!has(level.parameters, decl.name)) continue;
    const setting = level.parameters![decl.name];
    const found = piecesOf(setting, childPath(level.path, decl.name), earlier);
    pieces.push(...found);
    if (coversEveryTensor(setting)) return pieces;
    earlier.push(...found.map((p) => p.filter).filter((f): f is string => f !== null));
  }
  if (decl.default !== undefined) pieces.push({ filter: null, excludes: earlier, values: [decl.default], path: '', explicit: false });
  return pieces;
}

/**
 * Whether one tensor name can get both pieces (approximation, since names are not known here: two
 * different filters meet only when one contains the other; a filter containing an excluded one never
 * reaches that piece).
 */
function compatible(a: Piece, b: Piece): boolean {
  if (a.filter !== null && b.excludes.some((x) => a.filter!.includes(x))) return false;
  if (b.filter !== null && a.excludes.some((x) => b.filter!.includes(x))) return false;
  if (a.filter !== null && b.filter !== null) return a.filter.includes(b.filter) || b.filter.includes(a.filter);
  return true;
}

/** The layer positions t at which a slice evaluates gradients (docs/config.md §4). */
function sliceTs(view: SliceView): number[] {
  const range = view.sources[0]?.layerRange;
  const layers = range && Number.isInteger(range[0]) && Number.isInteger(range[1]) ? range[1] - range[0] : undefined;
  if (layers !== undefined && layers >= 1 && layers <= 4096) {
    // Before and after the layers (embeddings, head), then each layer's own position.
    const ts = new Set([PRE_POST_LAYER_T, ...Array.from({ length: layers }, (_, i) => layerT(i, layers))]);
    return [...ts];
  }
  // models: syntax (the layer count is not known without the models): a fine grid of t.
  return Array.from({ length: 257 }, (_, i) => i / 256);
}

const fmt = (x: number): string => String(Number(x.toPrecision(6)));

function checkDellaWindow(views: readonly SliceView[], method: MergeMethod, issues: IssueList): void {
  const densityDecl = method.params.find((d) => d.name === 'density');
  const epsilonDecl = method.params.find((d) => d.name === 'epsilon');
  if (!densityDecl || !epsilonDecl) return;
  const reported = new Set<string>();
  for (const view of views) {
    const ts = sliceTs(view);
    for (const source of view.sources) {
      if (isPlaceholderRef(source.model) || isTheBase(view, source, method)) continue;
      const densities = effectivePieces(source, view.levels, densityDecl);
      const epsilons = effectivePieces(source, view.levels, epsilonDecl);
      for (const d of densities) {
        for (const e of epsilons) {
          if (!compatible(d, e)) continue;
          const violation = findDellaViolation(d, e, ts);
          if (!violation) continue;
          const blameEpsilon = e.explicit && violation.epsilon >= 0.5;
          const path = blameEpsilon ? e.path : d.path;
          if (path === '' || reported.has(path)) continue;
          reported.add(path);
          issues.error(path, dellaMessage(method.name, d, e, violation));
        }
      }
    }
  }
}

interface DellaViolation {
  readonly density: number;
  readonly epsilon: number;
  /** Layer position (docs/config.md §4) where it happens. */
  readonly t: number;
}

function findDellaViolation(d: Piece, e: Piece, ts: readonly number[]): DellaViolation | undefined {
  for (const t of ts) {
    const density = evaluateGradient(d.values, t);
    const epsilon = evaluateGradient(e.values, t);
    if (density <= 0 || density >= 1) continue; // density ≥ 1 keeps everything, ≤ 0 nothing: no window check
    if (density + epsilon >= 1 || density - epsilon <= 0) return { density, epsilon, t };
  }
  return undefined;
}

function dellaMessage(method: string, d: Piece, e: Piece, v: DellaViolation): string {
  const dText =
    d.values.length > 1 ? `density ${fmt(v.density)} (the gradient [${d.values.join(', ')}] at layer position t = ${fmt(v.t)})` : `density ${fmt(v.density)}`;
  const eText = e.explicit ? (e.values.length > 1 ? `epsilon ${fmt(v.epsilon)} (from its gradient)` : `epsilon ${fmt(v.epsilon)}`) : `the default epsilon ${fmt(v.epsilon)}`;
  const high = v.density + v.epsilon >= 1;
  const what = high ? `density + epsilon = ${fmt(v.density + v.epsilon)} ≥ 1` : `density − epsilon = ${fmt(v.density - v.epsilon)} ≤ 0`;
  let fix: string;
  if (v.epsilon >= 0.5) fix = 'epsilon must be below 0.5 for any density to fit: lower epsilon';
  else if (high) {
    fix =
      d.values.length > 1 && d.values.some((x) => x >= 1)
        ? `a density gradient that reaches 1 passes through values just below 1, so keep every density point at most ${fmt(1 - v.epsilon)} (or lower epsilon)`
        : `use a density below ${fmt(1 - v.epsilon)}, a smaller epsilon, or density 1 (no pruning)`;
  } else fix = `use a density above ${fmt(v.epsilon)}, or set epsilon below ${fmt(v.density)}`;
  return `${method}: ${dText} with ${eText} gives ${what}; mergekit stops with "Epsilon must be chosen such that density +/- epsilon is in (0, 1)": ${fix}`;
}

// ----- negative weights ---------------------------------------------------------------------------

/** mergekit #213: with normalize on, a negative weight also shrinks the divisor (or flips its sign). */
function checkNegativeWeights(views: readonly SliceView[], method: MergeMethod, issues: IssueList): void {
  const normalize = method.params.find((d) => d.name === 'normalize' && d.type === 'boolean');
  if (!normalize || !method.params.some((d) => d.name === 'weight' && d.scope === 'model')) return;
  const reported = new Set<string>();
  for (const view of views) {
    const normalizeSettings = view.levels.filter((l) => has(l.parameters, 'normalize')).map((l) => l.parameters!.normalize);
    const normalizeValues = normalizeSettings.length > 0 ? settingNumbers(normalizeSettings[0]) : [normalize.default ?? 0];
    if (!normalizeValues.some((v) => v !== 0)) continue;
    for (const source of view.sources) {
      if (isTheBase(view, source, method)) continue;
      const levels = [{ parameters: source.parameters, path: childPath(source.path, 'parameters') }, ...view.levels];
      const level = levels.find((l) => has(l.parameters, 'weight'));
      if (!level) continue;
      const path = childPath(level.path, 'weight');
      if (reported.has(path) || !settingNumbers(level.parameters!.weight).some((v) => v < 0)) continue;
      reported.add(path);
      issues.warning(
        path,
        `a negative weight with normalize on: ${method.name} divides by the sum of the weights, which the negative weight shrinks (or makes 0 or negative); negative weights only make sense with normalize: false (mergekit issue #213)`,
      );
    }
  }
}

// ----- weights that sum to 0 ----------------------------------------------------------------------

/**
 * Methods that refuse, at merge time, to normalize weights summing to 0 (mergekit would divide by
 * zero), and their normalize flag. The task-arithmetic family divides by 1 instead, so is not here.
 */
const REFUSES_ZERO_WEIGHT_SUM: Readonly<Record<string, string>> = { linear: 'normalize', multislerp: 'normalize_weights' };

/**
 * What the merge would refuse for every tensor (or every tensor at some layer): the weights sum
 * to 0 with normalizing on. Only settings that apply to every tensor are summed (a filtered weight
 * depends on tensor names not known here), except that weights that are 0 everywhere always are.
 */
function checkZeroWeightSum(views: readonly SliceView[], method: MergeMethod, issues: IssueList): void {
  const flagName = REFUSES_ZERO_WEIGHT_SUM[method.name];
  const flagDecl = method.params.find((d) => d.name === flagName);
  const weightDecl = method.params.find((d) => d.name === 'weight' && d.scope === 'model');
  if (!flagName || !flagDecl || !weightDecl) return;
  for (const view of views) {
    const flagLevel = view.levels.find((l) => has(l.parameters, flagName));
    const flagValues = flagLevel ? settingNumbers(flagLevel.parameters![flagName]) : [flagDecl.default ?? 0];
    if (!flagValues.some((v) => v !== 0)) continue;
    const sources = view.sources.filter((source) => !isPlaceholderRef(source.model) && !isTheBase(view, source, method));
    const pieces = sources.map((source) => effectivePieces(source, view.levels, weightDecl));
    if (pieces.length < 1 || pieces.some((p) => p.length === 0)) continue;
    const path = pieces.flat().find((p) => p.explicit)?.path ?? view.path;
    const fix = `so normalizing would divide by zero. Change the weights or set \`${flagName}: false\`.`;
    if (pieces.every((p) => p.every((piece) => piece.values.every((v) => v === 0)))) {
      issues.error(path, `${method.name}: the weights sum to 0 (every weight is 0), ${fix}`);
      continue;
    }
    if (!pieces.every((p) => p.length === 1 && p[0].filter === null)) continue;
    const zeroAt = sliceTs(view).find((t) => pieces.reduce((sum, p) => sum + evaluateGradient(p[0].values, t), 0) === 0);
    if (zeroAt === undefined) continue;
    const constant = pieces.every((p) => p[0].values.length === 1);
    issues.error(path, `${method.name}: the weights sum to 0${constant ? '' : ` (at layer position t = ${fmt(zeroAt)})`}, ${fix}`);
  }
}
