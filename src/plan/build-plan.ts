import { configToYaml, formatModelReference, layerT, resolveParameter, toOutputSlices } from '../config';
import type { MergeConfig, ModelReference, OutputSliceDefinition, Parameters } from '../config/types';
import { findMethod, type MergeMethod } from '../methods';
import { buildShardIndex, DEFAULT_SHARD_SIZE, dtypeSize, isFloatDtype, layoutShards, safetensorsDtypeFromConfig, untrustedText } from '../storage';
import type { SafetensorsDtype, TensorInfo } from '../storage/types';
import {
  architectureWeights,
  findArchitecture,
  inferArchitecture,
  numLayers,
  type ArchitectureDefinition,
  type WeightInfo,
} from './architectures';
import { findTensor, hasOwnTensor } from './find-tensor';
import { renderModelCard } from './model-card';
import type { ModelMetadata } from './model-metadata';
import { configValue, outputModelConfig, vocabSizeKey } from './output-config';
import { planEmbeddingAlignment, planTokenizer, TokenizerConfigError, type TokenizerPlan } from './tokenizer-plan';
import type { EmbeddingAlignment } from '../tokenizer';
import type { FileToCopy, MergePlan, TensorAdapter, TensorInput, TensorJob } from './types';
import { adapterInput, planAdapters, type AdapterTargets } from './adapter-plan';
import { PlanError } from './plan-error';

export { PlanError };

export interface PlanOptions {
  /** Maximum bytes of tensor data per output shard (mergekit `--out-shard-size`, default 5B). */
  readonly outShardSize?: number;
  /** Merge models of different architectures anyway (mergekit `--allow-crimes`). */
  readonly allowCrimes?: boolean;
  readonly copyTokenizer?: boolean;
  readonly writeModelCard?: boolean;
  /** Seed of random methods; recorded in the plan (the caller picks one when the user gave none). */
  readonly randomSeed?: number;
  /** Title of the model card (mergekit uses the output folder's name). */
  readonly outputName?: string;
  /** The YAML exactly as the user wrote it, for mergekit_config.yml and the model card. */
  readonly configText?: string;
  /** The Hub the models came from: the model card links to them there (default https://huggingface.co). */
  readonly hubUrl?: string;
}


/** Every model the config refers to, in order of first mention (mergekit picks a random order). */
export function referencedModels(config: MergeConfig): ModelReference[] {
  const refs: ModelReference[] = [];
  const seen = new Set<string>();
  const add = (ref: ModelReference | undefined): void => {
    if (!ref) return;
    const key = formatModelReference(ref);
    if (!seen.has(key)) {
      seen.add(key);
      refs.push(ref);
    }
  };
  for (const m of config.models ?? []) add(m.model);
  for (const s of config.slices ?? []) {
    for (const src of s.sources) add(src.model);
    add(s.base_model);
  }
  add(config.base_model);
  return refs;
}

interface Region {
  readonly slice: OutputSliceDefinition;
  readonly weight: (model: ModelMetadata, source: number) => WeightInfo;
  readonly outWeight: WeightInfo;
  readonly t: number;
}

/**
 * Builds the merge plan from a validated config and the metadata of every referenced model
 * (docs/pipeline.md §1, docs/config.md §3–5, docs/architectures.md). Pure: no I/O, the same inputs give the same plan.
 */
