import type { MergeMethod } from '../../methods';

/**
 * The method guide's reasoning, from what `inspectModel` says about the chosen models (before any
 * weight is downloaded): which choices cannot work (compatibility), and which methods fit.
 */

/** The part of a ModelSummary the guide needs. */
export interface ModelFacts {
  readonly key: string;
  readonly architecture: string;
  readonly numLayers: number;
  readonly hiddenSize?: number;
  readonly vocabSize?: number;
  readonly dtype?: string;
  readonly baseModels?: readonly string[];
}

export interface CompatibilityIssue {
  /** The fact that differs; the guide decides on this, the message is for people. */
  readonly kind: ComparedField | 'dtype';
  readonly severity: 'error' | 'warning' | 'info';
  readonly message: string;
  /** The models that differ from the reference (the base, else the first model). */
  readonly models: readonly string[];
}

/** Repo id without revision (`org/name@rev` → `org/name`), lower-cased for comparisons. */
function repoOf(key: string): string {
  return key.split('@')[0].toLowerCase();
}

function describeValues<T>(models: readonly ModelFacts[], get: (m: ModelFacts) => T): string {
  return models.map((m) => `${m.key}: ${String(get(m))}`).join(', ');
}

/**
 * What stands in the way of merging these models tensor by tensor. `reference` is the base model
 * when one is chosen. Different architectures or hidden sizes are errors (no method can combine
 * those weights); different layer counts need slices; vocabulary sizes are reconciled by cutting
 * embeddings or building a tokenizer, which is worth knowing.
 */
export function checkCompatibility(models: readonly ModelFacts[], reference?: string): CompatibilityIssue[] {
  if (models.length < 2) return [];
  const ref = models.find((m) => m.key === reference) ?? models[0];
  const issues: CompatibilityIssue[] = [];
  const differ = <T>(get: (m: ModelFacts) => T) => models.filter((m) => get(m) !== undefined && get(ref) !== undefined && get(m) !== get(ref));

  const arch = differ((m) => m.architecture);
  if (arch.length > 0) {
    issues.push({
      kind: 'architecture',
      severity: 'error',
      models: arch.map((m) => m.key),
      message:
        `Different architectures (${describeValues([ref, ...arch], (m) => m.architecture)}). Their tensors do not correspond, ` +
        'so no merge method can combine them. mergekit\'s "allow crimes" only skips this check; the result is usually broken.',
    });
  }
  const hidden = differ((m) => m.hiddenSize);
  if (hidden.length > 0) {
    issues.push({
      kind: 'hiddenSize',
      severity: 'error',
      models: hidden.map((m) => m.key),
      message:
        `Different hidden sizes (${describeValues([ref, ...hidden], (m) => m.hiddenSize)}): these are different model sizes ` +
        '(e.g. 7B and 13B), whose weight matrices have different shapes. Choose models of the same size.',
    });
  }
  const layers = differ((m) => m.numLayers);
  if (layers.length > 0) {
    issues.push({
      kind: 'numLayers',
      severity: 'warning',
      models: layers.map((m) => m.key),
      message:
        `Different numbers of layers (${describeValues([ref, ...layers], (m) => m.numLayers)}). A plain models: list needs equal ` +
        'depths; use slices to pick matching layer ranges, or stack layers with passthrough (a frankenmerge).',
    });
  }
  const vocab = differ((m) => m.vocabSize);
  if (vocab.length > 0) {
    issues.push({
      kind: 'vocabSize',
      severity: 'warning',
      models: vocab.map((m) => m.key),
      message:
        `Different vocabulary sizes (${describeValues([ref, ...vocab], (m) => m.vocabSize)}). Without a tokenizer setting the ` +
        'embeddings are cut to the smallest size, which drops tokens; set tokenizer source to union (or base) to merge the ' +
        'vocabularies properly.',
    });
  }
  const dtypes = differ((m) => m.dtype);
  if (dtypes.length > 0) {
    issues.push({
      kind: 'dtype',
      severity: 'info',
      models: dtypes.map((m) => m.key),
      message: `The models are stored in different dtypes (${describeValues([ref, ...dtypes], (m) => m.dtype)}); that is fine: Alloy computes in float32 and writes the output dtype.`,
    });
  }
  return issues;
}

/** How the chosen models relate through their model cards' `base_model`. */
export interface Lineage {
  /** A chosen model that every other chosen model names as its base. */
  readonly baseAmongModels?: string;
  /** A base that the other models all name, but that is not among the chosen ones. */
  readonly commonBaseMissing?: string;
}

export function lineage(models: readonly ModelFacts[]): Lineage {
  if (models.length < 2) return {};
  for (const candidate of models) {
    const others = models.filter((m) => m !== candidate);
    if (others.every((m) => (m.baseModels ?? []).some((b) => repoOf(b) === repoOf(candidate.key)))) {
      return { baseAmongModels: candidate.key };
    }
  }
  const [first, ...rest] = models;
  const common = (first.baseModels ?? []).find((b) => rest.every((m) => (m.baseModels ?? []).some((x) => repoOf(x) === repoOf(b))));
  return common ? { commonBaseMissing: common } : {};
}

export interface Recommendation {
  readonly method: string;
  readonly reason: string;
}

export interface Guidance {
  /** A one-line summary of the situation ("Two fine-tunes of one base"). */
  readonly situation: string;
  /** Methods in order of preference, only ones Alloy implements. */
  readonly recommended: readonly Recommendation[];
  /** Extra advice (add the base model, use slices…). */
  readonly notes: readonly string[];
  /** A chosen model that looks like the base of the others (for base_model). */
  readonly suggestedBase?: string;
}

