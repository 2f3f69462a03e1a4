import type { ChunkOps, Vec } from '../../backend/types';
import type { TensorMerge } from '../types';
import type { Prune } from './types';

/** mergekit skips the rescale when either norm is below this. */
export const RESCALE_EPSILON = 1e-7;

/**
 * The L1 rescale of mergekit ≥ 0.1.0 (docs/methods.md §4.5, mergekit's `rescaled_masked_tensor`): per pruned
 * delta, factor = Σ|delta| / Σ|kept| over the whole tensor (f64 sums), so that Σ|kept·factor| =
 * Σ|delta|; 1 when either sum is below 1e-7 or the delta was not pruned. The caller multiplies
 * the kept values by the factor in its apply pass.
 */
export async function l1RescaleFactors(
  t: TensorMerge,
  deltas: (c: ChunkOps) => Vec[],
  prunes: readonly (Prune | null)[],
): Promise<number[]> {
  const pruned = prunes.flatMap((p, j) => (p ? [j] : []));
  const factors = prunes.map(() => 1);
  if (pruned.length === 0) return factors;
  const sums = await t.reduce((c) => {
    const d = deltas(c);
    return pruned.flatMap((j) => [c.sum(c.abs(d[j])), c.sum(c.abs(prunes[j]!(c, d[j])))]);
  });
  pruned.forEach((j, n) => {
    const before = sums[2 * n];
    const after = sums[2 * n + 1];
    if (before >= RESCALE_EPSILON && after >= RESCALE_EPSILON) factors[j] = before / after;
  });
  return factors;
}