export function buildPlan(config: MergeConfig, models: ReadonlyMap<string, ModelMetadata>, options: PlanOptions = {}): MergePlan {
  const method = findMethod(config.merge_method);
  if (!method) throw new PlanError(`merge method '${config.merge_method}' is not supported by Alloy`, 'merge_method');
  const warnings: string[] = [];
  const refs = referencedModels(config);
  const modelOf = (ref: ModelReference): ModelMetadata => {
    const key = formatModelReference(ref);
    const m = models.get(key);
    if (!m) throw new Error(`internal: no metadata loaded for model ${key}`);
    return m;
  };
  const metas = refs.map(modelOf);

  // Architecture: one definition for all models (unless --allow-crimes), or one inferred from names.
  const defs = metas.map((m) => findArchitecture(m.config));
  let archOf: (m: ModelMetadata) => ArchitectureDefinition;
  if (defs.some((d) => d === null)) {
    const unknown = metas.filter((_, i) => defs[i] === null).map((m) => `${m.key} (${String((m.config.architectures as unknown[])[0])})`);
    warnings.push(`No architecture definition for ${unknown.join(', ')}: tensor names were inferred from the checkpoints.`);
    const inferred = inferArchitecture(metas.map((m) => [...m.tensors.tensors.keys()]));
    archOf = () => inferred;
  } else {
    const distinct = [...new Set(defs)];
    if (distinct.length > 1) {
      const list = metas.map((m, i) => `${m.key}: ${defs[i]!.architectures[0]}`).join(', ');
      if (!options.allowCrimes) {
        throw new PlanError(
          `the models have different architectures (${list}). Merging them rarely works; ` +
            'pass --allow-crimes to try anyway (it skips this check only, shapes must still match).',
        );
      }
      warnings.push(`Merging different architectures because of --allow-crimes: ${list}.`);
    }
    archOf = (m) => defs[metas.indexOf(m)]!;
  }
  const layerCounts = new Map<ModelMetadata, number>();
  const layersOf = (m: ModelMetadata): number => {
    let count = layerCounts.get(m);
    if (count === undefined) {
      count = checkedLayerCount(m, numLayers(m.config, archOf(m)));
      layerCounts.set(m, count);
    }
    return count;
  };
  // A model's tensor names are expanded once (not once per output tensor).
  const weightsCache = new Map<ModelMetadata, ReturnType<typeof architectureWeights>>();
  const weightsOf = (m: ModelMetadata) => {
    let weights = weightsCache.get(m);
    if (!weights) {
      weights = architectureWeights(archOf(m), layersOf(m));
      weightsCache.set(m, weights);
    }
    return weights;
  };

  // Every count the config gives is checked against the models before anything is sized by it.
  checkLayerRanges(config, (ref) => ({ key: formatModelReference(ref), layers: layersOf(modelOf(ref)) }));
  const slices = toOutputSlices(config, (ref) => layersOf(modelOf(ref)));
  const baseRef = config.base_model;
  const donor = baseRef ? modelOf(baseRef) : metas[0];
  const outArch = archOf(donor);
  const totalLayers = slices.reduce((s, sl) => s + (sl.sources[0].layer_range[1] - sl.sources[0].layer_range[0]), 0);
  const outWeights = architectureWeights(outArch, config.slices ? totalLayers : layersOf(donor));
  const tokenizer = located(() =>
    planTokenizer(config, metas, donor, (m) => vocabSizeOf(m, archOf(m)), options.copyTokenizer !== false, warnings),
  );

  // The regions of the output in mergekit's order: pre weights from the first slice, every
  // slice's layers, post weights from the last slice.
  const regions: Region[] = [];
  if (slices.length > 0) {
    const preSlice = slices[0];
    const postSlice = slices[slices.length - 1];
    outWeights.pre.forEach((w, i) =>
      regions.push({ slice: preSlice, outWeight: w, t: 0, weight: (m) => weightsOf(m).pre[i] }),
    );
    let outLayer = 0;
    for (const slice of slices) {
      const count = slice.sources[0].layer_range[1] - slice.sources[0].layer_range[0];
      for (let k = 0; k < count; k++, outLayer++) {
        const t = layerT(k, count);
        outWeights.layers[outLayer].forEach((w, i) =>
          regions.push({
            slice,
            outWeight: w,
            t,
            weight: (m, source) => {
              const layer = slice.sources[source].layer_range[0] + k;
              const layers = weightsOf(m).layers;
              if (layer >= layers.length) {
                throw new PlanError(`layer ${layer} does not exist in model ${m.key}, which has ${layers.length} layers`);
              }
              return layers[layer][i];
            },
          }),
        );
      }
    }
    outWeights.post.forEach((w, i) =>
      regions.push({ slice: postSlice, outWeight: w, t: 0, weight: (m) => weightsOf(m).post[i] }),
    );
  }

  const adapters = planAdapters(config, refs, modelOf, warnings, (message, yamlPath) => new PlanError(message, yamlPath));
  const jobs: TensorJob[] = [];
  for (const region of regions) {
    const job = planTensor(config, method, region, modelOf, warnings, tokenizer, options.allowCrimes === true, adapters);
    if (job) jobs.push(job);
  }
  if (jobs.length === 0) throw new PlanError('the merge produces no tensors: check the slices and layer ranges', 'slices');

  // Output files.
  const shardSize = options.outShardSize ?? DEFAULT_SHARD_SIZE;
  const shards = layoutShards(jobs.map((j) => ({ name: j.name, byteLength: j.byteLength })), shardSize);
  const totalOutputBytes = jobs.reduce((s, j) => s + j.byteLength, 0);
  const textFiles: Record<string, string> = {};
  const outConfig = outputModelConfig(donor.config, config, outArch, config.slices ? totalLayers : undefined, tokenizer.vocabulary?.paddedSize);
  textFiles['config.json'] = JSON.stringify(outConfig, null, 2) + '\n';
  if (shards.length > 1) textFiles['model.safetensors.index.json'] = buildShardIndex(shards, totalOutputBytes);
  const configYaml = options.configText ?? configToYaml(config);
  if (options.writeModelCard !== false) {
    textFiles['mergekit_config.yml'] = configYaml;
    textFiles['README.md'] = renderModelCard({
      title: options.outputName ?? 'merged-model',
      method,
      base: baseRef ? formatModelReference(baseRef) : undefined,
      models: metas.map((m) => ({ key: m.key, hubRepo: m.hubRepo })),
      configYaml,
      randomSeed: method.drawsRandomNumbers ? options.randomSeed : undefined,
      ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
    });
  }
  Object.assign(textFiles, tokenizer.textFiles);
  const copyFiles: FileToCopy[] = tokenizer.copyFiles;
  warnTiedEmbeddings(jobs, outConfig, donor, warnings);

  return {
    method: method.name,
    models: metas.map((m) => ({
      key: m.key,
      files: m.tensors.files,
      architecture: String((m.config.architectures as unknown[])[0]),
      numLayers: layersOf(m),
    })),
    jobs,
    shards,
    textFiles,
    copyFiles,
    warnings,
    ...(tokenizer.summary ? { tokenizer: tokenizer.summary } : {}),
    randomSeed: options.randomSeed ?? 0,
    totalInputBytes: jobs.reduce((s, j) => s + j.inputs.reduce((a, i) => a + i.tensor.byteLength, 0), 0),
    totalOutputBytes,
  };
}

