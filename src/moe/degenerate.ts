import { symmetricEigen } from '../lora';

/**
 * mergekit-moe's degenerate-routing warning (docs/moe.md §2): a layer whose router matrix
 * [experts, hidden] has a 2-norm condition number above 5 routes poorly — some experts' gate
 * vectors are nearly combinations of the others, usually because their prompts are too similar.
 */
export const DEGENERATE_CONDITION = 5;

/** σmax/σmin of a [rows, cols] matrix (Infinity when it is rank-deficient), from its smaller Gram matrix. */
export function conditionNumber(matrix: Float32Array, rows: number, cols: number): number {
  const k = Math.min(rows, cols);
  if (k === 0) return Infinity;
  const gram = new Float64Array(k * k);
  if (rows <= cols) {
    for (let i = 0; i < rows; i++) {
      for (let j = i; j < rows; j++) {
        let dot = 0;
        for (let c = 0; c < cols; c++) dot += matrix[i * cols + c] * matrix[j * cols + c];
        gram[i * k + j] = gram[j * k + i] = dot;
      }
    }
  } else {
    for (let i = 0; i < cols; i++) {
      for (let j = i; j < cols; j++) {
        let dot = 0;
        for (let r = 0; r < rows; r++) dot += matrix[r * cols + i] * matrix[r * cols + j];
        gram[i * k + j] = gram[j * k + i] = dot;
      }
    }
  }
  const { values } = symmetricEigen(gram, k);
  const largest = values[0];
  const smallest = values[k - 1];
  // Eigenvalues of a Gram matrix are σ²; a tiny or rounding-negative one is a zero singular value.
  if (!(smallest > largest * 1e-24) || !(largest > 0)) return Infinity;
  return Math.sqrt(largest / smallest);
}

/** Layers whose router matrix has a condition number above the threshold. */
export function degenerateLayers(routers: readonly Float32Array[], rows: number, cols: number, threshold = DEGENERATE_CONDITION): number[] {
  const out: number[] = [];
  routers.forEach((matrix, layer) => {
    if (conditionNumber(matrix, rows, cols) > threshold) out.push(layer);
  });
  return out;
}

/** mergekit's wording: "layers 0, 3, and 5 have degenerate routing parameters …". */
export function degenerateWarning(layers: readonly number[], totalLayers: number): string | null {
  if (layers.length === 0) return null;
  const subject =
    layers.length === 1
      ? `layer ${layers[0]} has`
      : layers.length === 2
        ? `layers ${layers[0]} and ${layers[1]} have`
        : layers.length >= totalLayers
          ? 'ALL layers have'
          : `layers ${layers.slice(0, -1).join(', ')}, and ${layers[layers.length - 1]} have`;
  return `${subject} degenerate routing parameters - your prompts may be too similar; one or more experts will be underutilized`;
}
