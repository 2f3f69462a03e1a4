import { describe, expect, it } from 'vitest';
import { CpuBackend, type ChunkSpec, type ComputeBackend } from '../../src/backend';
import { runMethod } from '../helpers/run-method';

/** A backend's own chunk ceiling (a GPU's storage binding limit) wins over the memory budget. */
function ceilingBackend(maxChunkElements: number, seen: ChunkSpec[]): ComputeBackend {
  const cpu = new CpuBackend();
  return {
    name: 'cpu',
    maxChunkElements,
    beginChunk: (spec, inputs) => {
      seen.push(spec);
      return cpu.beginChunk(spec, inputs);
    },
    dispose: () => cpu.dispose(),
  };
}

describe('ComputeBackend.maxChunkElements', () => {
  it('splits tensors into chunks no larger than the backend allows, whatever the budget', async () => {
    const seen: ChunkSpec[] = [];
    const values = Float32Array.from({ length: 64 * 100 }, (_, i) => i);
    const { values: out } = await runMethod('linear', [{ values, params: { weight: 1 } }], {
      shape: [64, 100],
      backend: ceilingBackend(1000, seen),
      budgetBytes: 1 << 26,
    });
    expect(seen.length).toBe(7); // 10 rows of 100 per chunk
    expect(Math.max(...seen.map((s) => s.length))).toBeLessThanOrEqual(1000);
    expect(Array.from(out)).toEqual(Array.from(values));
  });

  it('splits a long 1-D tensor too', async () => {
    const seen: ChunkSpec[] = [];
    const values = Float32Array.from({ length: 5000 }, (_, i) => i);
    await runMethod('linear', [{ values, params: { weight: 1 } }], { backend: ceilingBackend(2048, seen), budgetBytes: 1 << 26 });
    expect(seen.map((s) => s.length)).toEqual([2048, 2048, 904]);
  });
});
