import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend, createSimdCpuBackend, type ComputeBackend } from '../../src/backend';
import { TensorJobRunner } from '../../src/engine/tensor-job-runner';
import { findMethod } from '../../src/methods';
import type { TensorJob } from '../../src/plan';
import { decodeToF32, encodeFromF32, MemoryByteSource, type NonFiniteCounts } from '../../src/storage';
import { mulberry32 } from '../fixtures/models';
import { runMethod } from '../helpers/run-method';

/** Counts NaN/±Inf of decoded values with JavaScript's own tests (the independent expectation). */
function classify(values: Iterable<number>): NonFiniteCounts {
  const c = { nan: 0, posInf: 0, negInf: 0 };
  for (const v of values) {
    if (Number.isNaN(v)) c.nan++;
    else if (v === Infinity) c.posInf++;
    else if (v === -Infinity) c.negInf++;
  }
  return c;
}

function randomMatrix(seed: number, n: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: n }, () => random() - 0.5);
}

const SHAPE = [64, 64];
const N = 64 * 64;
/** A budget small enough for many chunks that are re-read in every pass, and one that keeps them. */
const BUDGETS = { 'many chunks, re-read per pass': 6 * 1024, 'kept across passes': 1 << 24 };

// Counted by the engine on its thread for a backend that does not count (WebGPU), by the
// chunks of the JavaScript reference, and in WebAssembly by the SIMD backend.
const HOST_COUNTED: ComputeBackend = { name: 'webgpu', beginChunk: (s, i) => new CpuBackend().beginChunk(s, i), dispose: async () => undefined };
const BACKENDS: Record<string, () => Promise<ComputeBackend>> = {
  'engine-counted': async () => HOST_COUNTED,
  'JavaScript chunks': async () => new CpuBackend(),
  'SIMD chunks': createSimdCpuBackend,
};

