/**
 * The counter-based random numbers of DARE / DELLA masks, shared by every backend: a value is a
 * pure function of (seed, tensor name, stream, element index), so it does not depend on chunk
 * sizes, pass order or backend. The same mixing is written in WGSL (src/shaders); change both.
 *
 * Mixing: PCG hash (Jarzynski & Olano 2020) applied to the element index with a per-tensor key;
 * the upper 24 bits give a float in [0, 1).
 */

export function pcgHash(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** FNV-1a over the UTF-8 bytes of a tensor name. */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Key of one random stream of one tensor; combine with element indices in `randomUniform`. */
export function streamKey(seed: number, tensorName: string, stream: number): number {
  return pcgHash((pcgHash((seed >>> 0) ^ hashName(tensorName)) + Math.imul(stream >>> 0, 0x9e3779b9)) >>> 0);
}

const TWO_POW_24 = 16777216;
const TWO_POW_32 = 4294967296;

/** Uniform [0,1) for element `index` (< 2^53) of the stream `key`. */
export function randomUniform(key: number, index: number): number {
  const lo = index % TWO_POW_32;
  const hi = Math.floor(index / TWO_POW_32);
  const h = pcgHash((pcgHash((key ^ hi) >>> 0) + lo) >>> 0);
  return (h >>> 8) / TWO_POW_24;
}
