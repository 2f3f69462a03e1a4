import { METHODS } from '../methods/index';
import { IssueList, describe, isMapping } from './issues';
import { readModelReference, warnUnknownKeys } from './model-reference';
import { childPath } from './paths';
import { readParameters, readQuotedNumber } from './read-parameters';
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
import { untrustedText as quoted } from '../storage';

/**
 * The schema of docs/config.md §1 applied to parsed YAML (plain JS values): types and shapes
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
const MAX_PAD_TO_MULTIPLE_OF = 65_536;
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

/** Every parameter name of every method, to explain a parameter written outside `parameters:`. */
const PARAMETER_NAMES = new Set(METHODS.flatMap((m) => m.params.map((p) => p.name)));

function parameterHint(key: string): string | undefined {
  return PARAMETER_NAMES.has(key) ? `merge parameters go under parameters: (write parameters: {${key}: …})` : undefined;
}

function moeHint(key: string): string | undefined {
  if (!['experts', 'gate_mode', 'shared_experts', 'experts_per_token'].includes(key)) return undefined;
  return 'it belongs to mergekit-moe configs, which have experts: and no merge_method';
}

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
  warnUnknownKeys(root, '', TOP_LEVEL_KEYS, issues, 'the config', (key) => parameterHint(key) ?? moeHint(key));

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
  // mergekit counts models/slices/modules by truthiness: an empty one next to a filled one is ignored.
  const isEmpty = (v: unknown) => (Array.isArray(v) && v.length === 0) || (isMapping(v) && Object.keys(v).length === 0);
  const given = (['models', 'slices', 'modules'] as const).filter((k) => root[k] !== undefined && root[k] !== null);
  const filled = given.filter((k) => !isEmpty(root[k]));
  const present = filled.length > 0 ? filled : given;
  for (const key of given.filter((k) => !present.includes(k))) {
    issues.warning(key, `this empty ${key} is ignored (the config uses ${filled.join(' and ')}); remove it`, 'key');
  }
  if (present.length > 1) layoutReadable = false; // reported by validate.ts
  // An unreadable list stays present (empty), so that the layout checks do not call it missing.
  if (present.includes('models')) {
    const models = readList(root.models, 'models', issues, readModelEntry);
    config.models = models ?? [];
    if (!models) layoutReadable = false;
  }
  if (present.includes('slices')) {
    const slices = readList(root.slices, 'slices', issues, readSlice);
    config.slices = slices ?? [];
    if (!slices) layoutReadable = false;
  }
  if (present.includes('modules')) {
    const modules = readModules(root.modules, 'modules', issues);
    config.modules = modules ?? {};
    if (!modules) layoutReadable = false;
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
  warnUnknownKeys(item, path, MODEL_KEYS, issues, 'a models entry', (key) =>
    key === 'layer_range'
      ? 'with models: every layer of each model is merged; to merge layer ranges, use slices: with sources: [{model, layer_range}]'
      : parameterHint(key),
  );
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
  warnUnknownKeys(item, path, SLICE_KEYS, issues, 'a slice', (key) =>
    key === 'model' || key === 'layer_range' ? 'a slice lists its models under sources: [{model, layer_range}]' : parameterHint(key),
  );
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
    const weight = readLaxNumber(residual, childPath(path, 'residual_weight'), issues);
    if (weight !== undefined) slice.residual_weight = weight;
    else issues.error(childPath(path, 'residual_weight'), `residual_weight must be a number; got ${describe(residual)}`);
  }
  return slice;
}

