import type { Partial } from '../backend/reduction';
import type { ChunkOps, ReductionSet, Resolved, Vec } from '../backend/types';

/** One parameter of a merge method, declared once for the validator, the planner, the UI and docs. */
export interface ParamDecl {
  readonly name: string;
  /** `global`: one value per tensor; `model`: one value per input model and tensor. */
  readonly scope: 'global' | 'model';
  readonly type: 'number' | 'boolean' | 'integer';
  /** Value when unset; `undefined` with `required: false` means "unset" is meaningful. */
  readonly default?: number;
  readonly required: boolean;
  /** Sensible range for forms and warnings (mergekit itself does not clamp). */
  readonly min?: number;
  readonly max?: number;
  readonly description: string;
  /**
   * For a `boolean`: mergekit only tests it for truth, so any non-zero number is on and the
   * validator merely warns about a value such as 0.5. Unset, the flag goes through a pydantic
   * `bool` field, which rejects anything but true/false/0/1 (the validator reports an error).
   */
  readonly laxBoolean?: boolean;
}

/**
 * How many models one output slice of a config takes (a `models:` list is one slice), as
 * mergekit checks a config before merging; the validator applies it. Not the same count as
 * `MergeMethod.minInputs`/`maxInputs`, which bound one *tensor's* inputs after the plan drops the
 * models that lack it (slerp: a slice takes exactly two models, a tensor only one of them has is
 * copied).
 */
export interface SliceInputRule {
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

/**
 * A check mergekit makes on `density` while merging that a declared range cannot express; the
 * validator makes it on the config, before any weight is read (docs/methods.md §4.1, §4.4).
 */
export type DensityCheck =
  /** Magnitude pruning keeps floor(density·numel) elements and asserts that this is > 0: density > 0. */
  | 'positive'
  /** DELLA: for 0 < density < 1, needs density − epsilon > 0 and density + epsilon < 1 (ValueError). */
  | 'dellaWindow';

/** How a method treats the base model (docs/methods.md §17). */
export type BasePolicy =
  /** Needs `base_model`; it is not merged like the others. */
  | 'required'
  /** Uses it when given (task-vector space), works without. */
  | 'optional'
  /** Treats it as an ordinary member. */
  | 'member';

/** What to do when input shapes differ (docs/methods.md §1, §2). */
export type ShapePolicy =
  /** Embeddings cut to the smallest rows/cols of all inputs; others must be equal. */
  | 'rectify'
  /** Embeddings cut to the base's shape (larger inputs only); other mismatched models skipped. */
  | 'taskVectors'
  /** Shapes must be equal. */
  | 'strict';

/** The per-tensor view a method gets. Inputs are in plan order; `baseIndex` is -1 without a base. */
export interface TensorMerge {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
  readonly rows: number;
  readonly cols: number;
  readonly inputs: readonly { readonly model: string; readonly params: Readonly<Record<string, number>> }[];
  readonly baseIndex: number;
  readonly params: Readonly<Record<string, number>>;
  readonly isEmbed: boolean;
  /** Adds a warning to the merge report. */
  warn(message: string): void;
  /**
   * A statistics pass over every chunk; reductions are combined in f64. `eachChunk`, when given,
   * first sees every chunk's own values of the reductions (in the set's order: array index or
   * key order), in chunk order — for per-chunk statistics such as how many ties precede a chunk.
   */
  reduce<T extends ReductionSet>(
    fn: (c: ChunkOps) => T,
    eachChunk?: (chunkIndex: number, partials: readonly Partial[]) => void,
  ): Promise<Resolved<T>>;
  /**
   * The output pass: the returned vector is the output chunk. It is the tensor's last pass (the
   * engine then lets go of the input bytes it kept for the earlier passes); a method calls it once.
   */
  apply(fn: (c: ChunkOps) => Vec): Promise<void>;
  /** Output = input `i` unchanged (raw bytes when its dtype is the output dtype). */
  copyInput(i: number): Promise<void>;
}

export interface MergeMethod {
  /** Name in configs (`merge_method`). */
  readonly name: string;
  /** Name and link used in model cards (docs/methods.md §0). */
  readonly prettyName: string;
  readonly paperUrl?: string;
  /** One plain-language paragraph for the app and `alloy methods`. */
  readonly description: string;
  readonly whenToUse: string;
  readonly params: readonly ParamDecl[];
  readonly base: BasePolicy;
  readonly shapes: ShapePolicy;
  /** Allowed number of inputs (base included) after the plan drops models that lack a tensor. */
  readonly minInputs?: number;
  readonly maxInputs?: number;
  /** How many models one slice of a config takes (checked by the validator; see `SliceInputRule`). */
  readonly sliceInputs: SliceInputRule;
  /** The value check on `density` that mergekit makes while merging, for methods that prune. */
  readonly densityCheck?: DensityCheck;
  /** True for methods that draw random numbers (DARE, DELLA): the model card records the seed. */
  readonly drawsRandomNumbers?: boolean;
  /**
   * Chunks must hold whole rows, however long: the engine then never splits a long 1-D tensor
   * (methods that rank within rows, e.g. della). Memory for such a row exceeds the budget.
   */
  readonly wholeRows?: boolean;
  /** Throws an Error with a user-facing message when global parameters are out of range. */
  validate?(params: Readonly<Record<string, number>>, inputs: TensorMerge['inputs']): void;
  merge(t: TensorMerge): Promise<void>;
}
