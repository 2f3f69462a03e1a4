import { describe, expect, it } from 'vitest';
import { CpuBackend, type BackendChunk, type ChunkInputBytes, type ComputeBackend } from '../../src/backend';
import { readFileRange } from '../../src/storage/node-file-range';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

/**
 * A backend that reads files (ComputeBackend.readsFiles) for chunks of at least `from` elements:
 * the CPU backend on the bytes it reads at the ranges it gets, recording what each chunk got, and
 * saying that reading took a quarter of each chunk's time.
 */
function fileReadingBackend(from: number, delayMs = 0): ComputeBackend & { readonly seen: { length: number; inputs: readonly ChunkInputBytes[] }[] } {
  const later = <T>(value: Promise<T>): Promise<T> => (delayMs ? new Promise((r) => setTimeout(() => r(value), delayMs)) : value);
  const cpu = new CpuBackend();
  const seen: { length: number; inputs: readonly ChunkInputBytes[] }[] = [];
  return {
    name: 'cpu',
    countsNonFinite: true,
    seen,
    readsFiles: (length) => length >= from,
    beginChunk(spec, inputs): BackendChunk {
      seen.push({ length: spec.length, inputs });
      const read = inputs.map((input) => (input.file ? { ...input, bytes: readFileRange(input.file), file: undefined } : input));
      const inner = cpu.beginChunk(spec, read);
      return {
        ops: inner.ops,
        readPartials: (t) => later(inner.readPartials(t)),
        encode: (v, d) => later(inner.encode(v, d)),
        release: () => inner.release(),
        nonFinite: () => inner.nonFinite!(),
        readShare: () => 0.25,
      };
    },
    dispose: () => cpu.dispose(),
  };
}

describe('inputs a backend reads from their files', () => {
  const base = randomArray(160 * 64, 5, 0.02);
  base[77] = NaN;
  base[2000] = -Infinity;
  const inputs = [{ values: base }, { values: perturbed(base, 6, 0.01) }, { values: perturbed(base, 7, 0.01) }];
  const options = { shape: [160, 64], dtype: 'BF16' as const, baseIndex: 0, params: { normalize: 1 } };

  it('get where their rows lie instead of bytes, for chunks as large as the backend says; the output is the same', async () => {
    const reference = await runMethod('ties', inputs, { ...options, budgetBytes: 64 * 1024 });
    // A 64 KiB budget makes chunks of a few rows (1,024 elements, the least), a natural one a single chunk.
    for (const budgetBytes of [64 * 1024, 1 << 24]) {
      const backend = fileReadingBackend(2000);
      const got = await runMethod('ties', inputs, { ...options, budgetBytes, backend, files: true });
      expect(Buffer.from(got.bytes).equals(Buffer.from(reference.bytes))).toBe(true);
      expect(got.nonFinite).toEqual(reference.nonFinite);
      expect(got.nonFinite?.inputs[0].counts).toMatchObject({ nan: 1, negInf: 1 });
      if (budgetBytes === 1 << 24) expect(backend.seen.length).toBe(1);
      else expect(backend.seen.length).toBeGreaterThan(4);
      for (const { length, inputs: given } of backend.seen) {
        expect(length >= 2000).toBe(budgetBytes === 1 << 24);
        for (const input of given) {
          if (length >= 2000) {
            expect(input.bytes.length).toBe(0);
            expect(input.file).toMatchObject({ offset: 37, length: length * 2 });
            expect(input.retained).toBeFalsy();
          } else expect(input.file).toBeUndefined();
        }
      }
    }
  });

  it('from memory (no shared form), they stay bytes', async () => {
    const backend = fileReadingBackend(0);
    await runMethod('ties', inputs, { ...options, backend });
    expect(backend.seen.every((s) => s.inputs.every((i) => i.file === undefined && i.bytes.length > 0))).toBe(true);
  });

  it('the share of a chunk’s time the backend spent reading counts as waiting for reads', async () => {
    const waits = { read: 0, compute: 0 };
    // Results come 15 ms after a chunk begins, which is nearly all of the engine's waiting.
    const backend = fileReadingBackend(0, 15);
    await runMethod('ties', inputs, { ...options, budgetBytes: 16 * 1024, backend, files: true, onWait: (stage, ms) => (waits[stage] += ms) });
    expect(backend.seen.length).toBeGreaterThan(4);
    // The engine's own reads are instant (ranges only), so reads are about a quarter of the waits.
    expect(waits.compute).toBeGreaterThan(0);
    expect(waits.read / (waits.read + waits.compute)).toBeGreaterThan(0.2);
    expect(waits.read / (waits.read + waits.compute)).toBeLessThan(0.3);
  });
});
