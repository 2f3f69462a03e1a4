import { IssueList, describe, isMapping } from './issues';
import { readModelReference, warnUnknownKeys } from './model-reference';
import { childPath } from './paths';
import { readParameters } from './read-parameters';
import { closest } from './suggest';
import type {
  ConfigDtype,
  InputModelDefinition,
  InputSliceDefinition,
  MergeConfig,
  ModelReference,
  OutputModuleDefinition,
  OutputSliceDefinition,
  TokenSource,
  TokenizerConfig,
} from './types';

/**
 * The schema of MERGEKIT_SPEC.md §2.1 applied to parsed YAML (plain JS values): types and shapes
 * only. Checks that can be stated on a typed MergeConfig (exclusive keys, layer counts, the method's
 * rules…) live in validate.ts, so that the app's form gets them too.
 *
 * Whatever could not be read is replaced by a stand-in (an unusable model reference, an invalid
 * parameter value) rather than dropped, so that the later checks neither miss an entry nor report
 * a misleading "missing" error. The result is only used when no error was found.
 */

export const TOP_LEVEL_KEYS = [
  'merge_method',
  'models',
  'slices',
  'modules',
  'base_model',
  'parameters',
  'dtype',
  'out_dtype',
  'tokenizer_source',
  'tokenizer',
  'chat_template',
] as const;
const MODEL_KEYS = ['model', 'parameters'];
const SLICE_KEYS = ['sources', 'base_model', 'parameters', 'residual_weight'];
const SOURCE_KEYS = ['model', 'layer_range', 'parameters'];
const MODULE_KEYS = ['models', 'slices', 'parameters'];
const TOKENIZER_KEYS = ['source', 'tokens', 'pad_to_multiple_of'];
const TOKEN_KEYS = ['source', 'force'];

export const DTYPES: readonly ConfigDtype[] = ['bfloat16', 'float16', 'float32', 'int64'];
const DTYPE_ALIASES: Readonly<Record<string, ConfigDtype>> = {
  bf16: 'bfloat16',
  bfloat: 'bfloat16',
  fp16: 'float16',
  f16: 'float16',
  half: 'float16',
  float: 'float32',
  fp32: 'float32',
  f32: 'float32',
  int: 'int64',
  long: 'int64',
  i64: 'int64',
};

const PLACEHOLDER_PREFIX = '\u0000invalid:';

/** A stand-in for a model reference that could not be read (see the module comment). */
export function isPlaceholderRef(ref: ModelReference): boolean {
  return ref.path.startsWith(PLACEHOLDER_PREFIX);
}

export interface ReadConfigResult {
  config: MergeConfig;
  /** merge_method was present and a string. */
  methodNamed: boolean;
  /** Exactly one of models/slices/modules, and it is a list (or map) that could be walked. */
  layoutReadable: boolean;
}

export function readConfig(root: unknown, issues: IssueList): ReadConfigResult {
  const config: MergeConfig = { merge_method: '' };
  if (!isMapping(root)) {
    issues.error(
      '',
      root === null || root === undefined
        ? 'the config is empty: it needs at least merge_method and models (or slices)'
        : `a merge config must be a mapping with keys such as merge_method and models; got ${describe(root)}`,
    );
    return { config, methodNamed: false, layoutReadable: false };
  }
  warnUnknownKeys(root, '', TOP_LEVEL_KEYS, issues, 'the config');

  let methodNamed = false;
  if (root.merge_method === undefined || root.merge_method === null) {
    issues.error('merge_method', 'merge_method is required (for example linear, slerp, ties or passthrough)');
  } else if (typeof root.merge_method !== 'string') {
    issues.error('merge_method', `merge_method must be a method name; got ${describe(root.merge_method)}`);
  } else {
    config.merge_method = root.merge_method;
    methodNamed = true;
  }

  let layoutReadable = true;
  const present = (['models', 'slices', 'modules'] as const).filter((k) => root[k] !== undefined && root[k] !== null);
  if (present.length > 1) layoutReadable = false; // reported by validate.ts
  if (root.models !== undefined && root.models !== null) {
    const models = readList(root.models, 'models', issues, readModelEntry);
    if (models) config.models = models;
    else layoutReadable = false;
  }
  if (root.slices !== undefined && root.slices !== null) {
    const slices = readList(root.slices, 'slices', issues, readSlice);
    if (slices) config.slices = slices;
    else layoutReadable = false;
  }
  if (root.modules !== undefined && root.modules !== null) {
    const modules = readModules(root.modules, 'modules', issues);
    if (modules) config.modules = modules;
    else layoutReadable = false;
  }
  if (present.length === 0) layoutReadable = false;

  const base = readOptionalRef(root.base_model, 'base_model', issues);
  if (base) config.base_model = base;
  const parameters = readParameters(root.parameters, 'parameters', issues);
  if (parameters) config.parameters = parameters;
  const dtype = readDtype(root.dtype, 'dtype', issues);
  if (dtype) config.dtype = dtype;
  const outDtype = readDtype(root.out_dtype, 'out_dtype', issues);
  if (outDtype) config.out_dtype = outDtype;
  if (root.tokenizer_source !== undefined && root.tokenizer_source !== null) {
    const source = readTokenizerSource(root.tokenizer_source, 'tokenizer_source', issues);
    if (source) config.tokenizer_source = source;
  }
  if (root.tokenizer !== undefined && root.tokenizer !== null) {
    const tokenizer = readTokenizer(root.tokenizer, 'tokenizer', issues);
    if (tokenizer) config.tokenizer = tokenizer;
  }
  if (root.chat_template !== undefined && root.chat_template !== null) {
    if (typeof root.chat_template === 'string') config.chat_template = root.chat_template;
    else issues.error('chat_template', `chat_template must be a string (a built-in name, "auto" or a Jinja template); got ${describe(root.chat_template)}`);
  }
  return { config, methodNamed, layoutReadable };
}

