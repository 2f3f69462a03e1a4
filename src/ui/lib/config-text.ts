import { parseDocument } from 'yaml';
import { ConfigError, configToYaml, detectConfigKind, parseMergeConfig, parseModelReference, readYamlDocument } from '../../config';
import { checkMoeText, type MoeTextCheck } from './moe-text';
import type {
  ConditionalSetting,
  InputModelDefinition,
  InputSliceDefinition,
  MergeConfig,
  ModelReference,
  OutputModuleDefinition,
  OutputSliceDefinition,
  ParameterSetting,
  Parameters,
  TokenizerConfig,
} from '../../config';
import type { ConfigIssue } from '../../config';

/**
 * The YAML text is the app's single source of truth. The form reads it through `checkConfigText`
 * and writes it through `editConfigText` (parse → modify → configToYaml).
 *
 * A config with semantic errors (a missing weight, slerp without a base…) must stay editable by the
 * form — that is how a user fixes it — so besides the strict parse, the text is also read leniently
 * into the same MergeConfig shape. Only YAML syntax errors make the form read-only.
 */
export interface ConfigCheck {
  /** The config when the text is fully valid (what plan/merge accept). */
  readonly valid: MergeConfig | null;
  /** What the form shows and edits: the valid config, else a lenient reading; null on syntax errors. */
  readonly editable: MergeConfig | null;
  /** Errors and warnings, by line. */
  readonly issues: readonly ConfigIssue[];
  readonly errorCount: number;
  /** The text is empty (a fresh session): no issues are shown. */
  readonly empty: boolean;
  /**
   * Set for a mergekit-moe config (`experts:`, no `merge_method`): what the experts editor shows.
   * `valid` and `editable` are then null (it is not a merge config) and `issues` are mergekit-moe's.
   */
  readonly moe?: MoeTextCheck;
}

const EMPTY: MergeConfig = { merge_method: '' };

export function checkConfigText(text: string): ConfigCheck {
  if (text.trim() === '') {
    return { valid: null, editable: structuredClone(EMPTY), issues: [], errorCount: 0, empty: true };
  }
  const moe = readMoe(text);
  if (moe) return moe;
  let valid: MergeConfig | null = null;
  let issues: ConfigIssue[];
  try {
    const parsed = parseMergeConfig(text);
    valid = parsed.config;
    issues = parsed.warnings;
  } catch (error) {
    if (error instanceof ConfigError) issues = [...error.issues, ...error.warnings];
    else issues = [{ path: '', message: (error as Error).message ?? String(error), severity: 'error', line: 1, column: 1 }];
  }
  issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  const editable = valid ? structuredClone(valid) : readLeniently(text);
  return { valid, editable, issues, errorCount: issues.filter((i) => i.severity === 'error').length, empty: false };
}

/** The check of a mergekit-moe config, or null for any other text. */
function readMoe(text: string): ConfigCheck | null {
  // Merge configs (nearly every text) are not parsed twice as the user types.
  if (!text.includes('experts')) return null;
  const doc = readYamlDocument(text);
  if (!doc.readable || detectConfigKind(doc.root) !== 'moe') return null;
  const { moe, issues } = checkMoeText(doc);
  return { valid: null, editable: null, issues, errorCount: issues.filter((i) => i.severity === 'error').length, empty: false, moe };
}

export class ReadOnlyConfigError extends Error {
  constructor() {
    super('The YAML has syntax errors: fix them in the YAML panel before editing with the form.');
    this.name = 'ReadOnlyConfigError';
  }
}

/** Applies a form edit to the YAML text. Throws ReadOnlyConfigError when the text cannot be read. */
export function editConfigText(text: string, edit: (config: MergeConfig) => void): string {
  return editCheckedConfig(checkConfigText(text), edit);
}

/** Applies a form edit to a text already checked (its check given). Throws ReadOnlyConfigError when it cannot be read. */
export function editCheckedConfig(check: Pick<ConfigCheck, 'editable'>, edit: (config: MergeConfig) => void): string {
  if (!check.editable) throw new ReadOnlyConfigError();
  const config = structuredClone(check.editable);
  edit(config);
  return configText(config);
}

