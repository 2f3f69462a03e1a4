import { findMethod, type MergeMethod, type ParamDecl } from '../methods/index';

/**
 * What the validator needs to know of each of mergekit's 20 registered methods (MERGEKIT_SPEC.md
 * §1.0 and its parameter matrix), so that `alloy validate` accepts every valid mergekit config even
 * for methods Alloy cannot run yet.
 *
 * Two kinds of knowledge, kept apart:
 * - the method's *declaration* (names, scopes, defaults, ranges of its parameters; its base policy):
 *   for a method in `METHODS` the real declaration is used and this table's row must agree with it
 *   (test/config/method-table.test.ts checks that); for the others, this table stands in until the
 *   method exists;
 * - the method's *config rules* (how many models a slice takes, whether the base must be one of a
 *   slice's sources, which density checks apply): facts about mergekit's behaviour, not part of a
 *   method declaration, so they live here for every method.
 *
 * Parameters that mergekit declares but that have no effect are left out on purpose (the validator
 * then warns that they are ignored): `density` on task_arithmetic (no sparsifier), `lambda` et al.
 * are kept because they do act.
 */

/** The parts of a method declaration the validator uses (a `MergeMethod` is one). */
export type MethodDeclaration = Pick<MergeMethod, 'name' | 'prettyName' | 'paperUrl' | 'params' | 'base'>;

/** How many models one output slice takes, counted per slice (a `models:` list is one slice). */
export interface InputRule {
  /** Distinct models, the base included (`models:` counts an unlisted base_model, which mergekit appends). */
  readonly models?: { readonly min?: number; readonly max?: number };
  /** Distinct models other than the base (all of them when no base is set). */
  readonly others?: { readonly min?: number; readonly max?: number };
  /**
   * What the method does with a slice of one source: `copied` returns any lone tensor unchanged
   * (so the counts above do not apply to one-source slices), `base` returns a lone *base* tensor
   * (other lone sources fail: the base is missing), `counted` applies the counts anyway.
   */
  readonly loneSource: 'copied' | 'base' | 'counted';
  /** When a base is set, slices must list it among their sources (the method reads its tensors). */
  readonly baseInSources: boolean;
}

/** Extra checks on values that a declaration's range cannot express. */
export type DensityRule =
  /** Magnitude pruning keeps floor(density·numel) elements and asserts that this is > 0. */
  | 'positive'
  /** DELLA: for 0 < density < 1, needs density − epsilon > 0 and density + epsilon < 1 (ValueError). */
  | 'dellaWindow';

export interface MethodRow {
  readonly declaration: MethodDeclaration;
  readonly inputs: InputRule;
  readonly density?: DensityRule;
  /**
   * Boolean parameters mergekit only tests for truth (any non-zero number is on). The others go
   * through a pydantic `bool` field, which rejects anything but true/false/0/1.
   */
  readonly laxFlags?: readonly string[];
}

const flag = (name: string, on: boolean, description: string): ParamDecl => ({
  name,
  scope: 'global',
  type: 'boolean',
  required: false,
  default: on ? 1 : 0,
  description,
});

const weight: ParamDecl = {
  name: 'weight',
  scope: 'model',
  type: 'number',
  required: true,
  description: "How much of this model goes into the result. Relative to the other models' weights when normalized.",
};

const density: ParamDecl = {
  name: 'density',
  scope: 'model',
  type: 'number',
  required: false,
  default: 1,
  min: 0,
  max: 1,
  description: "Fraction of this model's changes (delta from the base) that is kept; 1 keeps all.",
};

const gamma: ParamDecl = {
  name: 'gamma',
  scope: 'model',
  type: 'number',
  required: false,
  default: 0.01,
  min: 0,
  max: 1,
  description: 'Fraction of the largest changes removed as outliers before the smallest are pruned to reach density.',
};