function readList<T>(
  value: unknown,
  path: string,
  issues: IssueList,
  readItem: (item: unknown, path: string, issues: IssueList) => T,
): T[] | undefined {
  if (!Array.isArray(value)) {
    issues.error(path, `${path.split(/[.[]/).pop()} must be a list; got ${describe(value)}`);
    return undefined;
  }
  if (value.length === 0) {
    issues.error(path, 'this list is empty: it needs at least one entry');
    return undefined;
  }
  return value.map((item, i) => readItem(item, childPath(path, i), issues));
}

function placeholder(path: string): ModelReference {
  return { path: `${PLACEHOLDER_PREFIX}${path}` };
}

function readRef(value: unknown, path: string, issues: IssueList): ModelReference {
  if (value === undefined || value === null) {
    issues.error(path, 'model is required: the Hugging Face repo id (org/name) or local directory of the model');
    return placeholder(path);
  }
  return readModelReference(value, path, issues) ?? placeholder(path);
}

function readOptionalRef(value: unknown, path: string, issues: IssueList): ModelReference | undefined {
  if (value === undefined || value === null) return undefined;
  return readModelReference(value, path, issues) ?? placeholder(path);
}

function readModelEntry(item: unknown, path: string, issues: IssueList): InputModelDefinition {
  if (!isMapping(item)) {
    const hint = typeof item === 'string' ? `; write \`- model: ${item}\`` : '';
    issues.error(path, `each entry of models must be a mapping with a model key${hint}; got ${describe(item)}`);
    return { model: placeholder(path) };
  }
  warnUnknownKeys(item, path, MODEL_KEYS, issues, 'a models entry');
  const entry: InputModelDefinition = { model: readRef(item.model, childPath(path, 'model'), issues) };
  const parameters = readParameters(item.parameters, childPath(path, 'parameters'), issues);
  if (parameters) entry.parameters = parameters;
  return entry;
}

function readSlice(item: unknown, path: string, issues: IssueList): OutputSliceDefinition {
  if (!isMapping(item)) {
    issues.error(path, `each slice must be a mapping with a sources list; got ${describe(item)}`);
    return { sources: [] };
  }
  warnUnknownKeys(item, path, SLICE_KEYS, issues, 'a slice');
  const sourcesPath = childPath(path, 'sources');
  let sources: InputSliceDefinition[] = [];
  if (item.sources === undefined || item.sources === null) {
    issues.error(sourcesPath, 'a slice needs sources: a list of {model, layer_range}');
  } else {
    sources = readList(item.sources, sourcesPath, issues, readSource) ?? [];
  }
  const slice: OutputSliceDefinition = { sources };
  const base = readOptionalRef(item.base_model, childPath(path, 'base_model'), issues);
  if (base) slice.base_model = base;
  const parameters = readParameters(item.parameters, childPath(path, 'parameters'), issues);
  if (parameters) slice.parameters = parameters;
  const residual = item.residual_weight;
  if (residual !== undefined && residual !== null) {
    if (typeof residual === 'number' && Number.isFinite(residual)) slice.residual_weight = residual;
    else issues.error(childPath(path, 'residual_weight'), `residual_weight must be a number; got ${describe(residual)}`);
  }
  return slice;
}

