import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend, createSimdCpuBackend, type ComputeBackend } from '../../src/backend';
import { WorkerPoolBackend } from '../../src/backend/pool';
import { nodeWorkerPort } from '../../src/backend/pool/node';
import { ReadBuffers } from '../../src/engine';
import type { FloatDtype } from '../../src/storage/types';
import { poolWorkerUrl } from '../helpers/pool-worker';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod, type ArrayInput } from '../helpers/run-method';

describe('ReadBuffers', () => {
  it('hands out exactly the bytes asked for and reuses a released buffer', () => {
    const buffers = new ReadBuffers(1 << 20);
    const a = buffers.take(10_000);
    expect(a.length).toBe(10_000);
    expect(a.byteOffset).toBe(0);
    buffers.release(a);
    expect(buffers.idleBytes).toBe(a.buffer.byteLength);
    // A slightly smaller read (a chunk one row shorter) gets the same memory.
    const b = buffers.take(9_000);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(9_000);
    expect(buffers.idleBytes).toBe(0);
    // While b is out, another take gets other memory.
    const c = buffers.take(9_000);
    expect(c.buffer).not.toBe(b.buffer);
    expect(buffers.stats).toEqual({ reused: 1, allocated: 2 });
  });

  it('takes any view of a buffer back, as a worker returns it', () => {
    const buffers = new ReadBuffers(1 << 20);
    const a = buffers.take(5000);
    const back = new Uint8Array(a.buffer, 16, 100);
    buffers.release(back);
    expect(buffers.take(5000).buffer).toBe(a.buffer);
  });

  it('does not hand a large buffer out for a small read, nor a small one for a large read', () => {
    const buffers = new ReadBuffers(1 << 24);
    const big = buffers.take(1 << 20);
    buffers.release(big);
    const small = buffers.take(1000);
    expect(small.buffer).not.toBe(big.buffer);
    buffers.release(small);
    expect(buffers.take(1 << 21).buffer).not.toBe(big.buffer);
    expect(buffers.take(600_000).buffer).toBe(big.buffer);
  });

  it('ignores a detached (transferred) buffer', () => {
    const buffers = new ReadBuffers(1 << 20);
    const a = buffers.take(8192);
    structuredClone(a, { transfer: [a.buffer as ArrayBuffer] });
    expect(a.byteLength).toBe(0);
    buffers.release(a);
    expect(buffers.idleBytes).toBe(0);
    expect(buffers.take(8192).buffer.byteLength).toBeGreaterThan(0);
  });

  it('keeps at most maxFreeBytes idle, dropping the smallest buffers first', () => {
    const buffers = new ReadBuffers(300_000);
    const taken = [100_000, 20_000, 150_000, 90_000].map((n) => buffers.take(n));
    for (const t of taken) buffers.release(t);
    expect(buffers.idleBytes).toBeLessThanOrEqual(300_000);
    // The 150 000 and 100 000 byte buffers stayed; the 20 000 and 90 000 byte ones were dropped.
    expect(buffers.take(150_000).buffer).toBe(taken[2].buffer);
    expect(buffers.take(100_000).buffer).toBe(taken[0].buffer);
    expect(buffers.idleBytes).toBe(0);
    // A buffer larger than the whole allowance is not kept at all.
    buffers.release(new ReadBuffers(1 << 30).take(400_000));
    expect(buffers.idleBytes).toBe(0);
  });

  it('keeps at most MAX_FREE buffers idle', () => {
    const buffers = new ReadBuffers(1 << 30);
    const taken = Array.from({ length: ReadBuffers.MAX_FREE + 10 }, () => buffers.take(100));
    for (const t of taken) buffers.release(t);
    expect(buffers.idleBytes).toBe(ReadBuffers.MAX_FREE * taken[0].buffer.byteLength);
  });

  it('refuses a buffer released twice (it would be handed out twice)', () => {
    const buffers = new ReadBuffers(1 << 20);
    const a = buffers.take(5000);
    buffers.release(a);
    expect(() => buffers.release(a)).toThrow(/released twice/);
  });
});

/**
 * Recycling must not change a single output byte. The recycler here poisons every buffer given
 * back, so a backend that still read a released buffer (an input it viewed instead of copying, a
 * buffer a worker had not finished with) would compute on garbage, and every buffer is reused
 * across chunks and passes (tiny budget: dozens of chunks per pass).
 */
class PoisoningReadBuffers extends ReadBuffers {
  override release(bytes: Uint8Array): void {
    if (bytes.buffer.byteLength > 0) new Uint8Array(bytes.buffer).fill(0xa5);
    super.release(bytes);
  }
}