/**
 * A layer count from config.json, bounded by the checkpoint: every layer has tensors, so a model
 * cannot have more layers than tensors (a hostile or mismatched config.json saying 100,000,000
 * layers would otherwise size every list the planner builds).
 */
function checkedLayerCount(m: ModelMetadata, count: number): number {
  const tensors = m.tensors.tensors.size;
  if (count > tensors) {
    throw new PlanError(
      `config.json of model ${untrustedText(m.key)} says it has ${count} layers, but its weights hold only ${tensors} tensors: ` +
        'the config.json does not belong to these weights; use the model\'s own config.json',
    );
  }
  return count;
}

/** Each `layer_range` of `slices:` must lie inside its model's layers (docs/config.md §5). */
function checkLayerRanges(config: MergeConfig, modelOf: (ref: ModelReference) => { key: string; layers: number }): void {
  config.slices?.forEach((slice, i) =>
    slice.sources.forEach((source, j) => {
      const [start, end] = source.layer_range;
      const { key, layers } = modelOf(source.model);
      if (Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= layers) return;
      throw new PlanError(
        `layer_range [${start}, ${end}] is outside model ${untrustedText(key)}, which has ${layers} layers: ` +
          `use 0 ≤ start ≤ end ≤ ${layers} (end is exclusive)`,
        `slices[${i}].sources[${j}].layer_range`,
      );
    }),
  );
}

/** Tokenizer errors become PlanErrors at their YAML path. */
function located<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof TokenizerConfigError) throw new PlanError(error.message, error.yamlPath);
    throw error;
  }
}

