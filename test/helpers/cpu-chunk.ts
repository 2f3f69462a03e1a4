import { CpuBackend } from '../../src/backend';
import type { BackendChunk, ChunkOps, Vec } from '../../src/backend';
import type { Partial } from '../../src/backend/reduction';
import { decodeToF32 } from '../../src/storage';

/**
 * Runs `fn` on one CPU-backend chunk holding `rows × cols` f32 inputs (the whole tensor) and
 * returns the values of the vector it produces: for testing single ops and chunk helpers.
 */
export async function onCpuChunk(
  inputs: ArrayLike<number>[],
  rows: number,
  cols: number,
  fn: (c: ChunkOps) => Vec,
  options: { seed?: number; tensorName?: string; start?: number } = {},
): Promise<Float32Array> {
  const backend = new CpuBackend();
  const length = rows * cols;
  const chunk = backend.beginChunk(
    {
      tensorName: options.tensorName ?? 't',
      chunkIndex: 0,
      chunkCount: 1,
      start: options.start ?? 0,
      length,
      rowStart: 0,
      rows,
      cols,
      totalRows: rows,
      seed: options.seed ?? 0,
    },
    inputs.map((values) => ({ bytes: new Uint8Array(Float32Array.from(values).buffer), dtype: 'F32' as const, cols })),
  );
  try {
    return decodeToF32(await chunk.encode(fn(chunk.ops), 'F32'), 'F32');
  } finally {
    chunk.release();
  }
}

/**
 * `inner` with hooks for test backends: `partials` and `encoded` get the inner chunk's result and
 * return it (after a delay, say) or throw; `released` runs before the inner chunk is released.
 */
export function hookedChunk(
  inner: BackendChunk,
  hooks: {
    partials?: (partials: Partial[]) => Promise<Partial[]>;
    encoded?: (bytes: Uint8Array) => Uint8Array | Promise<Uint8Array>;
    released?: () => void;
  },
): BackendChunk {
  return {
    ops: inner.ops,
    readPartials: async (tokens) => {
      const partials = await inner.readPartials(tokens);
      return hooks.partials ? hooks.partials(partials) : partials;
    },
    encode: async (v, dtype) => {
      const bytes = await inner.encode(v, dtype);
      return hooks.encoded ? hooks.encoded(bytes) : bytes;
    },
    release: () => {
      hooks.released?.();
      inner.release();
    },
  };
}
