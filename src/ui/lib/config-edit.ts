import { formatModelReference, parseModelReference } from '../../config';
import type {
  InputModelDefinition,
  InputSliceDefinition,
  MergeConfig,
  ModelReference,
  OutputSliceDefinition,
  ParameterSetting,
  Parameters,
} from '../../config';
import { findMethod, type MergeMethod, type ParamDecl } from '../../methods';

/**
 * The form's edits, as plain mutations of a MergeConfig (run inside `editConfigText`, which
 * re-serialises the result). Models are identified by their reference string (`org/name@rev`), the
 * same key the worker's ModelBinding uses.
 */

/** The method the app starts with when the first models are added and none is chosen yet. */
export const DEFAULT_METHOD = 'linear';

export function modelKey(ref: ModelReference): string {
  return formatModelReference(ref);
}

export function refFromKey(key: string): ModelReference {
  try {
    return parseModelReference(key);
  } catch {
    return { path: key };
  }
}

export type Layout = 'models' | 'slices' | 'modules' | 'none';

export function layoutOf(config: MergeConfig): Layout {
  if (config.slices !== undefined) return 'slices';
  if (config.modules !== undefined) return 'modules';
  if (config.models !== undefined) return 'models';
  return 'none';
}

/** Every model the config references, once each, in order of first appearance. */
export function referencedModels(config: MergeConfig): string[] {
  const keys: string[] = [];
  const add = (ref: ModelReference | undefined) => {
    if (!ref) return;
    const key = modelKey(ref);
    if (!keys.includes(key)) keys.push(key);
  };
  const addSlices = (slices: readonly OutputSliceDefinition[] | undefined) =>
    slices?.forEach((s) => {
      s.sources.forEach((src) => add(src.model));
      add(s.base_model);
    });
  config.models?.forEach((m) => add(m.model));
  addSlices(config.slices);
  for (const module of Object.values(config.modules ?? {})) {
    module.models?.forEach((m) => add(m.model));
    addSlices(module.slices);
  }
  add(config.base_model);
  const tokenizerSource = config.tokenizer?.source ?? config.tokenizer_source;
  if (tokenizerSource && typeof tokenizerSource !== 'string') add(tokenizerSource);
  return keys;
}

/** A value to start a required parameter with, so a fresh config is valid at once. */
export function starterValue(decl: ParamDecl): number {
  if (decl.default !== undefined) return decl.default;
  if (decl.name === 'weight') return 1;
  if (decl.name === 't') return 0.5;
  if (decl.min !== undefined && decl.max !== undefined) return (decl.min + decl.max) / 2;
  if (decl.type === 'boolean') return 0;
  return decl.min ?? 0;
}

function isBase(config: MergeConfig, method: MergeMethod | undefined, key: string): boolean {
  return method !== undefined && method.base !== 'member' && config.base_model !== undefined && modelKey(config.base_model) === key;
}

function requiredModelParameters(method: MergeMethod | undefined): Parameters | undefined {
  const required = (method?.params ?? []).filter((p) => p.scope === 'model' && p.required);
  if (required.length === 0) return undefined;
  return Object.fromEntries(required.map((p) => [p.name, starterValue(p)]));
}

/** Adds a model to a `models:` list (with the method's required per-model parameters). */
export function addModel(config: MergeConfig, key: string): void {
  const layout = layoutOf(config);
  if (layout === 'slices' || layout === 'modules') return; // the slice editor places it
  if (config.merge_method === '') setMethod(config, DEFAULT_METHOD);
  const models = (config.models ??= []);
  if (models.some((m) => modelKey(m.model) === key)) return;
  const method = findMethod(config.merge_method);
  const entry: InputModelDefinition = { model: refFromKey(key) };
  const parameters = isBase(config, method, key) ? undefined : requiredModelParameters(method);
  if (parameters && !coveredAtTop(config, method)) entry.parameters = parameters;
  models.push(entry);
}

