import type { RandomizedSvd } from './randomized-svd';

/** A rank-r factorization ΔW ≈ B·A, in f32: A is r×n, B is m×r (row-major). */
export interface LoraFactors {
  readonly rank: number;
  readonly a: Float32Array;
  readonly b: Float32Array;
  /** Singular values kept. */
  readonly sigma: Float64Array;
}

export interface FactorizeOptions {
  readonly maxRank: number;
  /** mergekit's --distribute-scale (default): A = √σ·Vᵀ, B = U·√σ; otherwise A = σ·Vᵀ, B = U. */
  readonly distributeScale: boolean;
  /** mergekit's --sv-epsilon: singular values at or below it are dropped (0: keep all). */
  readonly svEpsilon: number;
}

/**
 * The LoRA factors of a sketch: the top singular triplets of QᵀΔW = Ub·diag(σ)·Vᵀ lifted by Q.
 * Vᵀ is formed as diag(1/σ)·Ubᵀ·(QᵀΔW), so B·A = Q·Ub·Ubᵀ·QᵀΔW exactly (no 1/σ survives the
 * product); directions with σ = 0 carry nothing and get zero rows.
 */
export function factorize(svd: RandomizedSvd, options: FactorizeOptions): LoraFactors {
  const { rows: m, cols: n, k, q, projected, ub } = svd;
  let rank = Math.min(options.maxRank, k);
  if (options.svEpsilon > 0) rank = Math.min(rank, svd.sigma.filter((s) => s > options.svEpsilon).length);
  const a = new Float32Array(rank * n);
  const b = new Float32Array(m * rank);
  const row = new Float64Array(n);
  const col = new Float64Array(m);
  for (let t = 0; t < rank; t++) {
    const sigma = svd.sigma[t];
    if (!(sigma > 0)) continue;
    // σ·v_tᵀ = u_bᵀ·(QᵀΔW); u_t = Q·u_b.
    row.fill(0);
    col.fill(0);
    for (let c = 0; c < k; c++) {
      const w = ub[c * k + t];
      if (w === 0) continue;
      for (let j = 0; j < n; j++) row[j] += w * projected[c * n + j];
      for (let i = 0; i < m; i++) col[i] += w * q[c * m + i];
    }
    const aScale = options.distributeScale ? 1 / Math.sqrt(sigma) : 1;
    const bScale = options.distributeScale ? Math.sqrt(sigma) : 1;
    for (let j = 0; j < n; j++) a[t * n + j] = row[j] * aScale;
    for (let i = 0; i < m; i++) b[i * rank + t] = col[i] * bScale;
  }
  return { rank, a, b, sigma: svd.sigma.slice(0, rank) };
}
