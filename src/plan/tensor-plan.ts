import { formatModelReference, resolveParameter } from '../config';
import type { MergeConfig, ModelReference, OutputSliceDefinition, Parameters } from '../config/types';
import type { MergeMethod } from '../methods';
import { dtypeSize, isFloatDtype, safetensorsDtypeFromConfig, untrustedText } from '../storage';
import type { SafetensorsDtype, TensorInfo } from '../storage/types';
import type { EmbeddingAlignment } from '../tokenizer';
import { adapterInput, type AdapterTargets } from './adapter-plan';
import type { WeightInfo } from './architectures';
import { findTensor, hasOwnTensor } from './find-tensor';
import type { ModelMetadata } from './model-metadata';
import { PlanError } from './plan-error';
import { asPlanErrors, planEmbeddingAlignment, type TokenizerPlan } from './tokenizer-plan';
import type { TensorAdapter, TensorInput, TensorJob } from './types';

/** One output tensor of one output slice, and where each source model holds it. */
export interface Region {
  readonly slice: OutputSliceDefinition;
  readonly weight: (model: ModelMetadata, source: number) => WeightInfo;
  readonly outWeight: WeightInfo;
  readonly t: number;
}

/** What a plan of one tensor depends on besides its region. */
export interface TensorPlanContext {
  readonly config: MergeConfig;
  readonly method: MergeMethod;
  readonly modelOf: (ref: ModelReference) => ModelMetadata;
  readonly tokenizer: TokenizerPlan;
  readonly allowCrimes: boolean;
  readonly adapters: AdapterTargets;
  /** Collects the plan's warnings (each once). */
  readonly warnings: string[];
}

/** One source model's tensor for an output tensor. */
interface SourceTensor {
  readonly meta: ModelMetadata;
  readonly tensor: TensorInfo;
  readonly params: Parameters | undefined;
  /** The tensor's name in its own model, which per-model parameter filters match. */
  readonly inputName: string;
  readonly adapter?: TensorAdapter;
}

/** The shape of an output tensor and the inputs (indices into its sources) that make it. */
interface TensorShape {
  readonly shape: number[];
  readonly keep: number[];
  readonly aligned: EmbeddingAlignment | null;
}

/**
 * The job of one output tensor: its source tensors, parameters, shape and dtype, checked against
 * what the method accepts; null when the tensor is left out of the output.
 */
export function planTensor(region: Region, ctx: TensorPlanContext): TensorJob | null {
  const { config, method } = ctx;
  const { slice, outWeight, t } = region;
  const name = outWeight.name;
  const baseRef = slice.base_model ?? config.base_model;
  const baseKey = baseRef ? formatModelReference(baseRef) : undefined;

  const inputs = sourceTensors(region, ctx);
  if (inputs === null) return null;
  // Parameters: per-model from the source's own input tensor name, global from the output name.
  const levelsTop = [config.parameters];
  const globalParams = resolveAll(method, 'global', [slice.parameters, ...levelsTop], name, t, 'parameters');
  const modelParams = inputs.map((input) =>
    resolveAll(method, 'model', [input.params, slice.parameters, ...levelsTop], input.inputName, t, `model ${input.meta.key}`, input.meta.key === baseKey && method.base !== 'member'),
  );
  const baseIndex = baseIndexOf(method, baseKey, inputs, name);
  const { shape, keep, aligned } = tensorShape(outWeight, inputs, baseIndex, ctx);
  const kept = keep.map((i) => inputs[i]);
  if (!acceptsInputCount(method, outWeight, kept, ctx.warnings)) return null;
  const job = computeOrCopy(outWeight, kept, baseIndex >= 0 ? keep.indexOf(baseIndex) : -1, ctx);
  if (aligned && (job.inputs.length !== inputs.length || job.inputs.some((k, i) => k !== inputs[i]))) {
    throw new Error(`internal: ${name}: aligned embedding inputs were dropped`);
  }
  const merged = job.method === method.name;
  const numel = shape.reduce((a, b) => a * b, 1);
  return {
    name,
    shape,
    dtype: job.dtype,
    method: job.method,
    inputs: job.inputs.map(
      (k): TensorInput => ({
        model: k.meta.key,
        tensor: k.tensor,
        params: merged ? modelParams[inputs.indexOf(k)] : {},
        ...(aligned ? { rowMap: aligned.own[inputs.indexOf(k)] } : {}),
        ...(k.adapter ? { adapter: k.adapter } : {}),
      }),
    ),
    baseIndex: job.baseIndex,
    params: merged ? globalParams : {},
    isEmbed: outWeight.is_embed === true,
    byteLength: numel * dtypeSize(job.dtype),
    ...(aligned ? { alignment: { tokens: aligned.tokens, defaults: aligned.defaults } } : {}),
  };
}