function readSource(item: unknown, path: string, issues: IssueList): InputSliceDefinition {
  if (!isMapping(item)) {
    issues.error(path, `each source must be a mapping {model, layer_range}; got ${describe(item)}`);
    return { model: placeholder(path), layer_range: [NaN, NaN] };
  }
  warnUnknownKeys(item, path, SOURCE_KEYS, issues, 'a slice source');
  const source: InputSliceDefinition = {
    model: readRef(item.model, childPath(path, 'model'), issues),
    layer_range: readLayerRange(item.layer_range, childPath(path, 'layer_range'), issues),
  };
  const parameters = readParameters(item.parameters, childPath(path, 'parameters'), issues);
  if (parameters) source.parameters = parameters;
  return source;
}

/** Only the shape here; 0 ≤ start ≤ end is checked in validate.ts. */
function readLayerRange(value: unknown, path: string, issues: IssueList): [number, number] {
  const shape = 'layer_range must be two integers [start, end) such as [0, 24]';
  if (value === undefined || value === null) {
    issues.error(path, `layer_range is required: ${shape}`);
    return [NaN, NaN];
  }
  if (!Array.isArray(value) || value.length !== 2) {
    issues.error(path, `${shape}; got ${Array.isArray(value) ? `a list of ${value.length}` : describe(value)}`);
    return [NaN, NaN];
  }
  const [start, end] = value;
  if (typeof start !== 'number' || typeof end !== 'number' || !Number.isInteger(start) || !Number.isInteger(end)) {
    issues.error(path, `${shape}; got [${value.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')}]`);
    return [NaN, NaN];
  }
  return [start, end];
}

function readModules(value: unknown, path: string, issues: IssueList): Record<string, OutputModuleDefinition> | undefined {
  if (!isMapping(value)) {
    issues.error(path, `modules must be a mapping of module name → {models or slices}; got ${describe(value)}`);
    return undefined;
  }
  const modules: Record<string, OutputModuleDefinition> = {};
  for (const [name, raw] of Object.entries(value)) {
    const modulePath = childPath(path, name);
    if (!isMapping(raw)) {
      issues.error(modulePath, `a module must be a mapping with models or slices; got ${describe(raw)}`);
      modules[name] = {};
      continue;
    }
    warnUnknownKeys(raw, modulePath, MODULE_KEYS, issues, 'a module');
    const module: OutputModuleDefinition = {};
    if (raw.models !== undefined && raw.models !== null) {
      const models = readList(raw.models, childPath(modulePath, 'models'), issues, readModelEntry);
      if (models) module.models = models;
    }
    if (raw.slices !== undefined && raw.slices !== null) {
      const slices = readList(raw.slices, childPath(modulePath, 'slices'), issues, readSlice);
      if (slices) module.slices = slices;
    }
    const parameters = readParameters(raw.parameters, childPath(modulePath, 'parameters'), issues);
    if (parameters) module.parameters = parameters;
    modules[name] = module;
  }
  return modules;
}

function readDtype(value: unknown, path: string, issues: IssueList): ConfigDtype | undefined {
  if (value === undefined || value === null) return undefined;
  const allowed = DTYPES.join(', ');
  if (typeof value !== 'string') {
    issues.error(path, `${path} must be one of ${allowed}; got ${describe(value)}`);
    return undefined;
  }
  const name = value.startsWith('torch.') ? value.slice('torch.'.length) : value;
  if ((DTYPES as readonly string[]).includes(name)) return name as ConfigDtype;
  const suggestion = DTYPE_ALIASES[name.toLowerCase()] ?? closest(name, DTYPES);
  issues.error(
    path,
    `unknown dtype '${value}'${suggestion ? `: write ${suggestion}` : ''} (mergekit accepts ${allowed}, optionally prefixed with torch.)`,
  );
  return undefined;
}

/** `union`, `base`, or a model reference; the legacy `model:<path>` prefix is stripped. */
function readTokenizerSource(value: unknown, path: string, issues: IssueList): 'union' | 'base' | ModelReference | undefined {
  if (value === 'union' || value === 'base') return value;
  if (typeof value === 'string' && value.startsWith('model:')) {
    return readModelReference(value.slice('model:'.length), path, issues);
  }
  if (typeof value === 'string' || isMapping(value)) return readModelReference(value, path, issues);
  issues.error(path, `expected union, base or a model reference; got ${describe(value)}`);
  return undefined;
}

