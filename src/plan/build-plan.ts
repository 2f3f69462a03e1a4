import { configToYaml, formatModelReference, layerT, toOutputSlices } from '../config';
import type { MergeConfig, ModelReference, OutputSliceDefinition } from '../config/types';
import { findMethod, type MergeMethod } from '../methods';
import { buildShardIndex, DEFAULT_SHARD_SIZE, layoutShards, untrustedText } from '../storage';
import { architectureWeights, findArchitecture, inferArchitecture, numLayers, type ArchitectureDefinition, type ArchitectureWeights } from './architectures';
import { renderModelCard } from './model-card';
import type { ModelMetadata } from './model-metadata';
import { configValue, outputModelConfig, vocabSizeKey } from './output-config';
import { asPlanErrors, planTokenizer } from './tokenizer-plan';
import { planTensor, type Region, type TensorPlanContext } from './tensor-plan';
import type { FileToCopy, MergePlan, TensorJob } from './types';
import { planAdapters } from './adapter-plan';
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
  const layouts = new ModelLayouts(chooseArchitecture(metas, options.allowCrimes === true, warnings));

  // Every count the config gives is checked against the models before anything is sized by it.
  checkLayerRanges(config, (ref) => ({ key: formatModelReference(ref), layers: layouts.layers(modelOf(ref)) }));
  const slices = toOutputSlices(config, (ref) => layouts.layers(modelOf(ref)));
  const baseRef = config.base_model;
  const donor = baseRef ? modelOf(baseRef) : metas[0];
  const outArch = layouts.architecture(donor);
  // A `slices:` config sets the output's layer count; a `models:` one keeps the donor's.
  const outLayers = config.slices ? slices.reduce((s, sl) => s + (sl.sources[0].layer_range[1] - sl.sources[0].layer_range[0]), 0) : undefined;
  const outWeights = architectureWeights(outArch, outLayers ?? layouts.layers(donor));
  const tokenizer = asPlanErrors(() =>
    planTokenizer(config, metas, donor, (m) => vocabSizeOf(m, layouts.architecture(m)), options.copyTokenizer !== false, warnings),
  );
  const regions = outputRegions(slices, outWeights, layouts);

  const adapters = planAdapters(config, refs, modelOf, warnings, (message, yamlPath) => new PlanError(message, yamlPath));
  const context: TensorPlanContext = { config, method, modelOf, tokenizer, allowCrimes: options.allowCrimes === true, adapters, warnings };
  const jobs: TensorJob[] = [];
  for (const region of regions) {
    const job = planTensor(region, context);
    if (job) jobs.push(job);
  }
  if (jobs.length === 0) throw new PlanError('the merge produces no tensors: check the slices and layer ranges', 'slices');

  // Output files.
  const shards = layoutShards(jobs.map((j) => ({ name: j.name, byteLength: j.byteLength })), options.outShardSize ?? DEFAULT_SHARD_SIZE);
  const totalOutputBytes = jobs.reduce((s, j) => s + j.byteLength, 0);
  const outConfig = outputModelConfig(donor.config, config, outArch, outLayers, tokenizer.vocabulary?.paddedSize);
  const textFiles: Record<string, string> = { 'config.json': JSON.stringify(outConfig, null, 2) + '\n' };
  if (shards.length > 1) textFiles['model.safetensors.index.json'] = buildShardIndex(shards, totalOutputBytes);
  if (options.writeModelCard !== false) Object.assign(textFiles, modelCardFiles(config, method, metas, options));
  Object.assign(textFiles, tokenizer.textFiles);
  const copyFiles: FileToCopy[] = tokenizer.copyFiles;
  warnTiedEmbeddings(jobs, outConfig, donor, warnings);

  return {
    method: method.name,
    models: metas.map((m) => ({
      key: m.key,
      files: m.tensors.files,
      architecture: String((m.config.architectures as unknown[])[0]),
      numLayers: layouts.layers(m),
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
 * The architecture of each model: one definition for all models (different ones only with
 * --allow-crimes), or, where a model has none, one inferred from the checkpoints' tensor names.
 */
function chooseArchitecture(metas: readonly ModelMetadata[], allowCrimes: boolean, warnings: string[]): (m: ModelMetadata) => ArchitectureDefinition {
  const defs = metas.map((m) => findArchitecture(m.config));
  if (defs.some((d) => d === null)) {
    const unknown = metas.filter((_, i) => defs[i] === null).map((m) => `${m.key} (${String((m.config.architectures as unknown[])[0])})`);
    warnings.push(`No architecture definition for ${unknown.join(', ')}: tensor names were inferred from the checkpoints.`);
    const inferred = inferArchitecture(metas.map((m) => [...m.tensors.tensors.keys()]));
    return () => inferred;
  }
  const distinct = [...new Set(defs)];
  if (distinct.length > 1) {
    const list = metas.map((m, i) => `${m.key}: ${defs[i]!.architectures[0]}`).join(', ');
    if (!allowCrimes) {
      throw new PlanError(
        `the models have different architectures (${list}). Merging them rarely works; ` +
          'pass --allow-crimes to try anyway (it skips this check only, shapes must still match).',
      );
    }
    warnings.push(`Merging different architectures because of --allow-crimes: ${list}.`);
  }
  return (m) => defs[metas.indexOf(m)]!;
}

/** Each model's layer count and tensor names, worked out once per model (not once per output tensor). */
class ModelLayouts {
  private readonly layerCounts = new Map<ModelMetadata, number>();
  private readonly weightLists = new Map<ModelMetadata, ArchitectureWeights>();

  constructor(readonly architecture: (m: ModelMetadata) => ArchitectureDefinition) {}

  layers(m: ModelMetadata): number {
    let count = this.layerCounts.get(m);
    if (count === undefined) {
      count = checkedLayerCount(m, numLayers(m.config, this.architecture(m)));
      this.layerCounts.set(m, count);
    }
    return count;
  }

  weights(m: ModelMetadata): ArchitectureWeights {
    let weights = this.weightLists.get(m);
    if (!weights) {
      weights = architectureWeights(this.architecture(m), this.layers(m));
      this.weightLists.set(m, weights);
    }
    return weights;
  }
}

/**
 * The regions of the output in mergekit's order: pre weights from the first slice, every
 * slice's layers, post weights from the last slice.
 */
function outputRegions(slices: readonly OutputSliceDefinition[], outWeights: ArchitectureWeights, layouts: ModelLayouts): Region[] {
  const regions: Region[] = [];
  if (slices.length === 0) return regions;
  const preSlice = slices[0];
  const postSlice = slices[slices.length - 1];
  outWeights.pre.forEach((w, i) => regions.push({ slice: preSlice, outWeight: w, t: 0, weight: (m) => layouts.weights(m).pre[i] }));
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
            const layers = layouts.weights(m).layers;
            if (layer >= layers.length) {
              throw new PlanError(`layer ${layer} does not exist in model ${m.key}, which has ${layers.length} layers`);
            }
            return layers[layer][i];
          },
        }),
      );
    }
  }
  outWeights.post.forEach((w, i) => regions.push({ slice: postSlice, outWeight: w, t: 0, weight: (m) => layouts.weights(m).post[i] }));
  return regions;
}

/** mergekit_config.yml (the YAML as written) and the model card README.md. */
function modelCardFiles(config: MergeConfig, method: MergeMethod, metas: readonly ModelMetadata[], options: PlanOptions): Record<string, string> {
  const configYaml = options.configText ?? configToYaml(config);
  return {
    'mergekit_config.yml': configYaml,
    'README.md': renderModelCard({
      title: options.outputName ?? 'merged-model',
      method,
      base: config.base_model ? formatModelReference(config.base_model) : undefined,
      models: metas.map((m) => ({ key: m.key, hubRepo: m.hubRepo })),
      configYaml,
      randomSeed: method.drawsRandomNumbers ? options.randomSeed : undefined,
      ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
    }),
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

/** A model's vocabulary size from its config.json (the architecture's key), if it has one. */
function vocabSizeOf(meta: ModelMetadata, arch: ArchitectureDefinition): number | undefined {
  const value = configValue(meta.config, vocabSizeKey(arch));
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
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