/**
 * Each source model's tensor. Optional weights that no model has are skipped (null); models
 * lacking an optional weight drop out; a missing required weight fails the plan.
 */
function sourceTensors(region: Region, { modelOf, adapters }: TensorPlanContext): SourceTensor[] | null {
  const { slice, outWeight } = region;
  const sources = slice.sources.map((s, index) => ({ source: s, index, meta: modelOf(s.model) }));
  const present = sources.filter((s) => hasOwnTensor(s.meta, region.weight(s.meta, s.index)));
  if (present.length === 0 && outWeight.optional) return null;
  const inputs: SourceTensor[] = [];
  for (const s of sources) {
    const w = region.weight(s.meta, s.index);
    const tensor = findTensor(s.meta, w);
    if (!tensor) {
      if (w.optional || outWeight.optional) continue;
      throw new PlanError(
        `tensor ${w.name} is required but not present in model ${s.meta.key}. The models may use different ` +
          'tensor names or layouts; check that they share one architecture.',
      );
    }
    // A model+lora input: a modules_to_save copy replaces the tensor; a LoRA is applied by the engine.
    const { adapter, replacement } = adapterInput(adapters, s.meta.key, tensor.name);
    inputs.push({ meta: s.meta, tensor: replacement ?? tensor, params: s.source.parameters, inputName: w.name, ...(adapter ? { adapter } : {}) });
  }
  return inputs;
}

/** The base model's index among the inputs (-1: none); a method that needs a base fails without it. */
function baseIndexOf(method: MergeMethod, baseKey: string | undefined, inputs: readonly SourceTensor[], name: string): number {
  const baseIndex = baseKey ? inputs.findIndex((i) => i.meta.key === baseKey) : -1;
  if (method.base === 'required' && baseIndex < 0) {
    if (!baseKey) throw new PlanError(`${method.name} needs a base_model`, 'base_model');
    if (inputs.length > 0) {
      throw new PlanError(`the base model ${baseKey} has no tensor ${name}, which the other models have; ${method.name} needs it in the base`);
    }
  }
  return baseIndex;
}

/**
 * The output shape (docs/methods.md §1, §2): the inputs' common shape, an embedding aligned to
 * the output vocabulary, or differing shapes reconciled as the method allows.
 */