function readTokenizer(value: unknown, path: string, issues: IssueList): TokenizerConfig | undefined {
  if (!isMapping(value)) {
    issues.error(path, `tokenizer must be a mapping {source, tokens?, pad_to_multiple_of?}; got ${describe(value)}`);
    return undefined;
  }
  warnUnknownKeys(value, path, TOKENIZER_KEYS, issues, 'tokenizer');
  let ok = true;
  let source: TokenizerConfig['source'] = 'union';
  if (value.source !== undefined && value.source !== null) {
    const read = readTokenizerSource(value.source, childPath(path, 'source'), issues);
    if (read) source = read;
    else ok = false;
  }
  const tokenizer: TokenizerConfig = { source };
  if (value.tokens !== undefined && value.tokens !== null) {
    const tokensPath = childPath(path, 'tokens');
    if (!isMapping(value.tokens)) {
      issues.error(tokensPath, `tokens must be a mapping of token string → {source?, force?}; got ${describe(value.tokens)}`);
      ok = false;
    } else {
      const tokens: NonNullable<TokenizerConfig['tokens']> = {};
      for (const [token, raw] of Object.entries(value.tokens)) {
        const entry = readTokenEntry(raw, childPath(tokensPath, token), issues);
        if (entry) tokens[token] = entry;
        else ok = false;
      }
      tokenizer.tokens = tokens;
    }
  }
  const pad = value.pad_to_multiple_of;
  if (pad !== undefined && pad !== null) {
    if (typeof pad === 'number' && Number.isInteger(pad) && pad > 0) tokenizer.pad_to_multiple_of = pad;
    else {
      issues.error(childPath(path, 'pad_to_multiple_of'), `pad_to_multiple_of must be a positive integer such as 64; got ${describe(pad)}`);
      ok = false;
    }
  }
  return ok ? tokenizer : undefined;
}

function readTokenEntry(
  raw: unknown,
  path: string,
  issues: IssueList,
): { source?: TokenSource; force?: boolean } | undefined {
  if (raw === null || raw === undefined) return {};
  if (!isMapping(raw)) {
    issues.error(path, `a token entry must be a mapping {source?, force?}; got ${describe(raw)}`);
    return undefined;
  }
  warnUnknownKeys(raw, path, TOKEN_KEYS, issues, 'a token entry');
  let ok = true;
  const entry: { source?: TokenSource; force?: boolean } = {};
  if (raw.source !== undefined && raw.source !== null) {
    const source = readTokenSource(raw.source, childPath(path, 'source'), issues);
    if (source) entry.source = source;
    else ok = false;
  }
  const force = raw.force;
  if (force !== undefined && force !== null) {
    if (typeof force === 'boolean') entry.force = force;
    else if (force === 0 || force === 1) entry.force = force === 1;
    else {
      issues.error(childPath(path, 'force'), `force must be true or false; got ${describe(force)}`);
      ok = false;
    }
  }
  return ok ? entry : undefined;
}

function readTokenSource(raw: unknown, path: string, issues: IssueList): TokenSource | undefined {
  if (typeof raw === 'string') {
    const model = readModelReference(raw, path, issues);
    return model ? { kind: 'model', model } : undefined;
  }
  if (!isMapping(raw)) {
    issues.error(path, `a token source is a model reference, {kind: model_token, model, token_id | token} or {kind: zero}; got ${describe(raw)}`);
    return undefined;
  }
  if (raw.kind === undefined || raw.kind === null) {
    const model = readModelReference(raw, path, issues);
    return model ? { kind: 'model', model } : undefined;
  }
  const kindPath = childPath(path, 'kind');
  if (raw.kind === 'zero') {
    warnUnknownKeys(raw, path, ['kind'], issues, 'a zero token source');
    return { kind: 'zero' };
  }
  if (raw.kind !== 'model_token') {
    const kind = typeof raw.kind === 'string' ? raw.kind : '';
    const hint = closest(kind, ['model_token', 'zero']);
    issues.error(kindPath, `unknown token source kind ${describe(raw.kind)}: expected model_token or zero${hint ? ` (did you mean '${hint}'?)` : ''}`);
    return undefined;
  }
  warnUnknownKeys(raw, path, ['kind', 'model', 'token_id', 'token'], issues, 'a model_token source');
  let ok = true;
  const model = readRef(raw.model, childPath(path, 'model'), issues);
  const hasId = raw.token_id !== undefined && raw.token_id !== null;
  const hasToken = raw.token !== undefined && raw.token !== null;
  if (hasId === hasToken) {
    issues.error(path, hasId ? 'give only one of token_id and token' : 'a model_token source needs token_id or token (exactly one of the two)');
    ok = false;
  }
  const source: TokenSource = { kind: 'model_token', model };
  if (hasId) {
    if (typeof raw.token_id === 'number' && Number.isInteger(raw.token_id) && raw.token_id >= 0) source.token_id = raw.token_id;
    else {
      issues.error(childPath(path, 'token_id'), `token_id must be a non-negative integer; got ${describe(raw.token_id)}`);
      ok = false;
    }
  }
  if (hasToken) {
    if (typeof raw.token === 'string') source.token = raw.token;
    else {
      issues.error(childPath(path, 'token'), `token must be a string; got ${describe(raw.token)}`);
      ok = false;
    }
  }
  return ok && !isPlaceholderRef(model) ? source : undefined;
}