const dellaEpsilon: ParamDecl = {
  name: 'epsilon',
  scope: 'model',
  type: 'number',
  required: false,
  default: 0.15,
  min: 0,
  max: 1,
  description:
    'Half-width of the keep probabilities: the smallest change is kept with probability density − epsilon, the largest with density + epsilon.',
};

const MODELS_ANY: InputRule = { models: { min: 1 }, loneSource: 'copied', baseInSources: false };
const BASE_PLUS_ANY: InputRule = { loneSource: 'base', baseInSources: true };

interface FamilyRow {
  readonly name: string;
  readonly prettyName: string;
  readonly paperUrl: string;
  readonly normalize: boolean;
  readonly rescale: boolean;
  readonly sparsifier: 'none' | 'magnitude' | 'random' | 'outliers' | 'della';
}

/** mergekit's generalized task arithmetic family (§1.5): one row each. */
const FAMILY: readonly FamilyRow[] = [
  { name: 'task_arithmetic', prettyName: 'Task Arithmetic', paperUrl: 'https://arxiv.org/abs/2212.04089', normalize: false, rescale: false, sparsifier: 'none' },
  { name: 'ties', prettyName: 'TIES', paperUrl: 'https://arxiv.org/abs/2306.01708', normalize: true, rescale: false, sparsifier: 'magnitude' },
  { name: 'dare_ties', prettyName: 'DARE TIES', paperUrl: 'https://arxiv.org/abs/2311.03099', normalize: false, rescale: true, sparsifier: 'random' },
  { name: 'dare_linear', prettyName: 'Linear DARE', paperUrl: 'https://arxiv.org/abs/2311.03099', normalize: false, rescale: true, sparsifier: 'random' },
  { name: 'breadcrumbs', prettyName: 'Model Breadcrumbs', paperUrl: 'https://arxiv.org/abs/2312.06795', normalize: false, rescale: false, sparsifier: 'outliers' },
  { name: 'breadcrumbs_ties', prettyName: 'Model Breadcrumbs with TIES', paperUrl: 'https://arxiv.org/abs/2312.06795', normalize: false, rescale: false, sparsifier: 'outliers' },
  { name: 'della', prettyName: 'DELLA', paperUrl: 'https://arxiv.org/abs/2406.11617', normalize: true, rescale: true, sparsifier: 'della' },
  { name: 'della_linear', prettyName: 'Linear DELLA', paperUrl: 'https://arxiv.org/abs/2406.11617', normalize: false, rescale: true, sparsifier: 'della' },
];

function familyRow(family: FamilyRow): MethodRow {
  const params: ParamDecl[] = [
    flag('normalize', family.normalize, 'Divide the summed changes by the sum of the weights of the models that contributed.'),
    flag('rescale', family.rescale, "After pruning, rescale each model's changes so that their L1 norm is unchanged."),
    flag('int8_mask', false, 'Store sign masks as int8 to save memory (no effect on the numbers).'),
    {
      name: 'lambda',
      scope: 'global',
      type: 'number',
      required: false,
      default: 1,
      description: 'Multiplies the merged changes before they are added to the base.',
    },
    weight,
  ];
  if (family.sparsifier !== 'none') params.push(density);
  if (family.sparsifier === 'outliers') params.push(gamma);
  if (family.sparsifier === 'della') params.push(dellaEpsilon);
  const declaration: MethodDeclaration = {
    name: family.name,
    prettyName: family.prettyName,
    paperUrl: family.paperUrl,
    params,
    base: 'required',
  };
  const densityRule: DensityRule | undefined =
    family.sparsifier === 'magnitude' ? 'positive' : family.sparsifier === 'della' ? 'dellaWindow' : undefined;
  return row(declaration, BASE_PLUS_ANY, { density: densityRule, laxFlags: ['rescale'] });
}

function row(
  declaration: MethodDeclaration,
  inputs: InputRule,
  extra: { density?: DensityRule; laxFlags?: readonly string[] } = {},
): MethodRow {
  const out: { -readonly [K in keyof MethodRow]: MethodRow[K] } = { declaration, inputs };
  if (extra.density) out.density = extra.density;
  if (extra.laxFlags) out.laxFlags = extra.laxFlags;
  return out;
}