function tensorShape(outWeight: WeightInfo, inputs: readonly SourceTensor[], baseIndex: number, ctx: TensorPlanContext): TensorShape {
  const name = outWeight.name;
  const all = inputs.map((_, i) => i);
  const isEmbed = outWeight.is_embed === true;
  // With a built tokenizer every embedding input is aligned to the output vocabulary (docs/tokenizers.md §3).
  if (isEmbed && ctx.tokenizer.vocabulary) {
    const aligned = alignEmbeddingInputs(name, inputs, baseIndex, ctx.tokenizer, ctx.config.tokenizer ? 'tokenizer' : 'tokenizer_source', ctx.warnings);
    const lora = inputs.find((i) => i.adapter?.kind === 'lora');
    if (lora) {
      throw new PlanError(
        `${name}: the LoRA adapter ${lora.adapter!.adapter} of ${lora.meta.key} changes this embedding, which is aligned to a new vocabulary; ` +
          'Alloy cannot apply an embedding LoRA and align the vocabulary in one merge yet: leave out tokenizer_source/tokenizer, or merge the adapter first',
      );
    }
    return { shape: [aligned.rows, inputs[0].tensor.shape[1]], keep: all, aligned };
  }
  const shape = [...inputs[0].tensor.shape];
  if (inputs.every((i) => sameShape(i.tensor.shape, shape))) return { shape, keep: all, aligned: null };
  const shapes = inputs.map((i) => `${i.meta.key} [${i.tensor.shape.join(', ')}]`).join(', ');
  if (ctx.method.shapes === 'rectify' && isEmbed && inputs.every((i) => i.tensor.shape.length === 2)) {
    const cut = [Math.min(...inputs.map((i) => i.tensor.shape[0])), Math.min(...inputs.map((i) => i.tensor.shape[1]))];
    ctx.warnings.push(`${name}: embedding sizes differ (${shapes}); every input is cut to [${cut.join(', ')}]. ${VOCAB_MISMATCH}`);
    return { shape: cut, keep: all, aligned: null };
  }
  if (ctx.method.shapes === 'taskVectors' && baseIndex >= 0) {
    const base = inputs[baseIndex];
    return { shape: [...base.tensor.shape], keep: all.filter((i) => fitsBase(inputs[i], base, isEmbed, name, ctx)), aligned: null };
  }
  throw new PlanError(`tensor size mismatch for ${name}: ${shapes}`);
}

/**
 * Task-vector methods with inputs of different shapes: a larger embedding is cut to the base's;
 * any other mismatch fails, or with --allow-crimes leaves the model out of this tensor (false).
 */