/**
 * Suggests methods for the chosen models. `available` is the list of implemented methods (so the
 * guide never recommends one the engine cannot run, and picks up new ones as they are added).
 */
export function recommendMethods(models: readonly ModelFacts[], available: readonly MergeMethod[]): Guidance {
  const has = new Set(available.map((m) => m.name));
  const pick = (list: Recommendation[]) => list.filter((r) => has.has(r.method));
  const n = models.length;
  if (n === 0) {
    return { situation: 'No models yet', recommended: [], notes: ['Add the models you want to merge: at least two, or one to copy or rescale.'] };
  }
  if (n === 1) {
    return {
      situation: 'One model',
      recommended: pick([{ method: 'passthrough', reason: 'copies the model; with slices it can repeat or drop layers' }]),
      notes: ['Merging needs at least two models: add another fine-tune of the same base (and the base itself for TIES or DARE).'],
    };
  }
  const issues = checkCompatibility(models);
  if (issues.some((i) => i.kind === 'hiddenSize')) {
    return {
      situation: 'Models of different sizes',
      recommended: [],
      notes: ['These models have different widths, so their weights cannot be combined. Pick models of the same size and family.'],
    };
  }
  if (issues.some((i) => i.kind === 'architecture')) {
    return {
      situation: 'Different architectures',
      recommended: [],
      notes: ['Merges combine matching tensors, so all models must share one architecture. Replace the odd ones out.'],
    };
  }
  if (new Set(models.map((m) => m.numLayers)).size > 1) {
    return {
      situation: 'Same family, different depths',
      recommended: pick([
        { method: 'passthrough', reason: 'stack layer ranges of the models into one deeper model (a frankenmerge)' },
        { method: 'linear', reason: 'average matching layer ranges, chosen with slices' },
      ]),
      notes: ['With different layer counts, describe which layers go where with slices (the slice editor below).'],
    };
  }

  const { baseAmongModels, commonBaseMissing } = lineage(models);
  const notes: string[] = [];
  if (baseAmongModels) {
    const tuned = n - 1;
    const recommended: Recommendation[] =
      tuned === 1
        ? [
            { method: 'task_arithmetic', reason: `adds the fine-tune's changes to ${baseAmongModels}, scaled by its weight` },
            { method: 'ties', reason: 'keeps only the strongest changes of the fine-tune' },
            { method: 'slerp', reason: `interpolates between ${baseAmongModels} and the fine-tune` },
          ]
        : [
            { method: 'ties', reason: "keeps each fine-tune's strongest changes and resolves sign conflicts between them" },
            { method: 'dare_ties', reason: 'like TIES with random dropping; good for many fine-tunes with redundant changes' },
            { method: 'task_arithmetic', reason: 'adds up all changes; simple and predictable' },
            { method: 'model_stock', reason: 'averages the fine-tunes and pulls the average towards the base' },
            { method: 'della', reason: 'like DARE TIES, keeping large changes more often' },
            { method: 'linear', reason: 'averages all models, base included' },
          ];
    return {
      situation: `${tuned === 1 ? 'A fine-tune' : `${tuned} fine-tunes`} of ${baseAmongModels}, with the base`,
      recommended: pick(recommended),
      notes,
      suggestedBase: baseAmongModels,
    };
  }
  if (commonBaseMissing) {
    notes.push(
      `All models are fine-tunes of ${commonBaseMissing}. Add it as a model too to use TIES, DARE or task arithmetic, which merge the fine-tunes' changes relative to the base.`,
    );
  } else if (models.every((m) => m.baseModels === undefined)) {
    notes.push('Merges work best between fine-tunes of one base model. Their model cards do not say; check that they share a base.');
  }
  if (n === 2) {
    return {
      situation: commonBaseMissing ? `Two fine-tunes of ${commonBaseMissing}` : 'Two models of the same shape',
      recommended: pick([
        { method: 'slerp', reason: 'interpolates along the arc between the two; a gradient on t can favour one in attention, the other in MLP layers' },
        { method: 'linear', reason: 'a plain weighted average of the two' },
        { method: 'nuslerp', reason: 'SLERP with per-model weights' },
      ]),
      notes,
    };
  }
  return {
    situation: commonBaseMissing ? `${n} fine-tunes of ${commonBaseMissing}` : `${n} models of the same shape`,
    recommended: pick([
      { method: 'linear', reason: `${n} models without their base: a weighted average ("model soup")` },
      { method: 'multislerp', reason: 'spherical interpolation of several models' },
      { method: 'karcher', reason: 'the Riemannian mean of several models' },
    ]),
    notes,
  };
}

export type ComparedField = 'architecture' | 'hiddenSize' | 'numLayers' | 'vocabSize';

/** Per model, the fields that differ from the reference model (the base, else the first), for highlighting. */
export function differingFields(models: readonly ModelFacts[], reference?: string): Map<string, Set<ComparedField>> {
  const out = new Map<string, Set<ComparedField>>();
  const ref = models.find((m) => m.key === reference) ?? models[0];
  if (!ref) return out;
  for (const m of models) {
    const fields = new Set<ComparedField>();
    for (const field of ['architecture', 'hiddenSize', 'numLayers', 'vocabSize'] as const) {
      if (m[field] !== undefined && ref[field] !== undefined && m[field] !== ref[field]) fields.add(field);
    }
    if (fields.size > 0) out.set(m.key, fields);
  }
  return out;
}