/** Every method mergekit 0.1.4 registers, in the order of MERGEKIT_SPEC.md §1.0. */
export const MERGEKIT_METHOD_TABLE: readonly MethodRow[] = [
  row(
    {
      name: 'linear',
      prettyName: 'Linear',
      paperUrl: 'https://arxiv.org/abs/2203.05482',
      params: [flag('normalize', true, 'Divide by the sum of the weights, so that weights 2 and 1 mean two thirds and one third.'), weight],
      base: 'member',
    },
    MODELS_ANY,
  ),
  row(
    {
      name: 'slerp',
      prettyName: 'SLERP',
      paperUrl: 'https://en.wikipedia.org/wiki/Slerp',
      params: [
        {
          name: 't',
          scope: 'global',
          type: 'number',
          required: true,
          min: 0,
          max: 1,
          description: 'Position between the base model (0) and the other model (1).',
        },
      ],
      base: 'required',
    },
    { models: { min: 2, max: 2 }, loneSource: 'copied', baseInSources: true },
  ),
  row(
    {
      name: 'nuslerp',
      prettyName: 'NuSLERP',
      params: [
        flag('nuslerp_row_wise', false, 'Interpolate the columns (vectors along the first dimension) of each matrix separately.'),
        flag('nuslerp_flatten', true, 'Treat each whole tensor as one vector (overrides nuslerp_row_wise).'),
        weight,
      ],
      base: 'optional',
    },
    { others: { min: 2, max: 2 }, loneSource: 'copied', baseInSources: true },
  ),
  row(
    {
      name: 'multislerp',
      prettyName: 'Multi-SLERP',
      paperUrl: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
      params: [
        flag('normalize_weights', true, 'Divide the weights by their sum.'),
        {
          name: 'eps',
          scope: 'global',
          type: 'number',
          required: false,
          default: 1e-8,
          min: 0,
          description: 'Small constant that keeps norms away from zero.',
        },
        weight,
      ],
      base: 'optional',
    },
    { others: { min: 1 }, loneSource: 'copied', baseInSources: false },
    { laxFlags: ['normalize_weights'] },
  ),
  row(
    {
      name: 'karcher',
      prettyName: 'Karcher Mean',
      paperUrl: 'https://en.wikipedia.org/wiki/Karcher_mean',
      params: [
        {
          name: 'max_iter',
          scope: 'global',
          type: 'integer',
          required: false,
          default: 10,
          min: 1,
          description: 'Most iterations of the Riemannian mean.',
        },
        {
          name: 'tol',
          scope: 'global',
          type: 'number',
          required: false,
          default: 1e-5,
          min: 0,
          description: 'Convergence tolerance (also the smallest norm and angle taken into account).',
        },
      ],
      base: 'member',
    },
    MODELS_ANY,
  ),
  row(
    {
      name: 'passthrough',
      prettyName: 'Passthrough',
      params: [
        {
          name: 'scale',
          scope: 'model',
          type: 'number',
          required: false,
          description: 'Multiply the copied tensor by this factor (e.g. 0 or 0.5 on o_proj/down_proj of repeated layers).',
        },
      ],
      base: 'member',
    },
    { models: { min: 1, max: 1 }, loneSource: 'copied', baseInSources: false },
  ),
  row(
    {
      name: 'model_stock',
      prettyName: 'Model Stock',
      paperUrl: 'https://arxiv.org/abs/2403.19522',
      params: [flag('filter_wise', false, 'Compute the interpolation ratio per row instead of per tensor.')],
      base: 'required',
    },
    { others: { min: 2 }, loneSource: 'base', baseInSources: true },
  ),
  row(
    { name: 'arcee_fusion', prettyName: 'Arcee Fusion', paperUrl: 'https://arcee.ai', params: [], base: 'required' },
    { models: { min: 2, max: 2 }, loneSource: 'copied', baseInSources: true },
  ),
  row(
    {
      name: 'nearswap',
      prettyName: 'NearSwap',
      paperUrl: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
      params: [
        {
          name: 't',
          scope: 'global',
          type: 'number',
          required: true,
          min: 0,
          description: 'Distance below which a parameter takes the other model\'s value; farther ones move toward it by t / |difference|.',
        },
      ],
      base: 'required',
    },
    { others: { min: 1, max: 1 }, loneSource: 'base', baseInSources: true },
  ),
  ...FAMILY.map(familyRow),
  row(
    {
      name: 'sce',
      prettyName: 'SCE',
      paperUrl: 'https://arxiv.org/abs/2408.07990',
      params: [
        flag('int8_mask', false, 'Store sign masks as int8 to save memory (no effect on the numbers).'),
        {
          name: 'select_topk',
          scope: 'global',
          type: 'number',
          required: false,
          default: 1,
          min: 0,
          max: 1,
          description: 'Fraction of the positions with the highest variance across models that are kept.',
        },
      ],
      base: 'required',
    },
    BASE_PLUS_ANY,
    { laxFlags: ['int8_mask'] },
  ),
  row(
    {
      name: 'ram',
      prettyName: 'Reinforced Agent Merging',
      paperUrl: 'https://arxiv.org/abs/2601.13572',
      params: [
        {
          name: 'epsilon',
          scope: 'global',
          type: 'number',
          required: false,
          default: 1e-5,
          min: 0,
          description: 'A change larger than this (in magnitude) counts as the model contributing to that parameter.',
        },
      ],
      base: 'required',
    },
    BASE_PLUS_ANY,
  ),
  row(
    {
      name: 'ramplus_tl',
      prettyName: 'Reinforced Agent Merging Plus (Tensor-Local)',
      paperUrl: 'https://arxiv.org/abs/2601.13572',
      params: [
        {
          name: 'r',
          scope: 'global',
          type: 'number',
          required: false,
          default: 0.1,
          min: 0,
          description: 'Strength of the boost given to unique contributions.',
        },
        {
          name: 'alpha',
          scope: 'global',
          type: 'number',
          required: false,
          default: 0.2,
          min: 0,
          description: 'Cap on the shared/unique ratio used for the boost.',
        },
        {
          name: 'epsilon',
          scope: 'global',
          type: 'number',
          required: false,
          default: 1e-5,
          min: 0,
          description: 'A change larger than this (in magnitude) counts as the model contributing to that parameter.',
        },
      ],
      base: 'required',
    },
    BASE_PLUS_ANY,
  ),
];

