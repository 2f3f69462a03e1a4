import { describe, expect, it } from 'vitest';
import { CpuBackend, type BackendChunk, type ChunkInputBytes, type ComputeBackend } from '../../src/backend';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

interface Seen {
  readonly pass: 'statistics' | 'output';
  readonly chunk: number;
  readonly inputs: readonly ChunkInputBytes[];
}

/** The CPU backend, recording which bytes each chunk got, whether retained, and in which pass. */
function recordingBackend(): ComputeBackend & { readonly seen: Seen[] } {
  const cpu = new CpuBackend();
  const seen: Seen[] = [];
  return {
    name: 'cpu',
    seen,
    beginChunk(spec, inputs): BackendChunk {
      const inner = cpu.beginChunk(spec, inputs);
      return {
        ops: inner.ops,
        readPartials: (tokens) => (seen.push({ pass: 'statistics', chunk: spec.chunkIndex, inputs }), inner.readPartials(tokens)),
        encode: (v, dtype) => (seen.push({ pass: 'output', chunk: spec.chunkIndex, inputs }), inner.encode(v, dtype)),
        release: () => inner.release(),
      };
    },
    dispose: () => cpu.dispose(),
  };
}

describe('input bytes kept across passes', () => {
  const shape = [64, 48];
  const base = randomArray(64 * 48, 3, 0.02);
  const models = [1, 2, 3].map((seed) => perturbed(base, 20 + seed, 0.01));
  const inputs = [{ values: base }, ...models.map((values) => ({ values }))];
  // 4 inputs × 3,072 bf16 = 24 KiB, within a quarter of a 100 KiB budget (kept), in chunks of 21 rows.
  const options = { shape, dtype: 'BF16' as const, baseIndex: 0, budgetBytes: 100 * 1024 };

  it('model_stock: the statistics pass keeps them (retained); the output pass gets the same bytes, now the backend’s', async () => {
    const backend = recordingBackend();
    const result = await runMethod('model_stock', inputs, { ...options, backend });
    const reference = await runMethod('model_stock', inputs, options);
    expect(Buffer.from(result.bytes).equals(Buffer.from(reference.bytes))).toBe(true);

    const stats = backend.seen.filter((s) => s.pass === 'statistics');
    const output = backend.seen.filter((s) => s.pass === 'output');
    expect(stats.length).toBeGreaterThan(1);
    expect(output.map((s) => s.chunk)).toEqual(stats.map((s) => s.chunk));
    for (const s of stats) expect(s.inputs.every((i) => i.retained === true)).toBe(true);
    for (const s of output) {
      expect(s.inputs.every((i) => !i.retained)).toBe(true);
      const earlier = stats.find((t) => t.chunk === s.chunk)!;
      // Not read again: the very buffers of the statistics pass.
      s.inputs.forEach((input, i) => expect(input.bytes).toBe(earlier.inputs[i].bytes));
    }
  });

  it('linear (one pass): nothing is retained', async () => {
    const backend = recordingBackend();
    await runMethod('linear', models.map((values) => ({ values, params: { weight: 1 } })), { ...options, baseIndex: -1, backend });
    expect(backend.seen.length).toBeGreaterThan(1);
    for (const s of backend.seen) expect(s.inputs.every((i) => !i.retained)).toBe(true);
  });
});
