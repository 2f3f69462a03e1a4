import { gaussian, mulberry32 } from '../fixtures/models';

/** `n` seeded normal samples times `scale`, plus `offset`, as f32. */
export function randomArray(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const normal = gaussian(mulberry32(seed * 7919 + 17));
  return Float32Array.from({ length: n }, () => offset + scale * normal());
}

/** `base` plus seeded normal deltas of standard deviation `scale`, as f32. */
export function perturbed(base: Float32Array, seed: number, scale: number): Float32Array {
  const d = randomArray(base.length, seed, scale);
  return base.map((v, i) => v + d[i]);
}