const rows = new Map(MERGEKIT_METHOD_TABLE.map((r) => [r.declaration.name, r]));

/** This table's row for a mergekit method name (undefined for names mergekit does not register). */
export function mergekitMethodRow(name: string): MethodRow | undefined {
  return rows.get(name);
}

/** A method's declaration and config rules, from `METHODS` when Alloy implements it, else from the table. */
export interface MethodRules extends MethodRow {
  /** Alloy can run it (it is in `METHODS`); otherwise only validated. */
  readonly implemented: boolean;
}

/** The rules for `name`, or undefined when neither Alloy nor mergekit knows the method. */
export function methodRules(name: string): MethodRules | undefined {
  const method = findMethod(name);
  const tableRow = rows.get(name);
  if (method) return rulesOf(method, tableRow);
  return tableRow ? { ...tableRow, implemented: false } : undefined;
}

/** Rules for an implemented method: its own declaration, with mergekit's config rules when it has any. */
export function rulesOf(method: MergeMethod, tableRow: MethodRow | undefined = rows.get(method.name)): MethodRules {
  const inputs: InputRule = tableRow?.inputs ?? {
    models: { min: method.minInputs, max: method.maxInputs },
    loneSource: 'copied',
    baseInSources: method.base === 'required',
  };
  return { ...tableRow, declaration: method, inputs, implemented: true };
}
