import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend, HistogramTotals, type BackendChunk, type ComputeBackend } from '../../src/backend';
import { loadLocalModels } from '../../src/cli/local-models';
import { parseMergeConfig } from '../../src/config';
import { runMerge } from '../../src/engine';
import type { MergeMethod } from '../../src/methods';
import { buildPlan } from '../../src/plan';
import { NodeOutputFolder } from '../../src/storage/node-fs';
import { tempDir } from '../cli/run-alloy';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { hookedChunk } from '../helpers/cpu-chunk';
import { randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

/**
 * The buffers a merge reuses instead of allocating per chunk or per tensor: the output bytes a
 * backend encoded (ComputeBackend.recycle) and the histogram totals (HistogramTotals).
 */

/** The CPU backend, taking back the bytes it encoded: checks each comes back once, then overwrites it. */
function recyclingBackend(): ComputeBackend & { readonly encoded: number; readonly recycled: number } {
  const cpu = new CpuBackend();
  const out = new Set<Uint8Array>();
  let encoded = 0;
  let recycled = 0;
  return {
    name: 'cpu',
    get encoded() {
      return encoded;
    },
    get recycled() {
      return recycled;
    },
    beginChunk(spec, inputs): BackendChunk {
      return hookedChunk(cpu.beginChunk(spec, inputs), {
        encoded: (bytes) => {
          out.add(bytes);
          encoded++;
          return bytes;
        },
      });
    },
    recycle(bytes) {
      if (!out.delete(bytes)) throw new Error('recycled bytes the backend did not encode, or twice');
      recycled++;
      // Whatever still read them would write these into the output.
      bytes.fill(0xee);
    },
    dispose: () => cpu.dispose(),
  };
}

describe('reused buffers', () => {
  it('runMerge hands every encoded chunk back to the backend once written; the output is unchanged', async () => {
    const dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1, numLayers: 3, hiddenSize: 64, intermediateSize: 128 });
    await makeFineTune(join(dir, 'ft_a'), base, { seed: 2 });
    await makeFineTune(join(dir, 'ft_b'), base, { seed: 3 });
    const { config } = parseMergeConfig(
      'models:\n  - {model: ft_a, parameters: {weight: 0.6, density: 0.5}}\n  - {model: ft_b, parameters: {weight: 0.4, density: 0.7}}\n' +
        'base_model: base\nmerge_method: ties\ndtype: bfloat16\n',
    );
    const merge = async (backend: ComputeBackend, out: string): Promise<Buffer> => {
      const models = await loadLocalModels(config, dir);
      const plan = buildPlan(config, models.metadata, { randomSeed: 7 });
      try {
        await runMerge(plan, { backend, sources: models.sources, output: await NodeOutputFolder.open(join(dir, out)), budgetBytes: 16 * 1024 });
      } finally {
        await models.sources.closeAll();
      }
      return readFileSync(join(dir, out, 'model.safetensors'));
    };
    const backend = recyclingBackend();
    const recycled = await merge(backend, 'recycled');
    const reference = await merge(new CpuBackend(), 'reference');
    expect(backend.encoded).toBeGreaterThan(20); // many chunks of many tensors
    expect(backend.recycled).toBe(backend.encoded);
    expect(recycled.equals(reference)).toBe(true);
  });

  /** A method that records the upper magnitude histogram of its one input, and writes the input. */
  const histogramOf = (seen: Float64Array[]): MergeMethod =>
    ({
      name: 'histogram_probe',
      async merge(t) {
        const [hist] = await t.reduce((c) => [c.magnitudeHistogram(c.input(0), null)]);
        seen.push(hist);
        await t.apply((c) => c.input(0));
      },
    }) as MergeMethod;

  /** The upper 16 bits of |x|'s f32 pattern, counted: the histogram, worked out independently. */
  function upperHistogram(values: Float32Array): Float64Array {
    const hist = new Float64Array(65536);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (const b of bits) hist[(b & 0x7fffffff) >>> 16]++;
    return hist;
  }

  it('a job gives its histogram totals back when it ends; the next job gets them zeroed', async () => {
    const histograms = new HistogramTotals();
    const seen: Float64Array[] = [];
    const first = Float32Array.from(randomArray(3000, 1, 1));
    const second = Float32Array.from(randomArray(3000, 2, 1e-3));
    const options = { shape: [30, 100], budgetBytes: 4096, histograms, method: histogramOf(seen) };
    await runMethod('histogram_probe', [{ values: first }], options);
    await runMethod('histogram_probe', [{ values: second }], options);
    expect(seen[1]).toBe(seen[0]); // the same array, given back and taken again
    expect(seen[1]).toEqual(upperHistogram(second)); // with none of the first job's counts
    // Without a place to give them back to, each job has its own.
    const own: Float64Array[] = [];
    await runMethod('histogram_probe', [{ values: first }], { ...options, histograms: undefined, method: histogramOf(own) });
    expect(own[0]).toEqual(upperHistogram(first));
    expect(own[0]).not.toBe(seen[0]);
  });

  it('HistogramTotals keeps at most the number it was given', () => {
    const totals = new HistogramTotals(2);
    const arrays = [totals.take(), totals.take(), totals.take()];
    arrays[2][5] = 9;
    totals.give(arrays);
    const again = [totals.take(), totals.take(), totals.take()];
    expect(again.filter((a) => arrays.includes(a)).length).toBe(2);
    for (const a of again) expect(a.every((v) => v === 0)).toBe(true);
  });
});