const SHAPE = [512, 96];
const TINY = 64 * 1024;

function inputs(dtype: FloatDtype, count: number, specials: boolean): ArrayInput[] {
  const n = SHAPE[0] * SHAPE[1];
  const base = randomArray(n, 7, 0.02);
  const models = Array.from({ length: count }, (_, k) => (k === 0 ? base : perturbed(base, k + 11, 0.005)));
  // Awkward values: NaN, ±Inf, subnormals, ±0, a bf16 rounding tie.
  const awkward = specials ? [NaN, Infinity, -Infinity, 1e-40, -1e-40, 0, -0, 1.00390625] : [1e-40, -1e-40, 0, -0, 1.00390625];
  models[1] = models[1].slice();
  awkward.forEach((v, i) => (models[1][(i * 4099 + 13) % n] = v));
  return models.map((values, k) => ({ values, dtype, params: { weight: [0.6, 0.3, 0.5, 0.2][k], density: [1, 0.5, 0.7, 0.3][k] } }));
}

// model_stock refuses NaN task vectors (their cosine): it gets the finite awkward values only.
const METHODS: { method: string; params: Record<string, number>; baseIndex: number; specials: boolean }[] = [
  { method: 'linear', params: {}, baseIndex: -1, specials: true },
  { method: 'ties', params: {}, baseIndex: 0, specials: true },
  { method: 'model_stock', params: {}, baseIndex: 0, specials: false },
];

let workerUrl: URL;
beforeAll(async () => {
  workerUrl = await poolWorkerUrl();
});

const BACKENDS: { name: string; make: () => Promise<ComputeBackend> }[] = [
  { name: 'JavaScript CPU', make: async () => new CpuBackend() },
  { name: 'SIMD CPU', make: createSimdCpuBackend },
  {
    name: 'pool of 1 worker',
    make: async () => new WorkerPoolBackend({ workers: 1, spawn: () => nodeWorkerPort(workerUrl), local: await createSimdCpuBackend(), inThreadBelow: 0 }),
  },
  {
    name: 'pool of 2 workers, no cache',
    make: async () =>
      new WorkerPoolBackend({ workers: 2, spawn: () => nodeWorkerPort(workerUrl), local: await createSimdCpuBackend(), inThreadBelow: 0, cacheBytes: 0 }),
  },
  {
    name: 'pool of 2 workers, JavaScript CPU on the calling thread',
    make: async () => new WorkerPoolBackend({ workers: 2, spawn: () => nodeWorkerPort(workerUrl), local: new CpuBackend(), inThreadBelow: 0 }),
  },
];

for (const { name, make } of BACKENDS) {
  describe(`recycled read buffers on the ${name} backend`, () => {
    let backend: ComputeBackend;
    beforeAll(async () => {
      backend = await make();
    });
    afterAll(() => backend.dispose());

    for (const { method, params, baseIndex, specials } of METHODS) {
      for (const dtype of ['F32', 'BF16'] as const) {
        it(`${method} on ${dtype} inputs: the same bytes and NaN/Inf counts, buffers reused`, async () => {
          const models = inputs(dtype, method === 'linear' ? 3 : 4, specials);
          const options = { params, baseIndex, shape: SHAPE, dtype, budgetBytes: TINY, backend, seed: 99 };
          const want = await runMethod(method, models, options);
          // (The engine lets a quarter of the budget idle; at this tiny budget a chunk is larger than
          // the budget says, 1024 elements at least.)
          const readBuffers = new PoisoningReadBuffers(1 << 20);
          const got = await runMethod(method, models, { ...options, readBuffers });
          expect(Buffer.from(got.bytes).equals(Buffer.from(want.bytes))).toBe(true);
          expect(got.nonFinite).toEqual(want.nonFinite);
          if (specials) expect(got.nonFinite?.inputs.length).toBe(1);
          // Every read went into a recycled buffer, and nearly all of them into one given back
          // (by the engine, or by a worker that had it transferred): a handful of buffers per
          // input for the chunks in flight, against dozens of chunks per pass.
          const { reused, allocated } = readBuffers.stats;
          const inFlight = (backend.chunksInFlight ?? 1) + 2;
          expect(allocated).toBeGreaterThan(0);
          expect(allocated).toBeLessThanOrEqual(inFlight * models.length);
          expect(reused).toBeGreaterThan(40 * models.length);
        });
      }
    }
  });
}