/** A model's vocabulary size from its config.json (the architecture's key), if it has one. */
function vocabSizeOf(meta: ModelMetadata, arch: ArchitectureDefinition): number | undefined {
  const value = configValue(meta.config, vocabSizeKey(arch));
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

function planTensor(
  config: MergeConfig,
  method: MergeMethod,
  region: Region,
  modelOf: (ref: ModelReference) => ModelMetadata,
  warnings: string[],
  tokenizer: TokenizerPlan,
  allowCrimes: boolean,
  adapters: AdapterTargets,
): TensorJob | null {
  const { slice, outWeight, t } = region;
  const sources = slice.sources.map((s, index) => ({ source: s, index, meta: modelOf(s.model) }));
  const baseRef = slice.base_model ?? config.base_model;
  const baseKey = baseRef ? formatModelReference(baseRef) : undefined;
  const name = outWeight.name;

  // Optional weights that no model has are skipped; models lacking an optional weight drop out.
  const present = sources.filter((s) => hasOwnTensor(s.meta, region.weight(s.meta, s.index)));
  if (present.length === 0 && outWeight.optional) return null;
  const inputs: { meta: ModelMetadata; tensor: TensorInfo; params: Parameters | undefined; inputName: string; adapter?: TensorAdapter }[] = [];
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

  // Parameters: per-model from the source's own input tensor name, global from the output name.
  const levelsTop = [config.parameters];
  const globalParams = resolveAll(method, 'global', [slice.parameters, ...levelsTop], name, t, 'parameters');
  const modelParams = inputs.map((input) =>
    resolveAll(method, 'model', [input.params, slice.parameters, ...levelsTop], input.inputName, t, `model ${input.meta.key}`, input.meta.key === baseKey && method.base !== 'member'),
  );
  let baseIndex = baseKey ? inputs.findIndex((i) => i.meta.key === baseKey) : -1;
  if (method.base === 'required' && baseIndex < 0) {
    if (!baseKey) throw new PlanError(`${method.name} needs a base_model`, 'base_model');
    if (inputs.length > 0) {
      throw new PlanError(`the base model ${baseKey} has no tensor ${name}, which the other models have; ${method.name} needs it in the base`);
    }
  }

  // Shapes (docs/methods.md §1, §2).
  let keep = inputs.map((_, i) => i);
  let shape = [...inputs[0].tensor.shape];
  const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
  const isEmbed = outWeight.is_embed === true;
  // With a built tokenizer every embedding input is aligned to the output vocabulary (docs/tokenizers.md §3).
  const aligned =
    isEmbed && tokenizer.vocabulary
      ? alignEmbeddingInputs(name, inputs, baseIndex, tokenizer, config.tokenizer ? 'tokenizer' : 'tokenizer_source', warnings)
      : null;
  if (aligned) shape = [aligned.rows, inputs[0].tensor.shape[1]];
  const lora = inputs.find((i) => i.adapter?.kind === 'lora');
  if (aligned && lora) {
    throw new PlanError(
      `${name}: the LoRA adapter ${lora.adapter!.adapter} of ${lora.meta.key} changes this embedding, which is aligned to a new vocabulary; ` +
        'Alloy cannot apply an embedding LoRA and align the vocabulary in one merge yet: leave out tokenizer_source/tokenizer, or merge the adapter first',
    );
  }
  const allSame = aligned !== null || inputs.every((i) => same(i.tensor.shape, shape));
  if (!allSame) {
    const shapes = inputs.map((i) => `${i.meta.key} [${i.tensor.shape.join(', ')}]`).join(', ');
    const all2d = inputs.every((i) => i.tensor.shape.length === 2);
    if (method.shapes === 'rectify' && isEmbed && all2d) {
      shape = [Math.min(...inputs.map((i) => i.tensor.shape[0])), Math.min(...inputs.map((i) => i.tensor.shape[1]))];
      warnings.push(`${name}: embedding sizes differ (${shapes}); every input is cut to [${shape.join(', ')}]. ${VOCAB_MISMATCH}`);
    } else if (method.shapes === 'taskVectors' && baseIndex >= 0) {
      shape = [...inputs[baseIndex].tensor.shape];
      keep = keep.filter((i) => {
        const s = inputs[i].tensor.shape;
        if (same(s, shape)) return true;
        if (isEmbed && s.length === 2 && shape.length === 2 && s[0] >= shape[0] && s[1] >= shape[1]) {
          warnings.push(`${name}: model ${inputs[i].meta.key} [${s.join(', ')}] is cut to the base's [${shape.join(', ')}]. ${VOCAB_MISMATCH}`);
          return true;
        }
        if (isEmbed) {
          throw new PlanError(`${name}: model ${inputs[i].meta.key} has a smaller embedding [${s.join(', ')}] than the base [${shape.join(', ')}]`);
        }
        // mergekit skips such a model with a warning; it is almost always the wrong model, so that
        // takes --allow-crimes.
        if (!allowCrimes) {
          throw new PlanError(
            `tensor ${name} of model ${untrustedText(inputs[i].meta.key)} has shape [${s.join(', ')}], but the base model ` +
              `${untrustedText(inputs[baseIndex].meta.key)} has [${shape.join(', ')}]: the model is probably not a fine-tune of the base. ` +
              'Check the models; pass --allow-crimes to merge anyway, leaving that model out of this tensor (as mergekit does).',
          );
        }
        warnings.push(`${name}: skipping model ${inputs[i].meta.key} because its shape [${s.join(', ')}] differs from the base [${shape.join(', ')}].`);
        return false;
      });
    } else {
      throw new PlanError(`tensor size mismatch for ${name}: ${shapes}`);
    }
  }
  const kept = keep.map((i) => inputs[i]);
  if (baseIndex >= 0) baseIndex = keep.indexOf(baseIndex);
  if (method.maxInputs !== undefined && kept.length > method.maxInputs) {
    throw new PlanError(
      `${method.name} merges at most ${method.maxInputs} models per tensor, but ${name} has ${kept.length} (${kept.map((k) => k.meta.key).join(', ')})`,
    );
  }
  // Too few models have this tensor (a lone one is copied by every method): an optional weight is
  // left out of the output, as mergekit does (docs/methods.md §12); otherwise the merge cannot run.
  if (method.minInputs !== undefined && kept.length > 1 && kept.length < method.minInputs) {
    const have = `${kept.length} (${kept.map((k) => k.meta.key).join(', ')})`;
    if (outWeight.optional) {
      warnings.push(`${name}: left out of the output, because ${method.name} needs ${method.minInputs} models per tensor and only ${have} have it.`);
      return null;
    }
    throw new PlanError(`${method.name} needs at least ${method.minInputs} models per tensor, but only ${have} have ${name}`);
  }

  // Dtypes: non-float tensors are copied from the base (or first) model, never computed.
  const first = kept[baseIndex >= 0 ? baseIndex : 0];
  const forced = outWeight.force_dtype ? safetensorsDtypeFromConfig(outWeight.force_dtype) : undefined;
  let dtype: SafetensorsDtype =
    forced ??
    (config.out_dtype ? safetensorsDtypeFromConfig(config.out_dtype) : undefined) ??
    (config.dtype ? safetensorsDtypeFromConfig(config.dtype) : undefined) ??
    first.tensor.dtype;
  let jobMethod = method.name;
  let jobInputs = kept;
  let jobBase = baseIndex;
  if (!kept.every((k) => isFloatDtype(k.tensor.dtype)) || !isFloatDtype(dtype)) {
    jobMethod = 'passthrough';
    jobInputs = [first];
    jobBase = -1;
    dtype = first.tensor.dtype;
    if (kept.length > 1) warnings.push(`${name}: non-float tensor (${first.tensor.dtype}) copied from ${first.meta.key}, not merged.`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  if (aligned && (jobInputs.length !== inputs.length || jobInputs.some((k, i) => k !== inputs[i]))) {
    throw new Error(`internal: ${name}: aligned embedding inputs were dropped`);
  }
  const inputsOut: TensorInput[] = jobInputs.map((k) => ({
    model: k.meta.key,
    tensor: k.tensor,
    params: jobMethod === method.name ? modelParams[inputs.indexOf(k)] : {},
    ...(aligned ? { rowMap: aligned.own[inputs.indexOf(k)] } : {}),
    ...(k.adapter ? { adapter: k.adapter } : {}),
  }));
  return {
    name,
    shape,
    dtype,
    method: jobMethod,
    inputs: inputsOut,
    baseIndex: jobBase,
    params: jobMethod === method.name ? globalParams : {},
    isEmbed,
    byteLength: numel * dtypeSize(dtype),
    ...(aligned ? { alignment: { tokens: aligned.tokens, defaults: aligned.defaults } } : {}),
  };
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
  const result = located(() =>
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

function warnTiedEmbeddings(jobs: TensorJob[], outConfig: Record<string, unknown>, donor: ModelMetadata, warnings: string[]): void {
  const head = jobs.find((j) => j.name === 'lm_head.weight');
  if (head && outConfig.tie_word_embeddings === true) {
    warnings.push(
      `The output has a merged lm_head.weight but its config (from ${donor.key}) says tie_word_embeddings: true, ` +
        'so transformers will ignore the merged lm_head and use the embeddings instead.',
    );
  }
}
