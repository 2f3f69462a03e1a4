/** A run of whole rows of a tensor (or a piece of a huge 1-D tensor) processed at once. */
export interface ChunkRange {
  readonly index: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
}

/** Rows of a tensor: the last dimension is the row length; a 1-D tensor is one row; a scalar one element. */
export function rowShape(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 0) return { rows: 1, cols: 1 };
  const cols = shape[shape.length - 1];
  const numel = shape.reduce((a, b) => a * b, 1);
  return { rows: cols === 0 ? 0 : numel / cols, cols };
}

/**
 * Splits a tensor into row-aligned chunks of at most `maxElements` elements (at least one row per
 * chunk). A 1-D tensor longer than `maxElements` is split into plain element ranges, unless
 * `wholeRows` asks to keep every row in one chunk whatever its length.
 */
export function chunkRanges(shape: readonly number[], maxElements: number, wholeRows = false): ChunkRange[] {
  const { rows, cols } = rowShape(shape);
  const numel = rows * cols;
  const chunks: ChunkRange[] = [];
  if (numel === 0) return chunks;
  if (rows === 1 && cols > maxElements && !wholeRows) {
    for (let start = 0; start < numel; start += maxElements) {
      const length = Math.min(maxElements, numel - start);
      chunks.push({ index: chunks.length, start, length, rowStart: 0, rows: 1, cols: length });
    }
    return chunks;
  }
  const rowsPerChunk = Math.max(1, Math.floor(maxElements / cols));
  for (let rowStart = 0; rowStart < rows; rowStart += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - rowStart);
    chunks.push({ index: chunks.length, start: rowStart * cols, length: n * cols, rowStart, rows: n, cols });
  }
  return chunks;
}
