import { Document, isScalar, visit, type ScalarTag } from 'yaml';
import { findMethod } from '../methods/index';
import { formatModelReference } from './model-reference';
import { pyYamlTags } from './yaml-schema';
import type {
  InputModelDefinition,
  InputSliceDefinition,
  MergeConfig,
  ModelReference,
  OutputModuleDefinition,
  OutputSliceDefinition,
  ParameterSetting,
  Parameters,
  TokenSource,
  TokenizerConfig,
} from './types';

/**
 * A config as idiomatic mergekit YAML: mergekit's key order, model references in string form
 * (the dict form only when `override_architecture` needs it), gradients and layer ranges in flow
 * style (`[0, 24]`), 0/1 of the method's boolean parameters as true/false. The text parses back to
 * an equal config, with Alloy and with PyYAML (YAML 1.1 quoting; exponents written `1.0e-8`).
 */
export function configToYaml(config: MergeConfig): string {
  const booleans = new Set(
    (findMethod(config.merge_method)?.params ?? []).filter((d) => d.type === 'boolean').map((d) => d.name),
  );
  const out: Record<string, unknown> = {};
  if (config.models) out.models = config.models.map((m) => modelEntry(m, booleans));
  if (config.slices) out.slices = config.slices.map((s) => slice(s, booleans));
  if (config.modules) {
    out.modules = Object.fromEntries(Object.entries(config.modules).map(([name, m]) => [name, module(m, booleans)]));
  }
  out.merge_method = config.merge_method;
  if (config.base_model) out.base_model = ref(config.base_model);
  if (config.parameters) out.parameters = parameters(config.parameters, booleans);
  if (config.dtype) out.dtype = config.dtype;
  if (config.out_dtype) out.out_dtype = config.out_dtype;
  if (config.tokenizer_source !== undefined) out.tokenizer_source = tokenizerSource(config.tokenizer_source);
  if (config.tokenizer) out.tokenizer = tokenizer(config.tokenizer);
  if (config.chat_template !== undefined) out.chat_template = config.chat_template;

  const doc = new Document(out, { version: '1.1', customTags: (tags) => [PYYAML_EXPONENT_FLOAT, ...pyYamlTags(tags)] });
  visit(doc, {
    Seq(_, node) {
      if (node.items.length > 0 && node.items.every((item) => isScalar(item) && typeof item.value === 'number')) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** PyYAML only reads `1.0e-8` (a dot and a signed exponent) as a float; `1e-8` would be a string. */
const PYYAML_EXPONENT_FLOAT: ScalarTag = {
  tag: 'tag:yaml.org,2002:float',
  default: true,
  identify: (value) => typeof value === 'number' && Number.isFinite(value) && /e/i.test(String(value)),
  test: /^\b$/, // output only: reading uses the schema's own float tags
  resolve: (source) => Number(source),
  stringify: ({ value }) => {
    const [mantissa, exponent] = String(value).split('e');
    const sign = exponent.startsWith('-') || exponent.startsWith('+') ? '' : '+';
    return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}e${sign}${exponent}`;
  },
};

function ref(model: ModelReference): unknown {
  if (model.override_architecture === undefined) return formatModelReference(model);
  const out: Record<string, unknown> = { model: pathOf(model) };
  if (model.lora) out.lora = pathOf(model.lora);
  out.override_architecture = model.override_architecture;
  return out;
}

function pathOf(p: { path: string; revision?: string }): Record<string, string> {
  return p.revision !== undefined ? { path: p.path, revision: p.revision } : { path: p.path };
}

function setting(value: ParameterSetting, asBoolean: boolean): unknown {
  if (typeof value === 'number') return asBoolean && (value === 0 || value === 1) ? value === 1 : value;
  if (typeof value === 'string' || value.length === 0 || typeof value[0] === 'number') return value;
  return (value as { filter?: string | null; value: ParameterSetting }[]).map((entry) => {
    const out: Record<string, unknown> = {};
    if (entry.filter !== undefined) out.filter = entry.filter;
    out.value = setting(entry.value, asBoolean);
    return out;
  });
}

function parameters(params: Parameters, booleans: ReadonlySet<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).map(([name, value]) => [name, setting(value, booleans.has(name))]));
}

function modelEntry(m: InputModelDefinition, booleans: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = { model: ref(m.model) };
  if (m.parameters) out.parameters = parameters(m.parameters, booleans);
  return out;
}

function source(s: InputSliceDefinition, booleans: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = { model: ref(s.model), layer_range: [...s.layer_range] };
  if (s.parameters) out.parameters = parameters(s.parameters, booleans);
  return out;
}

function slice(s: OutputSliceDefinition, booleans: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = { sources: s.sources.map((x) => source(x, booleans)) };
  if (s.base_model) out.base_model = ref(s.base_model);
  if (s.parameters) out.parameters = parameters(s.parameters, booleans);
  if (s.residual_weight !== undefined) out.residual_weight = s.residual_weight;
  return out;
}

function module(m: OutputModuleDefinition, booleans: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (m.models) out.models = m.models.map((x) => modelEntry(x, booleans));
  if (m.slices) out.slices = m.slices.map((x) => slice(x, booleans));
  if (m.parameters) out.parameters = parameters(m.parameters, booleans);
  return out;
}

function tokenizerSource(value: 'union' | 'base' | ModelReference): unknown {
  return typeof value === 'string' ? value : ref(value);
}

function tokenSource(value: TokenSource): unknown {
  if (value.kind === 'zero') return { kind: 'zero' };
  if (value.kind === 'model') return ref(value.model);
  const out: Record<string, unknown> = { kind: 'model_token', model: ref(value.model) };
  if (value.token_id !== undefined) out.token_id = value.token_id;
  if (value.token !== undefined) out.token = value.token;
  return out;
}

function tokenizer(value: TokenizerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { source: tokenizerSource(value.source) };
  if (value.tokens) {
    out.tokens = Object.fromEntries(
      Object.entries(value.tokens).map(([token, entry]) => {
        const e: Record<string, unknown> = {};
        if (entry.source) e.source = tokenSource(entry.source);
        if (entry.force !== undefined) e.force = entry.force;
        return [token, e];
      }),
    );
  }
  if (value.pad_to_multiple_of !== undefined) out.pad_to_multiple_of = value.pad_to_multiple_of;
  return out;
}