function fitsBase(input: SourceTensor, base: SourceTensor, isEmbed: boolean, name: string, { allowCrimes, warnings }: TensorPlanContext): boolean {
  const s = input.tensor.shape;
  const shape = base.tensor.shape;
  if (sameShape(s, shape)) return true;
  if (isEmbed && s.length === 2 && shape.length === 2 && s[0] >= shape[0] && s[1] >= shape[1]) {
    warnings.push(`${name}: model ${input.meta.key} [${s.join(', ')}] is cut to the base's [${shape.join(', ')}]. ${VOCAB_MISMATCH}`);
    return true;
  }
  if (isEmbed) {
    throw new PlanError(`${name}: model ${input.meta.key} has a smaller embedding [${s.join(', ')}] than the base [${shape.join(', ')}]`);
  }
  // mergekit skips such a model with a warning; it is almost always the wrong model, so that
  // takes --allow-crimes.
  if (!allowCrimes) {
    throw new PlanError(
      `tensor ${name} of model ${untrustedText(input.meta.key)} has shape [${s.join(', ')}], but the base model ` +
        `${untrustedText(base.meta.key)} has [${shape.join(', ')}]: the model is probably not a fine-tune of the base. ` +
        'Check the models; pass --allow-crimes to merge anyway, leaving that model out of this tensor (as mergekit does).',
    );
  }
  warnings.push(`${name}: skipping model ${input.meta.key} because its shape [${s.join(', ')}] differs from the base [${shape.join(', ')}].`);
  return false;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Whether the method takes this many inputs: too many fail the plan. Too few models have this
 * tensor (a lone one is copied by every method): an optional weight is left out of the output
 * (false), as mergekit does (docs/methods.md §12); otherwise the merge cannot run.
 */
function acceptsInputCount(method: MergeMethod, outWeight: WeightInfo, kept: readonly SourceTensor[], warnings: string[]): boolean {
  const name = outWeight.name;
  if (method.maxInputs !== undefined && kept.length > method.maxInputs) {
    throw new PlanError(
      `${method.name} merges at most ${method.maxInputs} models per tensor, but ${name} has ${kept.length} (${kept.map((k) => k.meta.key).join(', ')})`,
    );
  }
  if (method.minInputs !== undefined && kept.length > 1 && kept.length < method.minInputs) {
    const have = `${kept.length} (${kept.map((k) => k.meta.key).join(', ')})`;
    if (outWeight.optional) {
      warnings.push(`${name}: left out of the output, because ${method.name} needs ${method.minInputs} models per tensor and only ${have} have it.`);
      return false;
    }
    throw new PlanError(`${method.name} needs at least ${method.minInputs} models per tensor, but only ${have} have ${name}`);
  }
  return true;
}

/**
 * The output dtype (the weight's forced dtype, else the config's, else the base's or first
 * input's) and how the tensor is made: merged by the method, or, when a tensor is not float,
 * copied from the base (or first) model, never computed.
 */
function computeOrCopy(
  outWeight: WeightInfo,
  kept: readonly SourceTensor[],
  baseIndex: number,
  { config, method, warnings }: TensorPlanContext,
): { dtype: SafetensorsDtype; method: string; inputs: readonly SourceTensor[]; baseIndex: number } {
  const first = kept[baseIndex >= 0 ? baseIndex : 0];
  const dtype: SafetensorsDtype =
    (outWeight.force_dtype ? safetensorsDtypeFromConfig(outWeight.force_dtype) : undefined) ??
    (config.out_dtype ? safetensorsDtypeFromConfig(config.out_dtype) : undefined) ??
    (config.dtype ? safetensorsDtypeFromConfig(config.dtype) : undefined) ??
    first.tensor.dtype;
  if (kept.every((k) => isFloatDtype(k.tensor.dtype)) && isFloatDtype(dtype)) return { dtype, method: method.name, inputs: kept, baseIndex };
  if (kept.length > 1) warnings.push(`${outWeight.name}: non-float tensor (${first.tensor.dtype}) copied from ${first.meta.key}, not merged.`);
  return { dtype: first.tensor.dtype, method: 'passthrough', inputs: [first], baseIndex: -1 };
}

const VOCAB_MISMATCH =
  'The models have different vocabularies, so rows may belong to different tokens (garbled output) and tokens past ' +
  'the cut are lost; set tokenizer_source: union (or base) to merge embeddings token by token.';

/** The inputs of an embedding as aligned matrices in the output vocabulary (docs/tokenizers.md §3). */
function alignEmbeddingInputs(
  name: string,
  inputs: readonly { meta: ModelMetadata; tensor: TensorInfo }[],
  base: number,
  tokenizer: TokenizerPlan,
  yamlPath: string,
  warnings: string[],
): EmbeddingAlignment {
  const width = inputs[0].tensor.shape[1];
  for (const { meta, tensor } of inputs) {
    if (tensor.shape.length !== 2 || !isFloatDtype(tensor.dtype)) {
      throw new PlanError(`${name}: cannot align ${meta.key}'s embedding [${tensor.shape.join(', ')}] ${tensor.dtype} to the new vocabulary: it must be a 2-D float matrix`);
    }
    if (tensor.shape[1] !== width) {
      const shapes = inputs.map((i) => `${i.meta.key} [${i.tensor.shape.join(', ')}]`).join(', ');
      throw new PlanError(`${name}: embedding widths differ (${shapes}); models with different hidden sizes cannot be merged`);
    }
  }
  const result = asPlanErrors(() =>
    planEmbeddingAlignment(tokenizer, inputs.map((i) => ({ model: i.meta.key, rows: i.tensor.shape[0] })), base, yamlPath),
  );
  for (const w of result.warnings) if (!warnings.includes(w)) warnings.push(w);
  return result.alignment;
}

function resolveAll(
  method: MergeMethod,
  scope: 'global' | 'model',
  levels: (Parameters | undefined)[],
  tensorName: string,
  t: number,
  where: string,
  isBase = false,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const decl of method.params) {
    if (decl.scope !== scope) continue;
    const value = resolveParameter(decl.name, levels, tensorName, t);
    if (value !== undefined) out[decl.name] = value;
    else if (decl.default !== undefined) out[decl.name] = decl.default;
    else if (decl.required && !isBase) {
      throw new PlanError(`${method.name} needs parameter '${decl.name}' for ${where} (tensor ${tensorName}); set it in the config`);
    }
  }
  return out;
}