/** True when every required per-model parameter is set at the top level (so models need none). */
function coveredAtTop(config: MergeConfig, method: MergeMethod | undefined): boolean {
  const required = (method?.params ?? []).filter((p) => p.scope === 'model' && p.required);
  return required.length > 0 && required.every((p) => config.parameters?.[p.name] !== undefined);
}

/** Removes every reference to a model (models entries, slice sources, base_model). */
export function removeModel(config: MergeConfig, key: string): void {
  if (config.models) config.models = config.models.filter((m) => modelKey(m.model) !== key);
  if (config.slices) {
    for (const slice of config.slices) {
      slice.sources = slice.sources.filter((s) => modelKey(s.model) !== key);
      if (slice.base_model && modelKey(slice.base_model) === key) delete slice.base_model;
    }
    config.slices = config.slices.filter((s) => s.sources.length > 0);
  }
  if (config.base_model && modelKey(config.base_model) === key) delete config.base_model;
  if (config.tokenizer_source && typeof config.tokenizer_source !== 'string' && modelKey(config.tokenizer_source) === key) {
    delete config.tokenizer_source;
  }
  if (config.tokenizer && typeof config.tokenizer.source !== 'string' && modelKey(config.tokenizer.source) === key) {
    config.tokenizer.source = 'union';
  }
}

/** Sets or clears base_model. The base keeps its place in `models:` but loses per-model parameters. */
export function setBaseModel(config: MergeConfig, key: string | undefined): void {
  const method = findMethod(config.merge_method);
  const previous = config.base_model ? modelKey(config.base_model) : undefined;
  if (key === undefined) delete config.base_model;
  else config.base_model = refFromKey(key);
  const models = config.models;
  if (!models) return;
  if (key !== undefined && method && method.base !== 'member') {
    if (!models.some((m) => modelKey(m.model) === key)) models.unshift({ model: refFromKey(key) });
    const entry = models.find((m) => modelKey(m.model) === key)!;
    stripModelParameters(entry, method);
  }
  // The former base is an ordinary member again and needs the required parameters.
  if (previous !== undefined && previous !== key) {
    const entry = models.find((m) => modelKey(m.model) === previous);
    if (entry) addMissing(entry, requiredModelParameters(method), config, method);
  }
}

function stripModelParameters(entry: InputModelDefinition, method: MergeMethod): void {
  if (!entry.parameters) return;
  for (const p of method.params) if (p.scope === 'model') delete entry.parameters[p.name];
  if (Object.keys(entry.parameters).length === 0) delete entry.parameters;
}

function addMissing(
  entry: InputModelDefinition | InputSliceDefinition,
  parameters: Parameters | undefined,
  config: MergeConfig,
  method: MergeMethod | undefined,
): void {
  if (!parameters || coveredAtTop(config, method)) return;
  for (const [name, value] of Object.entries(parameters)) {
    if (config.parameters?.[name] !== undefined) continue;
    entry.parameters ??= {};
    if (entry.parameters[name] === undefined) entry.parameters[name] = value;
  }
}

/** Every `parameters` map of the config, with whether it belongs to one model (a models entry or slice source). */
function parameterMaps(config: MergeConfig): { owner: { parameters?: Parameters }; perModel: boolean; model?: string }[] {
  const maps: { owner: { parameters?: Parameters }; perModel: boolean; model?: string }[] = [{ owner: config, perModel: false }];
  config.models?.forEach((m) => maps.push({ owner: m, perModel: true, model: modelKey(m.model) }));
  config.slices?.forEach((s) => {
    maps.push({ owner: s, perModel: false });
    s.sources.forEach((src) => maps.push({ owner: src, perModel: true, model: modelKey(src.model) }));
  });
  return maps;
}

/**
 * Switches the method: drops parameters the new method does not declare (mergekit would ignore
 * them silently), adds its required ones with starter values, and picks a base model when the
 * method needs one and none is set (`suggestedBase`, else the first model).
 */