/** The text has a `#` comment outside quotes (a form edit, which rewrites the YAML, would drop it). */
export function hasYamlComment(text: string): boolean {
  return text.split('\n').some((line) => /(^|\s)#/.test(line.replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, '')));
}

/** A config as YAML; an unset method (a fresh session) is left out rather than written as "". */
export function configText(config: MergeConfig): string {
  const yaml = configToYaml(config);
  return config.merge_method === '' ? yaml.replace(/^merge_method: (""|'')\n/m, '') : yaml;
}

// ---------------------------------------------------------------------------------------------
// Lenient reading: the same shapes as src/config's reader, but anything unreadable is skipped.

function readLeniently(text: string): MergeConfig | null {
  const doc = parseDocument(text, { version: '1.1', merge: true, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) return null;
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch {
    return null;
  }
  if (root === null || root === undefined) return structuredClone(EMPTY);
  if (!isMapping(root)) return null;

  const config: MergeConfig = { merge_method: typeof root.merge_method === 'string' ? root.merge_method : '' };
  const models = readModels(root.models);
  if (models) config.models = models;
  const slices = readSlices(root.slices);
  if (slices) config.slices = slices;
  if (isMapping(root.modules)) {
    const modules: Record<string, OutputModuleDefinition> = {};
    for (const [name, value] of Object.entries(root.modules)) {
      if (!isMapping(value)) continue;
      const module: OutputModuleDefinition = {};
      const m = readModels(value.models);
      if (m) module.models = m;
      const s = readSlices(value.slices);
      if (s) module.slices = s;
      const p = readParameters(value.parameters);
      if (p) module.parameters = p;
      modules[name] = module;
    }
    config.modules = modules;
  }
  const base = readRef(root.base_model);
  if (base) config.base_model = base;
  const parameters = readParameters(root.parameters);
  if (parameters) config.parameters = parameters;
  if (typeof root.dtype === 'string') config.dtype = root.dtype as MergeConfig['dtype'];
  if (typeof root.out_dtype === 'string') config.out_dtype = root.out_dtype as MergeConfig['out_dtype'];
  const tokenizerSource = readTokenizerSource(root.tokenizer_source);
  if (tokenizerSource) config.tokenizer_source = tokenizerSource;
  if (isMapping(root.tokenizer)) {
    // Token overrides are only kept through the strict reader; a lenient edit keeps the source.
    const tokenizer: TokenizerConfig = { source: readTokenizerSource(root.tokenizer.source) ?? 'union' };
    if (typeof root.tokenizer.pad_to_multiple_of === 'number') tokenizer.pad_to_multiple_of = root.tokenizer.pad_to_multiple_of;
    config.tokenizer = tokenizer;
  }
  if (typeof root.chat_template === 'string') config.chat_template = root.chat_template;
  return config;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readRef(value: unknown): ModelReference | undefined {
  if (typeof value !== 'string' && !isMapping(value)) return undefined;
  try {
    return parseModelReference(value);
  } catch {
    if (typeof value === 'string' && value !== '') return { path: value };
    if (isMapping(value) && isMapping(value.model) && typeof value.model.path === 'string') return { path: value.model.path };
    return undefined;
  }
}

function readTokenizerSource(value: unknown): TokenizerConfig['source'] | undefined {
  if (value === 'union' || value === 'base') return value;
  return readRef(value);
}

function readModels(value: unknown): InputModelDefinition[] | undefined {
  if (value === null) return [];
  if (!Array.isArray(value)) return undefined;
  const models: InputModelDefinition[] = [];
  for (const entry of value) {
    const model = isMapping(entry) ? readRef(entry.model) : readRef(entry);
    if (!model) continue;
    const def: InputModelDefinition = { model };
    const parameters = isMapping(entry) ? readParameters(entry.parameters) : undefined;
    if (parameters) def.parameters = parameters;
    models.push(def);
  }
  return models;
}

function readSlices(value: unknown): OutputSliceDefinition[] | undefined {
  if (value === null) return [];
  if (!Array.isArray(value)) return undefined;
  const slices: OutputSliceDefinition[] = [];
  for (const entry of value) {
    if (!isMapping(entry)) continue;
    const sources: InputSliceDefinition[] = [];
    for (const source of Array.isArray(entry.sources) ? entry.sources : []) {
      if (!isMapping(source)) continue;
      const model = readRef(source.model);
      if (!model) continue;
      const range = Array.isArray(source.layer_range) ? source.layer_range.map(Number) : [];
      const s: InputSliceDefinition = {
        model,
        layer_range: [Number.isFinite(range[0]) ? range[0] : 0, Number.isFinite(range[1]) ? range[1] : 0],
      };
      const parameters = readParameters(source.parameters);
      if (parameters) s.parameters = parameters;
      sources.push(s);
    }
    const slice: OutputSliceDefinition = { sources };
    const base = readRef(entry.base_model);
    if (base) slice.base_model = base;
    const parameters = readParameters(entry.parameters);
    if (parameters) slice.parameters = parameters;
    if (typeof entry.residual_weight === 'number') slice.residual_weight = entry.residual_weight;
    slices.push(slice);
  }
  return slices;
}

function readParameters(value: unknown): Parameters | undefined {
  if (!isMapping(value)) return undefined;
  const out: Parameters = {};
  for (const [name, raw] of Object.entries(value)) {
    const setting = readSetting(raw);
    if (setting !== undefined) out[name] = setting;
  }
  return out;
}

function scalar(value: unknown): number | string | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') {
    const n = Number(value);
    return value.trim() !== '' && Number.isFinite(n) ? n : value;
  }
  return undefined;
}

function readSetting(value: unknown): ParameterSetting | undefined {
  if (!Array.isArray(value)) return scalar(value);
  if (value.every((v) => typeof v === 'number' || typeof v === 'boolean')) return value.map((v) => Number(v));
  const entries: ConditionalSetting[] = [];
  for (const entry of value) {
    if (!isMapping(entry)) continue;
    const inner = readSetting(entry.value);
    if (inner === undefined || (Array.isArray(inner) && inner.some((v) => typeof v !== 'number'))) continue;
    const e: ConditionalSetting = { value: inner as ConditionalSetting['value'] };
    if (typeof entry.filter === 'string' || entry.filter === null) e.filter = entry.filter;
    entries.push(e);
  }
  return entries;
}
