import { childPath } from './paths';
import type { InputModelDefinition, MergeConfig, ModelReference, OutputSliceDefinition, Parameters } from './types';

/**
 * The config's merge structure in one shape for the checks: every output slice (a `models:` list
 * counts as one slice), with the parameter levels that apply to it and the YAML paths of each part.
 */

export interface SourceView {
  readonly model: ModelReference;
  readonly parameters?: Parameters;
  /** Path of the models entry / slice source; `base_model` for the base appended to a `models:` list. */
  readonly path: string;
  /** The base model that `models:` syntax appends because it is not listed. */
  readonly implicit: boolean;
  readonly layerRange?: readonly [number, number];
}

export interface ParameterLevel {
  readonly parameters?: Parameters;
  /** Where that level's `parameters` is (or would be) in the YAML. */
  readonly path: string;
}

export interface SliceView {
  /** `models` (models: syntax), `slices[2]`, `modules.text_decoder.slices[0]`, … */
  readonly path: string;
  readonly modelsSyntax: boolean;
  readonly sources: readonly SourceView[];
  /** The slice's own base_model, else the top-level one. */
  readonly base?: ModelReference;
  readonly basePath: string;
  /** Levels after the source's own parameters, in precedence order: [slice, module, top]. */
  readonly levels: readonly ParameterLevel[];
}

export function sliceViews(config: MergeConfig, sameModel: (a: ModelReference, b: ModelReference) => boolean): SliceView[] {
  const top: ParameterLevel = { parameters: config.parameters, path: 'parameters' };
  const views: SliceView[] = [];
  const addModels = (models: readonly InputModelDefinition[], path: string, moduleLevel: ParameterLevel[]) => {
    const sources: SourceView[] = models.map((m, i) => ({
      model: m.model,
      parameters: m.parameters,
      path: childPath(path, i),
      implicit: false,
    }));
    const base = config.base_model;
    if (base && !models.some((m) => sameModel(m.model, base))) {
      sources.push({ model: base, path: 'base_model', implicit: true });
    }
    views.push({ path, modelsSyntax: true, sources, base, basePath: 'base_model', levels: [...moduleLevel, top] });
  };
  const addSlices = (slices: readonly OutputSliceDefinition[], path: string, moduleLevel: ParameterLevel[]) => {
    slices.forEach((slice, i) => {
      const slicePath = childPath(path, i);
      views.push({
        path: slicePath,
        modelsSyntax: false,
        sources: slice.sources.map((s, j) => ({
          model: s.model,
          parameters: s.parameters,
          path: childPath(childPath(slicePath, 'sources'), j),
          implicit: false,
          layerRange: s.layer_range,
        })),
        base: slice.base_model ?? config.base_model,
        basePath: slice.base_model ? childPath(slicePath, 'base_model') : 'base_model',
        levels: [{ parameters: slice.parameters, path: childPath(slicePath, 'parameters') }, ...moduleLevel, top],
      });
    });
  };
  if (config.models) addModels(config.models, 'models', []);
  if (config.slices) addSlices(config.slices, 'slices', []);
  for (const [name, module] of Object.entries(config.modules ?? {})) {
    const modulePath = childPath('modules', name);
    const level = [{ parameters: module.parameters, path: childPath(modulePath, 'parameters') }];
    if (module.models) addModels(module.models, childPath(modulePath, 'models'), level);
    if (module.slices) addSlices(module.slices, childPath(modulePath, 'slices'), level);
  }
  return views;
}

export type LevelKind = 'top' | 'module' | 'slice' | 'source';

/** Every `parameters` mapping of the config with its path and level. */
export function parameterMaps(config: MergeConfig): { parameters: Parameters; path: string; level: LevelKind }[] {
  const out: { parameters: Parameters; path: string; level: LevelKind }[] = [];
  const push = (parameters: Parameters | undefined, path: string, level: LevelKind) => {
    if (parameters) out.push({ parameters, path: childPath(path, 'parameters'), level });
  };
  const fromModels = (models: readonly InputModelDefinition[], path: string) =>
    models.forEach((m, i) => push(m.parameters, childPath(path, i), 'source'));
  const fromSlices = (slices: readonly OutputSliceDefinition[], path: string) =>
    slices.forEach((slice, i) => {
      const slicePath = childPath(path, i);
      push(slice.parameters, slicePath, 'slice');
      slice.sources.forEach((s, j) => push(s.parameters, childPath(childPath(slicePath, 'sources'), j), 'source'));
    });
  if (config.parameters) out.push({ parameters: config.parameters, path: 'parameters', level: 'top' });
  if (config.models) fromModels(config.models, 'models');
  if (config.slices) fromSlices(config.slices, 'slices');
  for (const [name, module] of Object.entries(config.modules ?? {})) {
    const modulePath = childPath('modules', name);
    push(module.parameters, modulePath, 'module');
    if (module.models) fromModels(module.models, childPath(modulePath, 'models'));
    if (module.slices) fromSlices(module.slices, childPath(modulePath, 'slices'));
  }
  return out;
}

/** Every model reference in the config with its path (tokenizer sources included). */
export function modelReferences(config: MergeConfig): { model: ModelReference; path: string }[] {
  const out: { model: ModelReference; path: string }[] = [];
  const fromModels = (models: readonly InputModelDefinition[], path: string) =>
    models.forEach((m, i) => out.push({ model: m.model, path: childPath(childPath(path, i), 'model') }));
  const fromSlices = (slices: readonly OutputSliceDefinition[], path: string) =>
    slices.forEach((slice, i) => {
      const slicePath = childPath(path, i);
      slice.sources.forEach((s, j) =>
        out.push({ model: s.model, path: childPath(childPath(childPath(slicePath, 'sources'), j), 'model') }),
      );
      if (slice.base_model) out.push({ model: slice.base_model, path: childPath(slicePath, 'base_model') });
    });
  if (config.models) fromModels(config.models, 'models');
  if (config.slices) fromSlices(config.slices, 'slices');
  for (const [name, module] of Object.entries(config.modules ?? {})) {
    const modulePath = childPath('modules', name);
    if (module.models) fromModels(module.models, childPath(modulePath, 'models'));
    if (module.slices) fromSlices(module.slices, childPath(modulePath, 'slices'));
  }
  if (config.base_model) out.push({ model: config.base_model, path: 'base_model' });
  const ts = config.tokenizer_source;
  if (ts && typeof ts === 'object') out.push({ model: ts, path: 'tokenizer_source' });
  const tokenizer = config.tokenizer;
  if (tokenizer) {
    if (typeof tokenizer.source === 'object') out.push({ model: tokenizer.source, path: 'tokenizer.source' });
    for (const [token, entry] of Object.entries(tokenizer.tokens ?? {})) {
      const source = entry.source;
      if (source && source.kind !== 'zero') {
        const sourcePath = childPath(childPath(childPath('tokenizer', 'tokens'), token), 'source');
        out.push({ model: source.model, path: source.kind === 'model' ? sourcePath : childPath(sourcePath, 'model') });
      }
    }
  }
  return out;
}