export function setMethod(config: MergeConfig, name: string, suggestedBase?: string): void {
  config.merge_method = name;
  const method = findMethod(name);
  if (!method) return;
  const declared = new Set(method.params.map((p) => p.name));
  for (const { owner } of parameterMaps(config)) {
    if (!owner.parameters) continue;
    for (const key of Object.keys(owner.parameters)) if (!declared.has(key)) delete owner.parameters[key];
    if (Object.keys(owner.parameters).length === 0) delete owner.parameters;
  }

  const models = referencedModels(config);
  if (method.base === 'required' && !config.base_model && models.length > 0) {
    const base = suggestedBase && models.includes(suggestedBase) ? suggestedBase : models[0];
    config.base_model = refFromKey(base);
  }

  for (const p of method.params) {
    if (p.scope !== 'global' || !p.required) continue;
    const setSomewhere = config.parameters?.[p.name] !== undefined || (config.slices ?? []).some((s) => s.parameters?.[p.name] !== undefined);
    if (!setSomewhere) (config.parameters ??= {})[p.name] = starterValue(p);
  }

  const required = requiredModelParameters(method);
  for (const entry of config.models ?? []) {
    const key = modelKey(entry.model);
    if (isBase(config, method, key)) stripModelParameters(entry, method);
    else addMissing(entry, required, config, method);
  }
  for (const slice of config.slices ?? []) {
    const base = slice.base_model ?? config.base_model;
    for (const source of slice.sources) {
      const isSliceBase = method.base !== 'member' && base !== undefined && modelKey(base) === modelKey(source.model);
      if (!isSliceBase) addMissing(source, required, config, method);
    }
  }
}

function setIn(owner: { parameters?: Parameters }, name: string, setting: ParameterSetting | undefined): void {
  if (setting === undefined) {
    if (owner.parameters) {
      delete owner.parameters[name];
      if (Object.keys(owner.parameters).length === 0) delete owner.parameters;
    }
    return;
  }
  (owner.parameters ??= {})[name] = setting;
}

/** Top-level `parameters` (global parameters, and per-model ones given for every model at once). */
export function setGlobalParameter(config: MergeConfig, name: string, setting: ParameterSetting | undefined): void {
  setIn(config, name, setting);
}

/** A per-model parameter of a `models:` entry. */
export function setModelParameter(config: MergeConfig, key: string, name: string, setting: ParameterSetting | undefined): void {
  const entry = config.models?.find((m) => modelKey(m.model) === key);
  if (entry) setIn(entry, name, setting);
}

/** A per-model parameter of one source of one output slice. */
export function setSourceParameter(
  config: MergeConfig,
  sliceIndex: number,
  sourceIndex: number,
  name: string,
  setting: ParameterSetting | undefined,
): void {
  const source = config.slices?.[sliceIndex]?.sources[sourceIndex];
  if (source) setIn(source, name, setting);
}

export function setDtype(config: MergeConfig, which: 'dtype' | 'out_dtype', value: MergeConfig['dtype'] | undefined): void {
  if (value === undefined) delete config[which];
  else config[which] = value;
}

// ---------------------------------------------------------------------------------------------
// Slices (layer ranges; frankenmerges)

/** `models:` → one slice over every layer of every model (same merge, editable ranges). */
export function convertToSlices(config: MergeConfig, numLayers: (key: string) => number | undefined): void {
  if (!config.models) return;
  const sources: InputSliceDefinition[] = config.models.map((m) => {
    const source: InputSliceDefinition = { model: m.model, layer_range: [0, numLayers(modelKey(m.model)) ?? 0] };
    if (m.parameters) source.parameters = m.parameters;
    return source;
  });
  delete config.models;
  config.slices = sources.length > 0 ? [{ sources }] : [];
}

/** One slice whose sources all start at 0 and have equal length → back to `models:`. */
export function canConvertToModels(config: MergeConfig): boolean {
  const slices = config.slices;
  if (!slices || slices.length > 1) return slices !== undefined && slices.length === 0;
  const [slice] = slices;
  return (
    slice.base_model === undefined &&
    slice.parameters === undefined &&
    slice.sources.every((s) => s.layer_range[0] === 0 && s.layer_range[1] === slice.sources[0].layer_range[1])
  );
}