for (const [backendLabel, makeBackend] of Object.entries(BACKENDS)) describe(`TensorJobRunner counts NaN and Inf (${backendLabel})`, () => {
  let backend: ComputeBackend;
  beforeAll(async () => {
    backend = await makeBackend();
  });
  for (const [label, budgetBytes] of Object.entries(BUDGETS)) {
    it(`slerp spreads 3 NaN inputs to all 4,096 outputs; each input element counted once (${label})`, async () => {
      const a = randomMatrix(1, N);
      const b = randomMatrix(2, N);
      for (const k of [5, 2000, 4095]) a[k] = NaN;
      const run = await runMethod('slerp', [{ values: a }, { values: b }], { shape: SHAPE, params: { t: 0.3 }, baseIndex: 0, budgetBytes, backend });
      expect(run.nonFinite).toEqual({
        tensor: 'model.layers.0.mlp.up_proj.weight',
        inputs: [{ model: 'm0', counts: { nan: 3, posInf: 0, negInf: 0 } }],
        output: { nan: 4096, posInf: 0, negInf: 0 },
      });
      expect(classify(run.values)).toEqual(run.nonFinite!.output);
    });

    it(`ties reads its inputs in several passes and still counts each element once (${label})`, async () => {
      const base = randomMatrix(3, N);
      const ft = randomMatrix(4, N);
      ft[10] = Infinity;
      ft[11] = -Infinity;
      ft[3000] = -Infinity;
      base[7] = NaN;
      const run = await runMethod('ties', [{ values: base }, { values: ft, params: { weight: 1, density: 0.5 } }], {
        shape: SHAPE,
        baseIndex: 0,
        budgetBytes,
        backend,
      });
      expect(run.nonFinite!.inputs).toEqual([
        { model: 'm0', counts: { nan: 1, posInf: 0, negInf: 0 } },
        { model: 'm1', counts: { nan: 0, posInf: 1, negInf: 2 } },
      ]);
      expect(run.nonFinite!.output).toEqual(classify(run.values));
    });
  }

  it('outputs that overflow f16 are counted as ±Inf (weight 1e38, no normalisation)', async () => {
    // 1e38·x in f32, then f16: 1 and 0.5 → +Inf, -2 → -Inf, 7e-34 → 7e4 ≥ 65520 → +Inf; 1e-34 → 1e4,
    // -1e-34 → -1e4 and 6.5e-34 → 65000 stay finite; 0 stays 0.
    const x = [1, -2, 0, 1e-34, 7e-34, 6.5e-34, -1e-34, 0.5];
    const run = await runMethod('linear', [{ values: x, dtype: 'F32', params: { weight: 1e38 } }], { params: { normalize: 0 }, dtype: 'F16', backend });
    expect(run.nonFinite).toEqual({ tensor: 'model.layers.0.mlp.up_proj.weight', inputs: [], output: { nan: 0, posInf: 3, negInf: 1 } });
    expect(classify(run.values)).toEqual(run.nonFinite!.output);
  });

  it('a raw copy (copyInput) counts the input and the output, in pieces of whole elements', async () => {
    const x = randomMatrix(5, 1001);
    x[0] = NaN;
    x[500] = Infinity;
    x[1000] = -Infinity;
    // Half the budget is 1001 bytes, half an element too many: reads must be cut to whole elements.
    const run = await runMethod('passthrough', [{ values: x }], { dtype: 'BF16', budgetBytes: 2003, backend });
    const counts = { nan: 1, posInf: 1, negInf: 1 };
    expect(run.nonFinite).toEqual({ tensor: 'model.layers.0.mlp.up_proj.weight', inputs: [{ model: 'm0', counts }], output: counts });
  });

  it('reports nothing for finite tensors, including ±max finite and subnormals', async () => {
    const x = [3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -1e-45, 0, -0];
    const run = await runMethod('linear', [{ values: x, params: { weight: 1 } }], { backend });
    expect(run.nonFinite).toBeNull();
  });

  it('an embedding aligned to a new vocabulary counts only the rows each input owns', async () => {
    const cols = 3;
    // a: 5 rows (f32), b: 4 rows (bf16); row r is [r + 0.25, -r, 100 + r] with some replaced.
    const rows = (n: number) => Float32Array.from({ length: n * cols }, (_, k) => [Math.floor(k / cols) + 0.25, -Math.floor(k / cols), 100 + Math.floor(k / cols)][k % cols]);
    const a = rows(5);
    const b = rows(4);
    a[4 * cols + 1] = NaN; // a's row 4: its own output row 0, also b's default row 0 and both padding means
    a[1 * cols + 0] = Infinity; // a's row 1: no output row uses it
    b[2 * cols + 2] = -Infinity; // b's row 2: no output row uses it
    b[3 * cols + 0] = -Infinity; // b's row 3: its own output row 5, also a's default row 5
    const job: TensorJob = {
      name: 'model.embed_tokens.weight',
      shape: [8, cols],
      dtype: 'F32',
      method: 'linear',
      baseIndex: -1,
      params: { normalize: 1 },
      isEmbed: true,
      byteLength: 8 * cols * 4,
      inputs: [
        { model: 'a', tensor: { name: 'e', dtype: 'F32', shape: [5, cols], file: 'a', offset: 0, byteLength: 5 * cols * 4 }, params: { weight: 1 }, rowMap: Int32Array.from([4, 3, 2, -1, 0, -1]) },
        { model: 'b', tensor: { name: 'e', dtype: 'BF16', shape: [4, cols], file: 'b', offset: 0, byteLength: 4 * cols * 2 }, params: { weight: 1 }, rowMap: Int32Array.from([-1, 0, 1, -1, -1, 3]) },
      ],
      alignment: {
        tokens: 6,
        defaults: {
          rows: Int32Array.from([0, 1, 3, 4, 5]),
          start: Int32Array.from([0, 1, 3, 3, 4, 5]),
          input: Int32Array.from([0, 0, 1, 0, 1]),
          row: Int32Array.from([4, 3, 0, 0, 3]),
        },
      },
    };
    const sources: Record<string, MemoryByteSource> = { a: new MemoryByteSource('a', encodeFromF32(a, 'F32')), b: new MemoryByteSource('b', encodeFromF32(b, 'BF16')) };
    for (const budgetBytes of [64, 1 << 20]) {
      const written: Uint8Array[] = [];
      const runner = new TensorJobRunner(job, {
        backend,
        source: async (_model, file) => sources[file],
        seed: 1,
        budgetBytes,
        warn: () => undefined,
        onRead: () => undefined,
        onOutput: () => undefined,
        write: async (bytes) => void written.push(bytes.slice()),
      });
      await findMethod('linear')!.merge(runner);
      const output = decodeToF32(Uint8Array.from(written.flatMap((w) => [...w])), 'F32');
      expect(runner.nonFinite(), `budget ${budgetBytes}`).toEqual({
        tensor: 'model.embed_tokens.weight',
        inputs: [
          { model: 'a', counts: { nan: 1, posInf: 0, negInf: 0 } },
          { model: 'b', counts: { nan: 0, posInf: 0, negInf: 1 } },
        ],
        output: classify(output),
      });
      // Output rows 0 (NaN in column 1), 5 (-Inf in column 0) and the padding rows 6 and 7 (a NaN
      // column and a -Inf column each).
      expect(classify(output)).toEqual({ nan: 3, posInf: 0, negInf: 3 });
    }
  });
});
