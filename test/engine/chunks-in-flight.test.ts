import { describe, expect, it } from 'vitest';
import { CpuBackend, type BackendChunk, type ComputeBackend } from '../../src/backend';
import { hookedChunk } from '../helpers/cpu-chunk';
import { randomArray, perturbed } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

/**
 * The CPU backend behind a backend that keeps `depth` chunks in flight and resolves each chunk's
 * results after a delay that makes later chunks finish first, as a pool of workers or a GPU queue
 * may. Records the most chunks that were ever begun and not yet released.
 */
function overlappingBackend(depth: number): ComputeBackend & { readonly maxOpen: number } {
  const cpu = new CpuBackend();
  let open = 0;
  let maxOpen = 0;
  const later = <T>(value: T, ms: number): Promise<T> => new Promise((r) => setTimeout(() => r(value), ms));
  return {
    name: 'cpu',
    chunksInFlight: depth,
    get maxOpen() {
      return maxOpen;
    },
    beginChunk(spec, inputs): BackendChunk {
      open++;
      maxOpen = Math.max(maxOpen, open);
      const delay = 2 + 3 * ((depth - (spec.chunkIndex % depth)) % depth);
      return hookedChunk(cpu.beginChunk(spec, inputs), {
        partials: (partials) => later(partials, delay),
        encoded: (bytes) => later(bytes, delay),
        released: () => open--,
      });
    },
    dispose: () => cpu.dispose(),
  };
}

describe('chunks in flight', () => {
  const shape = [96, 40];
  const base = randomArray(96 * 40, 1, 0.02);
  const models = [1, 2, 3].map((seed) => perturbed(base, 10 + seed, 0.01));
  const cases: [string, Record<string, number>][] = [
    ['ties', { density: 0.4, weight: 0.7 }],
    ['della', { density: 0.5, epsilon: 0.1, weight: 0.5 }],
    ['model_stock', {}],
  ];

  for (const [method, params] of cases) {
    it(`${method}: the same bytes with 1 or 3 chunks in flight, chunks finishing out of order`, async () => {
      const inputs = [{ values: base }, ...models.map((values) => ({ values, params }))];
      const run = (backend: ComputeBackend) =>
        runMethod(method, inputs, { shape, dtype: 'BF16', baseIndex: 0, budgetBytes: 96 * 1024, backend, params: { normalize: 1 } });
      const reference = await run(new CpuBackend());
      const overlapping = overlappingBackend(3);
      const result = await run(overlapping);
      expect(overlapping.maxOpen).toBe(3);
      expect(Buffer.from(result.bytes).equals(Buffer.from(reference.bytes))).toBe(true);
    });
  }

  it('lets the chunks in flight settle and release when one fails', async () => {
    const cpu = new CpuBackend();
    let open = 0;
    const failing: ComputeBackend = {
      name: 'cpu',
      chunksInFlight: 4,
      beginChunk(spec, inputs) {
        open++;
        return hookedChunk(cpu.beginChunk(spec, inputs), {
          encoded: async (bytes) => {
            if (spec.chunkIndex === 1) throw new Error('chunk 1 failed');
            await new Promise((r) => setTimeout(r, 5));
            return bytes;
          },
          released: () => open--,
        });
      },
      dispose: () => cpu.dispose(),
    };
    await expect(
      runMethod('linear', [{ values: base, params: { weight: 1 } }], { shape, backend: failing, budgetBytes: 64 * 1024 }),
    ).rejects.toThrow(/chunk 1 failed/);
    expect(open).toBe(0);
  });
});