export function convertToModels(config: MergeConfig): void {
  if (!canConvertToModels(config)) return;
  const sources = config.slices?.[0]?.sources ?? [];
  delete config.slices;
  config.models = sources.map((s) => {
    const m: InputModelDefinition = { model: s.model };
    if (s.parameters) m.parameters = s.parameters;
    return m;
  });
}

/** A frankenmerge preset: each model's layers stacked after the previous one's (passthrough). */
export function stackModels(config: MergeConfig, keys: readonly string[], numLayers: (key: string) => number | undefined): void {
  delete config.models;
  config.slices = keys.map((key) => ({ sources: [{ model: refFromKey(key), layer_range: [0, numLayers(key) ?? 0] }] }));
  if (config.merge_method === '') config.merge_method = 'passthrough';
}

export function addSlice(config: MergeConfig, key: string, range: [number, number]): void {
  (config.slices ??= []).push({ sources: [{ model: refFromKey(key), layer_range: range }] });
}

export function removeSlice(config: MergeConfig, index: number): void {
  config.slices?.splice(index, 1);
}

export function moveSlice(config: MergeConfig, index: number, delta: -1 | 1): void {
  const slices = config.slices;
  const to = index + delta;
  if (!slices || to < 0 || to >= slices.length) return;
  [slices[index], slices[to]] = [slices[to], slices[index]];
}

export function addSliceSource(config: MergeConfig, sliceIndex: number, key: string): void {
  const slice = config.slices?.[sliceIndex];
  if (!slice) return;
  const range = slice.sources[0]?.layer_range ?? [0, 0];
  const source: InputSliceDefinition = { model: refFromKey(key), layer_range: [range[0], range[1]] };
  addMissing(source, requiredModelParameters(findMethod(config.merge_method)), config, findMethod(config.merge_method));
  slice.sources.push(source);
}

export function removeSliceSource(config: MergeConfig, sliceIndex: number, sourceIndex: number): void {
  const slice = config.slices?.[sliceIndex];
  if (!slice) return;
  slice.sources.splice(sourceIndex, 1);
  if (slice.sources.length === 0) config.slices!.splice(sliceIndex, 1);
}

export function setSliceSource(
  config: MergeConfig,
  sliceIndex: number,
  sourceIndex: number,
  patch: { model?: string; start?: number; end?: number },
): void {
  const source = config.slices?.[sliceIndex]?.sources[sourceIndex];
  if (!source) return;
  if (patch.model !== undefined) source.model = refFromKey(patch.model);
  const [start, end] = source.layer_range;
  source.layer_range = [patch.start ?? start, patch.end ?? end];
}

/** The tokenizer source as the form shows it: 'union', 'base', a model key, or undefined (not set). */
export function tokenizerChoice(config: MergeConfig): string | undefined {
  const source = config.tokenizer?.source ?? config.tokenizer_source;
  if (source === undefined) return undefined;
  return typeof source === 'string' ? source : modelKey(source);
}

/**
 * Sets where the output tokenizer comes from. Writes `tokenizer: {source}` (keeping token overrides),
 * or the legacy `tokenizer_source` when the config already uses that spelling.
 */
export function setTokenizerSource(config: MergeConfig, choice: string | undefined): void {
  const source = choice === undefined || choice === 'union' || choice === 'base' ? choice : refFromKey(choice);
  if (config.tokenizer_source !== undefined && config.tokenizer === undefined) {
    if (source === undefined) delete config.tokenizer_source;
    else config.tokenizer_source = source;
    return;
  }
  if (source === undefined) {
    if (config.tokenizer?.tokens || config.tokenizer?.pad_to_multiple_of !== undefined) config.tokenizer.source = 'union';
    else delete config.tokenizer;
    return;
  }
  config.tokenizer = { ...(config.tokenizer ?? {}), source };
}