function readSource(item: unknown, path: string, issues: IssueList): InputSliceDefinition {
  if (!isMapping(item)) {
    issues.error(path, `each source must be a mapping {model, layer_range}; got ${describe(item)}`);
    return { model: placeholder(path), layer_range: [NaN, NaN] };
  }
  warnUnknownKeys(item, path, SOURCE_KEYS, issues, 'a slice source', parameterHint);
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
  const [start, end] = value.map((v, i) => readLaxInteger(v, childPath(path, i), issues));
  if (start === undefined || end === undefined) {
    issues.error(path, `${shape}; got [${value.map((v) => (typeof v === 'string' ? `'${quoted(v, 40)}'` : quoted(String(v), 40))).join(', ')}]`);
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

/** `dtype`/`out_dtype` (also used by mergekit-moe configs): mergekit's dtype_from_name. */
export function readDtype(value: unknown, path: string, issues: IssueList): ConfigDtype | undefined {
  if (value === undefined || value === null) return undefined;
  const allowed = DTYPES.join(', ');
  if (typeof value !== 'string') {
    issues.error(path, `${path} must be one of ${allowed}; got ${describe(value)}`);
    return undefined;
  }
  if (value === '') {
    issues.warning(path, `an empty ${path} is the same as none (mergekit ignores it)`);
    return undefined;
  }
  const name = value.startsWith('torch.') ? value.slice('torch.'.length) : value;
  if ((DTYPES as readonly string[]).includes(name)) return name as ConfigDtype;
  const suggestion = DTYPE_ALIASES[name.toLowerCase()] ?? closest(name, DTYPES);
  issues.error(
    path,
    `unknown dtype '${quoted(value, 40)}'${suggestion ? `: write ${suggestion}` : ''} (mergekit accepts ${allowed}, optionally prefixed with torch.)`,
  );
  return undefined;
}

/**
 * An integer the way pydantic's lax int reads it: a whole number, or a quoted one (with a warning).
 * Undefined (nothing reported) for anything else.
 */
export function readLaxInteger(value: unknown, path: string, issues: IssueList): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string') return readQuotedNumber(value, path, issues, Number.isInteger);
  return undefined;
}

/** A float the way pydantic's lax float reads it (numbers, booleans, quoted numbers with a warning). */
export function readLaxNumber(value: unknown, path: string, issues: IssueList): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') return readQuotedNumber(value, path, issues, Number.isFinite);
  return undefined;
}

/** `union`, `base`, or a model reference; the legacy `model:<path>` prefix is stripped. */
function readTokenizerSource(value: unknown, path: string, issues: IssueList): 'union' | 'base' | ModelReference | undefined {
  if (value === 'union' || value === 'base') return value;
  if (typeof value === 'string' && value.startsWith('model:')) {
    const model = value.slice('model:'.length);
    issues.warning(
      path,
      `the 'model:' prefix is the spelling of mergekit ≤ 0.0.4; mergekit 0.1 reads '${quoted(value, 80)}' as a model path and cannot find it: write ${quoted(model, 80)}`,
    );
    return readModelReference(model, path, issues);
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
    const padPath = childPath(path, 'pad_to_multiple_of');
    const n = readLaxInteger(pad, padPath, issues);
    if (n !== undefined && n > MAX_PAD_TO_MULTIPLE_OF) {
      // Every embedding would get up to that many rows (and the planner a row map of that size).
      issues.error(padPath, `pad_to_multiple_of ${n} is larger than any vocabulary needs (at most ${MAX_PAD_TO_MULTIPLE_OF}): use a small power of two such as 64`);
      ok = false;
    } else if (n !== undefined && n > 0) tokenizer.pad_to_multiple_of = n;
    else if (n === 0) issues.warning(padPath, 'pad_to_multiple_of: 0 means no padding (mergekit skips it); remove it or give a positive integer such as 64');
    else {
      issues.error(padPath, `pad_to_multiple_of must be a positive integer such as 64; got ${describe(pad)}`);
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
    const flag = laxBoolean(force);
    if (flag !== undefined) entry.force = flag;
    else {
      issues.error(childPath(path, 'force'), `force must be true or false; got ${describe(force)}`);
      ok = false;
    }
  }
  return ok ? entry : undefined;
}

const TRUE_TEXT = ['t', 'y', 'on', 'yes', 'true', 'True'];
const FALSE_TEXT = ['f', 'n', 'no', 'off', 'false', 'False'];

/** A boolean the way pydantic's lax bool reads it: true/false, 0/1, and strings such as 'yes'. */
function laxBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1) return value === 1;
  if (typeof value === 'string') {
    if (TRUE_TEXT.includes(value)) return true;
    if (FALSE_TEXT.includes(value)) return false;
  }
  return undefined;
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
    const id = readLaxInteger(raw.token_id, childPath(path, 'token_id'), issues);
    if (id !== undefined && id >= 0) source.token_id = id;
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
