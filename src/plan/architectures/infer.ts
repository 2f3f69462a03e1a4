import type { ArchitectureDefinition, WeightInfo } from './types';

// docs/architectures.md §2: the first `.N.` of a name is its layer index; what precedes it is the layer prefix.
const LAYER_INDEX = /\.(\d+)\./;

/** Name segments of input embeddings (go before the layers) and output heads (after). */
const INPUT_EMBED_SEGMENTS = new Set(['embed_tokens', 'wte', 'embed_in', 'word_embeddings']);
const OUTPUT_EMBED_SEGMENTS = new Set(['lm_head', 'embed_out']);
/** Other loose tensors that belong before the first layer (positional tables and the like). */
const PRE_SEGMENT = /embed|^wpe$/;

export interface InferOptions {
  /** Recorded as the definition's `model_type` (mergekit leaves it empty). */
  readonly modelType?: string;
  readonly architectures?: readonly string[];
}

/**
 * Builds an architecture from the tensor names of every model in a merge (docs/architectures.md §2), for models
 * without a JSON definition. Differences from mergekit, which cannot see configs or
 * transformers' module tree here:
 *  - `is_embed` is decided by name: a path segment `embed_tokens`, `wte`, `embed_in`,
 *    `word_embeddings`, `lm_head` or `embed_out`;
 *  - an output head (`lm_head`, `embed_out`) gets `tied_names` = the input embedding, so a mix
 *    of tied and untied models still merges (mergekit learns this from transformers);
 *  - loose tensors are split: embeddings and other `*embed*` / `wpe` tables before the layers,
 *    the rest (final norm, heads) after; each group and the layer templates are sorted by name.
 * Only checkpoints with one stack of numbered layers are supported.
 */
export function inferArchitecture(
  modelTensorNames: readonly (readonly string[])[],
  options: InferOptions = {},
): ArchitectureDefinition {
  if (modelTensorNames.length === 0) throw new Error('Cannot infer an architecture without any model');
  const modelSets = modelTensorNames.map((names) => new Set(names));
  const allNames = new Set<string>();
  for (const names of modelSets) for (const n of names) allNames.add(n);
  if (allNames.size === 0) throw new Error('Cannot infer an architecture: the models contain no tensors');

  const prefixes = new Set<string>();
  let layerCount = 0;
  const templates = new Set<string>();
  const loose: string[] = [];
  for (const name of allNames) {
    const m = LAYER_INDEX.exec(name);
    if (!m) {
      loose.push(name);
      continue;
    }
    prefixes.add(name.slice(0, m.index));
    layerCount = Math.max(layerCount, Number(m[1]) + 1);
    templates.add(name.slice(0, m.index) + '.${layer_index}.' + name.slice(m.index + m[0].length));
  }
  if (prefixes.size > 1) {
    throw new Error(
      `Cannot infer the architecture: the tensors have ${prefixes.size} stacks of numbered layers ` +
        `(${[...prefixes].sort().map((p) => JSON.stringify(p)).join(', ')}); models with several ` +
        'layer stacks (e.g. vision + text) are not supported yet without a known architecture',
    );
  }

  const presentInAll = (name: string): boolean => modelSets.every((s) => s.has(name));
  const inputEmbeds = loose.filter((n) => hasSegment(n, INPUT_EMBED_SEGMENTS)).sort();

  const looseWeight = (name: string): WeightInfo => {
    const isOutputHead = hasSegment(name, OUTPUT_EMBED_SEGMENTS);
    const tied = isOutputHead && inputEmbeds.length > 0 ? { tied_names: [inputEmbeds[0]] } : {};
    return {
      name,
      ...(isOutputHead || hasSegment(name, INPUT_EMBED_SEGMENTS) ? { is_embed: true } : {}),
      ...(presentInAll(name) ? {} : { optional: true }),
      ...tied,
    };
  };
  const isPre = (name: string): boolean =>
    !hasSegment(name, OUTPUT_EMBED_SEGMENTS) &&
    (hasSegment(name, INPUT_EMBED_SEGMENTS) || name.split('.').some((seg) => PRE_SEGMENT.test(seg)));

  const sortedLoose = [...loose].sort();
  const layerWeights: WeightInfo[] = [...templates].sort().map((template) => {
    // Optional unless every model has it in every layer (mergekit checks all layers).
    let all = true;
    for (let i = 0; i < layerCount && all; i++) all = presentInAll(template.replace('${layer_index}', String(i)));
    return {
      name: template,
      ...(hasSegment(template, INPUT_EMBED_SEGMENTS) || hasSegment(template, OUTPUT_EMBED_SEGMENTS)
        ? { is_embed: true }
        : {}),
      ...(all ? {} : { optional: true }),
    };
  });

  return {
    model_type: options.modelType ?? '',
    architectures: options.architectures ?? [],
    pre_weights: sortedLoose.filter(isPre).map(looseWeight),
    layer_templates: { weights: layerWeights },
    post_weights: sortedLoose.filter((n) => !isPre(n)).map(looseWeight),
    override_num_layers: layerCount,
  };
}

function hasSegment(name: string, segments: ReadonlySet<string>): boolean {
  return name.split('.').some((seg) => segments.has(seg));
}
