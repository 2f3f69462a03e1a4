import type { ChunkOps, Vec } from '../../backend/types';
import type { DensityCheck, ParamDecl, TensorMerge } from '../types';

/** mergekit's sparsification methods (docs/methods.md §4), under mergekit's names. */
export type SparsifierName = 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';

/** One model's delta to sparsify. */
export interface SparsifyModel {
  /** The model, for messages. */
  readonly model: string;
  /** Its per-model parameters for this tensor (density, gamma, epsilon…). */
  readonly params: Readonly<Record<string, number>>;
  /** Its random stream: the model's index among the non-base inputs. */
  readonly stream: number;
}

export interface SparsifyRequest {
  /** The merge method, for messages. */
  readonly method: string;
  readonly tensor: TensorMerge;
  /** Every model's delta for one chunk, in `models` order. */
  readonly deltas: (c: ChunkOps) => Vec[];
  readonly models: readonly SparsifyModel[];
}

/** The sparsified chunk of one model's delta (unscaled: the L1 rescale is applied by the caller). */
export type Prune = (c: ChunkOps, delta: Vec) => Vec;

export interface Sparsifier {
  readonly name: SparsifierName;
  /** Per-model parameters it reads besides `density`. */
  readonly params: readonly ParamDecl[];
  /** True when a chunk must hold whole rows, however long (per-row ranks). */
  readonly wholeRows: boolean;
  /** True when it draws random numbers (its output depends on the merge's seed). */
  readonly random: boolean;
  /** The density values `prepare` refuses that a range cannot express, for the validator. */
  readonly densityCheck?: DensityCheck;
  /**
   * Runs the statistics passes it needs, for all models in the same passes, and returns each
   * model's pruning: `null` where the delta stays unchanged (density ≥ 1, which mergekit also
   * leaves unrescaled). Throws a user-facing Error for parameters mergekit refuses.
   */
  prepare(request: SparsifyRequest): Promise<(Prune | null)[]>;
}

export function densityOf(model: SparsifyModel): number {
  return model.params.density ?? 1;
}

/** All zeros (also where `v` is NaN or infinite), as mergekit's `zeros_like`. */
export function zerosLike(c: ChunkOps, v: Vec): Vec {
  return c.gt(v, Infinity);
}
