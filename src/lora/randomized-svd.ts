import { gaussianStream } from './gaussian';
import { orthonormalColumns } from './householder-qr';
import { symmetricEigen } from './jacobi-eigen';
import type { RowBlocks } from './row-blocks';

/** ΔW ≈ Q·(Ub·diag(σ)·Vᵀ) restricted to the sketch: what the factorization needs. */
export interface RandomizedSvd {
  readonly rows: number;
  readonly cols: number;
  /** Sketch size: the number of directions kept. */
  readonly k: number;
  /** Orthonormal basis of the sketched range, m×k stored by columns (`q[c*m + i]`). */
  readonly q: Float64Array;
  /** Qᵀ·ΔW, k×n row-major. */
  readonly projected: Float64Array;
  /** Eigenvectors of (QᵀΔW)(QᵀΔW)ᵀ as columns (k×k row-major), by descending eigenvalue. */
  readonly ub: Float64Array;
  /** Singular values σ = √λ, descending (≥ 0). */
  readonly sigma: Float64Array;
  /** ‖ΔW‖²_F, accumulated in float64 during the first pass. */
  readonly normSquared: number;
}

export interface RandomizedSvdOptions {
  /** Directions sketched: the target rank plus oversampling, at most min(m, n). */
  readonly k: number;
  /** Power iterations (each: two passes over ΔW); they sharpen the spectrum the sketch sees. */
  readonly powerIterations: number;
  readonly seed: number;
  /** Names the Gaussian stream, so each tensor's sketch is reproducible on its own. */
  readonly label: string;
  /** Called between passes: lets the caller yield to the event loop and cancel. */
  readonly onPass?: () => Promise<void> | void;
}

/**
 * Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Algorithms 4.4 and 5.1), streamed by
 * blocks of rows so that only O((m + n)·k) numbers are held besides one block:
 * Y = ΔW·Ω (Ω n×k Gaussian, seeded), q power iterations Q = orth(ΔW·orth(ΔWᵀ·Q)), then
 * B = QᵀΔW (k×n, accumulated block by block) and the SVD of B from the eigen-decomposition of
 * the k×k matrix B·Bᵀ (Jacobi). All accumulation is float64.
 */
export async function randomizedSvd(source: RowBlocks, options: RandomizedSvdOptions): Promise<RandomizedSvd> {
  const { rows: m, cols: n } = source;
  const k = options.k;
  if (!(k >= 1 && k <= Math.min(m, n))) throw new RangeError(`randomizedSvd: sketch size ${k} for a ${m}×${n} matrix`);
  const normal = gaussianStream(options.seed, options.label);
  const omega = new Float64Array(n * k);
  for (let i = 0; i < omega.length; i++) omega[i] = normal();

  let normSquared = 0;
  let first = true;
  // Y = ΔW·X for X n×k by columns; Y m×k by columns. Four columns of X per sweep of a row, so
  // each value of ΔW is loaded once for four products.
  const times = async (x: Float64Array): Promise<Float64Array> => {
    const y = new Float64Array(m * k);
    await source.forEachBlock((r0, count, values) => {
      for (let i = 0; i < count; i++) {
        const row = i * n;
        if (first) for (let j = 0; j < n; j++) normSquared += values[row + j] * values[row + j];
        let c = 0;
        for (; c + 4 <= k; c += 4) {
          const x0 = c * n;
          const x1 = x0 + n;
          const x2 = x1 + n;
          const x3 = x2 + n;
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          for (let j = 0; j < n; j++) {
            const v = values[row + j];
            s0 += v * x[x0 + j];
            s1 += v * x[x1 + j];
            s2 += v * x[x2 + j];
            s3 += v * x[x3 + j];
          }
          y[c * m + r0 + i] = s0;
          y[(c + 1) * m + r0 + i] = s1;
          y[(c + 2) * m + r0 + i] = s2;
          y[(c + 3) * m + r0 + i] = s3;
        }
        for (; c < k; c++) {
          const col = c * n;
          let s = 0;
          for (let j = 0; j < n; j++) s += values[row + j] * x[col + j];
          y[c * m + r0 + i] = s;
        }
      }
    });
    first = false;
    await options.onPass?.();
    return y;
  };
  // Z = ΔWᵀ·Q for Q m×k by columns; Z n×k by columns, which is QᵀΔW k×n row-major. Four rows of
  // ΔW per sweep of a column of Z, so Z (the large operand) is streamed a quarter as often.
  const transposeTimes = async (q: Float64Array): Promise<Float64Array> => {
    const z = new Float64Array(n * k);
    await source.forEachBlock((r0, count, values) => {
      let i = 0;
      for (; i + 4 <= count; i += 4) {
        const v0 = i * n;
        const v1 = v0 + n;
        const v2 = v1 + n;
        const v3 = v2 + n;
        for (let c = 0; c < k; c++) {
          const qc = c * m + r0 + i;
          const a0 = q[qc];
          const a1 = q[qc + 1];
          const a2 = q[qc + 2];
          const a3 = q[qc + 3];
          const col = c * n;
          for (let j = 0; j < n; j++) z[col + j] += a0 * values[v0 + j] + a1 * values[v1 + j] + a2 * values[v2 + j] + a3 * values[v3 + j];
        }
      }
      for (; i < count; i++) {
        const row = i * n;
        for (let c = 0; c < k; c++) {
          const coef = q[c * m + r0 + i];
          const col = c * n;
          for (let j = 0; j < n; j++) z[col + j] += coef * values[row + j];
        }
      }
    });
    await options.onPass?.();
    return z;
  };

  let q = orthonormalColumns(await times(omega), m, k);
  for (let it = 0; it < options.powerIterations; it++) {
    const z = orthonormalColumns(await transposeTimes(q), n, k);
    q = orthonormalColumns(await times(z), m, k);
  }
  const projected = await transposeTimes(q);
  const gram = new Float64Array(k * k);
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += projected[a * n + j] * projected[b * n + j];
      gram[a * k + b] = s;
      gram[b * k + a] = s;
    }
  }
  const { values, vectors } = symmetricEigen(gram, k);
  const sigma = Float64Array.from(values, (v) => Math.sqrt(Math.max(0, v)));
  return { rows: m, cols: n, k, q, projected, ub: vectors, sigma, normSquared };
}
