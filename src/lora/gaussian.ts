/**
 * Seeded random numbers whose stream depends only on (seed, label): mulberry32 uniforms, and
 * Box–Muller normals from them, in float64. A module's extraction (the randomized SVD's test
 * matrix) and an MoE build's random routers (docs/moe.md §4) are reproducible whatever else runs
 * and on whichever machine.
 */
export interface RandomStream {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal. */
  normal(): number;
}

export function randomStream(seed: number, label: string): RandomStream {
  let state = (hashLabel(label) ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  return { uniform, normal };
}

/** Standard normal numbers for the randomized SVD's test matrix. */
export function gaussianStream(seed: number, label: string): () => number {
  return randomStream(seed, label).normal;
}

/** FNV-1a of the label's UTF-16 code units. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
