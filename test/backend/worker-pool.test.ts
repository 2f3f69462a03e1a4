import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCpuBackend, type ComputeBackend } from '../../src/backend';
import { WorkerPoolBackend, type ChunkRequest, type PoolRequest, type WorkerPort } from '../../src/backend/pool';
import { nodeWorkerPort } from '../../src/backend/pool/node';
import { METHODS, type MergeMethod } from '../../src/methods';
import { decodeToF32 } from '../../src/storage';
import { NodeByteSource } from '../../src/storage/node-fs';
import type { FloatDtype } from '../../src/storage/types';
import type { ReductionToken } from '../../src/backend/reduction';
import { poolWorkerUrl } from '../helpers/pool-worker';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod, type ArrayInput, type RunOptions } from '../helpers/run-method';
import { METHOD_GLOBAL_PARAMS as GLOBALS } from '../helpers/method-params';

/**
 * Every merge method on the worker pool against the CPU backend on one thread, through the real
 * job runner: the output bytes must be identical for 1, 2 and 3 workers, with and without the
 * cross-pass cache (and with a cache too small for all chunks), at a natural chunk size and at a
 * 64 KiB budget (many chunks per tensor, several in flight).
 */

const NATURAL = 1 << 24;
const TINY = 64 * 1024;

function modelParams(method: MergeMethod, k: number): Record<string, number> {
  const names = new Set(method.params.filter((p) => p.scope === 'model').map((p) => p.name));
  const params: Record<string, number> = {};
  if (names.has('weight')) params.weight = [0.6, 0.3, 0.5, 0.2][k % 4];
  if (names.has('density')) params.density = [0.5, 0.7, 0.3][k % 3];
  if (names.has('epsilon')) params.epsilon = 0.1;
  if (names.has('gamma')) params.gamma = 0.05;
  if (names.has('scale')) params.scale = 0.5;
  return params;
}

/** Awkward values in one model: NaN, ±Inf, subnormals, ±0, a bf16 rounding tie. */
function withSpecials(values: Float32Array): Float32Array {
  const out = values.slice();
  const specials = [NaN, Infinity, -Infinity, 1e-40, -1e-40, 0, -0, 1.00390625];
  specials.forEach((v, i) => (out[(i * 977 + 13) % out.length] = v));
  return out;
}

interface Case {
  readonly name: string;
  readonly inputs: ArrayInput[];
  readonly options: RunOptions;
}

function casesFor(method: MergeMethod): Case[] {
  const hasBase = method.base !== 'member';
  const count = Math.max(method.minInputs ?? 1, Math.min(method.maxInputs ?? 4, hasBase ? 4 : 3));
  const out: Case[] = [];
  for (const [shape, dtype, specials] of [[[64, 96], 'BF16', false], [[3000], 'F32', true]] as const) {
    const n = shape.reduce((a, b) => a * b, 1);
    const base = randomArray(n, 1, 0.02);
    const models = Array.from({ length: count }, (_, k) => (hasBase && k === 1 ? base : perturbed(base, k + 2, 0.005)));
    if (specials) models[0] = withSpecials(models[0]);
    for (const budget of [NATURAL, TINY]) {
      out.push({
        name: `${method.name} ${dtype} [${shape.join(', ')}] ${budget === NATURAL ? 'natural' : 'tiny'}${specials ? ' with NaN/Inf' : ''}`,
        inputs: models.map((values, k) => ({ values, params: modelParams(method, k), dtype: dtype as FloatDtype })),
        options: {
          baseIndex: hasBase && count > 1 ? 1 : hasBase ? 0 : -1,
          shape: [...shape],
          dtype: dtype as FloatDtype,
          params: GLOBALS[method.name] ?? {},
          budgetBytes: budget,
          seed: 4242,
        },
      });
    }
  }
  return out;
}

const CASES = METHODS.flatMap(casesFor);

type Outcome = { bytes: Uint8Array; nonFinite: unknown } | { error: string };
async function outcome(c: Case, backend?: ComputeBackend, files = false): Promise<Outcome> {
  try {
    const run = await runMethod(c.inputs[0] && c.name.split(' ')[0], c.inputs, { ...c.options, backend, files });
    return { bytes: run.bytes, nonFinite: run.nonFinite };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * Output bytes equal, except that two NaNs may differ in payload: a NaN that comes from a scalar
 * the method computes in JavaScript on the main thread (slerp's angle of a NaN dot product) has the
 * payload V8 gives it, which depends on how far V8 has optimised that code, in any backend.
 */
function expectSameBytes(got: Uint8Array, want: Uint8Array, dtype: FloatDtype): void {
  if (Buffer.from(got).equals(Buffer.from(want))) return;
  expect(got.length).toBe(want.length);
  const a = decodeToF32(got, dtype);
  const b = decodeToF32(want, dtype);
  const bitsA = new Uint32Array(a.buffer);
  const bitsB = new Uint32Array(b.buffer);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    expect(bitsA[i], `element ${i}`).toBe(bitsB[i]);
  }
}

const references = new Map<string, Outcome>();
let inThread: ComputeBackend;
let workerUrl: URL;

beforeAll(async () => {
  workerUrl = await poolWorkerUrl();
  // The reference is the in-thread CPU backend the workers run (the SIMD kernels, which
  // test/backend/simd-*.test.ts compare with the JavaScript loops): outputs must not depend on the
  // number of workers. (The JavaScript loops' NaN payloads vary with V8's optimisation tier.)
  inThread = await createCpuBackend();
  for (const c of CASES) references.set(c.name, await outcome(c, inThread));
});

it('covers every registered method and most succeed on awkward data', () => {
  expect(new Set(CASES.map((c) => c.name.split(' ')[0])).size).toBe(METHODS.length);
  expect(METHODS.length).toBeGreaterThanOrEqual(20);
  const failed = [...references.values()].filter((o) => 'error' in o).length;
  expect(failed).toBeLessThan(CASES.length / 4);
});

// `files`: the inputs are files, which the workers read themselves (ChunkInputBytes.file).
const VARIANTS = [
  { workers: 1, cacheBytes: 0, files: false },
  { workers: 2, cacheBytes: 40_000, files: false }, // room for a few chunks' vectors only
  { workers: 3, cacheBytes: undefined, files: false }, // the default: everything fits
  { workers: 2, cacheBytes: 40_000, files: true },
  { workers: 1, cacheBytes: 0, files: true },
];

for (const variant of VARIANTS) {
  describe(`pool of ${variant.workers} worker(s), cache ${variant.cacheBytes ?? 'default'}${variant.files ? ', inputs read by the workers from files' : ''}: bytes = CPU backend`, () => {
    let pool: WorkerPoolBackend;
    beforeAll(() => {
      pool = new WorkerPoolBackend({
        workers: variant.workers,
        spawn: () => nodeWorkerPort(workerUrl),
        local: inThread,
        cacheBytes: variant.cacheBytes,
        inThreadBelow: 0, // every chunk through a worker
      });
    });
    afterAll(() => pool.dispose());
    for (const c of CASES) {
      it(c.name, async () => {
        const got = await outcome(c, pool, variant.files);
        const want = references.get(c.name)!;
        if ('error' in want) expect(got).toEqual(want);
        else {
          expect('bytes' in got ? undefined : got).toBeUndefined();
          expectSameBytes((got as { bytes: Uint8Array }).bytes, want.bytes, c.options.dtype ?? 'F32');
          // NaN/Inf counted by the workers (and on the main side for inputs they never get).
          expect((got as { nonFinite: unknown }).nonFinite).toEqual(want.nonFinite);
        }
      });
    }
  });
}

/** The worker each recorded request went to. */
const workerOf = new WeakMap<ChunkRequest, number>();

/** A port that records what the pool sends, and to which worker (and otherwise is the real worker). */
function recordingPort(url: URL, sent: ChunkRequest[], index: number): WorkerPort {
  const port = nodeWorkerPort(url);
  const record = (m: ChunkRequest): void => {
    sent.push(m);
    workerOf.set(m, index);
  };
  return { ...port, post: (m, t) => (m.type === 'chunk' && record(m), port.post(m, t)), listen: port.listen, terminate: port.terminate };
}

/**
 * Runs case `name` on a pool of 2 workers that records the requests it sends, expects the
 * reference's bytes, and returns the requests. `files`: the inputs are files the workers read.
 */
async function recordedRun(name: string, files: boolean): Promise<ChunkRequest[]> {
  const sent: ChunkRequest[] = [];
  const pool = new WorkerPoolBackend({ workers: 2, spawn: (i) => recordingPort(workerUrl, sent, i), local: inThread, inThreadBelow: 0 });
  try {
    const got = await outcome(CASES.find((x) => x.name === name)!, pool, files);
    expect(Buffer.from((got as { bytes: Uint8Array }).bytes).equals(Buffer.from((references.get(name) as { bytes: Uint8Array }).bytes))).toBe(true);
  } finally {
    await pool.dispose();
  }
  return sent;
}

const INPUTS = ['input0', 'input1', 'input2', 'input3'];

describe('cross-pass cache', () => {
  it('TIES reads its inputs once: later passes get no input bytes', async () => {
    const sent = await recordedRun('ties BF16 [64, 96] tiny', false);
    const chunks = Math.max(...sent.map((r) => r.spec.chunkCount));
    expect(chunks).toBeGreaterThan(2);
    const passes = sent.length / chunks;
    expect(passes).toBeGreaterThanOrEqual(3); // histogram pass(es), then the output pass
    const firstPass = sent.slice(0, chunks);
    const lastPass = sent.slice(-chunks);
    // First pass: all four inputs travel, and are kept.
    for (const r of firstPass) {
      expect(r.inputs.filter((i) => i !== null).length).toBe(4);
      expect(r.stores.map(([, key]) => key.split('|')[2]).sort()).toEqual(INPUTS);
      expect(r.hits).toEqual([]);
    }
    // Later passes: nothing travels but the graph.
    for (const r of [...sent.slice(chunks, -chunks), ...lastPass]) {
      expect(r.inputs.every((i) => i === null)).toBe(true);
      expect(r.hits.map(([, key]) => key.split('|')[2]).sort()).toEqual(INPUTS);
      expect(r.stores).toEqual([]);
    }
    // The output pass is the last: it forgets what it takes from the cache, the passes before keep it.
    expect(sent.map((r) => r.forgetHits)).toEqual(sent.map((_, i) => i >= sent.length - chunks));
  });
});

describe('cross-pass cache over several tensors', () => {
  /** Runs cases one after another on one recording pool (a job each), expecting the reference's bytes; the requests of each. */
  async function recordedJobs(names: readonly string[]): Promise<ChunkRequest[][]> {
    const sent: ChunkRequest[] = [];
    const pool = new WorkerPoolBackend({ workers: 2, spawn: (i) => recordingPort(workerUrl, sent, i), local: inThread, inThreadBelow: 0 });
    const jobs: ChunkRequest[][] = [];
    try {
      for (const name of names) {
        const before = sent.length;
        const got = await outcome(CASES.find((x) => x.name === name)!, pool, false);
        expect(Buffer.from((got as { bytes: Uint8Array }).bytes).equals(Buffer.from((references.get(name) as { bytes: Uint8Array }).bytes)), name).toBe(true);
        jobs.push(sent.slice(before));
      }
    } finally {
      await pool.dispose();
    }
    return jobs;
  }
  it("model_stock's output pass takes the inputs its Gram pass read from the cache, and a new tensor starts from none of them", async () => {
    const [first, second] = await recordedJobs(['model_stock BF16 [64, 96] tiny', 'ties BF16 [64, 96] tiny']);
    const chunks = Math.max(...first.map((r) => r.spec.chunkCount));
    expect(first.length).toBe(2 * chunks);
    for (const r of first.slice(0, chunks)) expect(r.stores.map(([, key]) => key.split('|')[2]).sort()).toEqual(INPUTS);
    for (const r of first.slice(chunks)) {
      expect(r.inputs.every((i) => i === null)).toBe(true);
      expect(r.hits.length).toBe(4);
    }
    // The next tensor's first pass finds nothing of the first one's: its keys name its own job.
    expect(second.slice(0, chunks).every((r) => r.hits.length === 0 && r.inputs.every((i) => i !== null))).toBe(true);
    const job = (r: ChunkRequest): string => r.stores[0][1].split('|')[0];
    expect(job(second[0])).not.toBe(job(first[0]));
  });
});

describe('inputs read by the workers', () => {
  it('from files, the pool sends where the bytes lie, never the bytes, and TIES reads each once', async () => {
    const sent = await recordedRun('ties BF16 [64, 96] tiny', true);
    const chunks = Math.max(...sent.map((r) => r.spec.chunkCount));
    expect(chunks).toBeGreaterThan(2);
    const inputs = sent.flatMap((r) => r.inputs.filter((i) => i !== null));
    expect(inputs.length).toBe(4 * chunks); // all four once
    for (const input of inputs) expect(input.bytes.length).toBe(0);
    // Each file goes to each worker once, in the first request that reads it there; the others name it by its number.
    for (const worker of [0, 1]) {
      const requests = sent.filter((r) => workerOf.get(r) === worker);
      expect(requests.length).toBeGreaterThan(0);
      const files = requests.flatMap((r) => r.files);
      expect(files.map(([, file]) => file.kind)).toEqual(['fd', 'fd', 'fd', 'fd']);
      expect(requests[0].files.map(([number]) => number).sort()).toEqual(requests[0].inputs.map((i) => i!.file!.file).sort());
      expect(new Set(requests.flatMap((r) => r.inputs.flatMap((i) => (i ? [i.file!.file] : []))))).toEqual(new Set(files.map(([number]) => number)));
    }
    // Chunk k of every input starts where chunk k of the tensor does, after the file's padding.
    const rowBytes = 96 * 2;
    for (const r of sent.slice(0, chunks)) {
      for (const input of r.inputs) expect(input!.file!.offset).toBe(37 + r.spec.rowStart * rowBytes);
      expect(r.inputs.reduce((s, i) => s + i!.file!.length, 0)).toBe(4 * r.spec.rows * rowBytes);
    }
  });

  it('a file cut short after it was opened fails its chunk with what happened and what to do', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'alloy-cut-')), 'model.safetensors');
    writeFileSync(path, new Uint8Array(64));
    const source = await NodeByteSource.open(path);
    const pool = new WorkerPoolBackend({ workers: 1, spawn: () => nodeWorkerPort(workerUrl), local: inThread, inThreadBelow: 0 });
    try {
      truncateSync(path, 20);
      const chunk = pool.beginChunk(
        { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: 8, rowStart: 0, rows: 1, cols: 8, totalRows: 1, seed: 1 },
        [{ bytes: new Uint8Array(0), file: { file: source.shared!, offset: 8, length: 32 }, dtype: 'F32', cols: 8 }],
      );
      const sum = chunk.ops.sum(chunk.ops.input(0));
      await expect(chunk.readPartials([sum as never])).rejects.toThrow(
        new RegExp(`${path.replace(/[.]/g, '\\.')}: the file ended at byte 20 while reading 32 bytes at 8 \\(it has 20 bytes now, 64 when it was opened\\): it was truncated while in use; re-download it`),
      );
    } finally {
      await pool.dispose();
      await source.close();
    }
  });
});

describe('recycled output bytes', () => {
  it('go back to the worker that encoded them, which encodes a later chunk into their buffer; in-thread ones to the local backend', async () => {
    const posted: { worker: number; type: string }[] = [];
    const spawn = (worker: number): WorkerPort => {
      const port = nodeWorkerPort(workerUrl);
      return { ...port, post: (m, t) => (posted.push({ worker, type: m.type }), port.post(m, t)) };
    };
    const localRecycled: Uint8Array[] = [];
    const local: ComputeBackend = Object.assign(Object.create(inThread) as ComputeBackend, { recycle: (b: Uint8Array) => localRecycled.push(b) });
    const pool = new WorkerPoolBackend({ workers: 2, spawn, local, inThreadBelow: 1000 });
    const values = randomArray(4096, 3, 1);
    const f32 = new Uint8Array(values.buffer);
    const encode = async (backend: ComputeBackend, length: number): Promise<Uint8Array> => {
      const spec = { tensorName: 'w', chunkIndex: 0, chunkCount: 1, start: 0, length, rowStart: 0, rows: 1, cols: length, totalRows: 1, seed: 1 };
      const chunk = backend.beginChunk(spec, [{ bytes: f32.slice(0, length * 4), dtype: 'F32', cols: length }]);
      try {
        return await chunk.encode(chunk.ops.mul(chunk.ops.input(0), 3), 'F32');
      } finally {
        chunk.release();
      }
    };
    try {
      const first = await encode(pool, 4096);
      expect(Buffer.from(first).equals(Buffer.from(await encode(inThread, 4096)))).toBe(true);
      const encodedBy = posted.at(-1)!.worker;
      pool.recycle(first);
      expect(first.buffer.byteLength).toBe(0); // moved back to the worker, not copied
      expect(posted.at(-1)).toEqual({ worker: encodedBy, type: 'recycle' });
      // The same tensor and chunk go to the same worker: 3000 values fit the 16 KiB buffer that came back.
      const second = await encode(pool, 3000);
      expect(posted.at(-1)!.worker).toBe(encodedBy);
      expect(second.byteLength).toBe(12000);
      expect(second.buffer.byteLength).toBe(4096 * 4);
      expect(Buffer.from(second).equals(Buffer.from(await encode(inThread, 3000)))).toBe(true);
      // A chunk below inThreadBelow is encoded here: its bytes go back to the local backend.
      const small = await encode(pool, 500);
      pool.recycle(small);
      expect(localRecycled).toEqual([small]);
    } finally {
      await pool.dispose();
    }
  });
});

describe('routing', () => {
  it('starts a tensor on the worker with the fewest elements queued, and sends its chunk k to the same worker in every pass', async () => {
    // Ports that record where each request goes and never answer, so that every chunk stays queued.
    const routed: [number, ChunkRequest][] = [];
    const port = (worker: number): WorkerPort => ({
      post: (m) => void (m.type === 'chunk' && routed.push([worker, m])),
      listen: () => undefined,
      terminate: () => undefined,
    });
    const pool = new WorkerPoolBackend({ workers: 2, spawn: port, local: inThread, inThreadBelow: 0 });
    const send = (jobId: number, chunkIndex: number, length: number): void => {
      const spec = { tensorName: `t${jobId}`, chunkIndex, chunkCount: 2, start: 0, length, rowStart: 0, rows: 1, cols: length, totalRows: 1, seed: 0, jobId };
      const input = { bytes: new Uint8Array(length * 4), dtype: 'F32' as const, cols: length };
      pool.run(spec, [input], [{ op: 'input', args: [0] }], [0], { kind: 'encode', dtype: 'F32' }).catch(() => undefined);
    };
    send(1, 0, 1000); // worker 0: both idle, its turn
    send(2, 0, 10); // worker 1: idle
    send(3, 0, 10); // worker 1 again, 10 queued against 1000 (by turns: worker 0)
    send(4, 0, 10); // worker 1: 20 against 1000
    send(1, 1, 1000); // job 1's second chunk: the worker after its first
    send(3, 0, 10); // job 3's next pass: where its chunk 0 went before
    await pool.dispose();
    expect(routed.map(([worker, r]) => [r.spec.jobId, r.spec.chunkIndex, worker])).toEqual([
      [1, 0, 0],
      [2, 0, 1],
      [3, 0, 1],
      [4, 0, 1],
      [1, 1, 1],
      [3, 0, 1],
    ]);
  });
});

describe('cross-pass cache of two tensors at once', () => {
  it('two jobs running at once on one pool each take their later passes from their own cached inputs', async () => {
    const sent: ChunkRequest[] = [];
    const pool = new WorkerPoolBackend({ workers: 2, spawn: (i) => recordingPort(workerUrl, sent, i), local: inThread, inThreadBelow: 0 });
    const names = ['ties BF16 [64, 96] tiny', 'model_stock BF16 [64, 96] tiny'];
    try {
      const got = await Promise.all(names.map((name) => outcome(CASES.find((x) => x.name === name)!, pool)));
      got.forEach((g, i) => expect(Buffer.from((g as { bytes: Uint8Array }).bytes).equals(Buffer.from((references.get(names[i]) as { bytes: Uint8Array }).bytes)), names[i]).toBe(true));
    } finally {
      await pool.dispose();
    }
    const jobs = [...new Set(sent.map((r) => r.spec.jobId))];
    expect(jobs).toHaveLength(2);
    // The two jobs' requests interleave.
    const order = sent.map((r) => r.spec.jobId);
    expect(order.indexOf(jobs[1])).toBeLessThan(order.lastIndexOf(jobs[0]));
    for (const job of jobs) {
      const requests = sent.filter((r) => r.spec.jobId === job);
      const chunks = requests[0].spec.chunkCount;
      for (const r of requests.slice(chunks)) {
        expect(r.inputs.every((i) => i === null)).toBe(true);
        expect(r.hits.map(([, key]) => key.split('|')[0])).toEqual(r.hits.map(() => String(job)));
      }
    }
  });

  it('a job that ends has its workers forget what it kept and did not take back', async () => {
    const messages: PoolRequest[] = [];
    const port = (): WorkerPort => {
      const inner = nodeWorkerPort(workerUrl);
      return { ...inner, post: (m, t) => (messages.push(m), inner.post(m, t)) };
    };
    const pool = new WorkerPoolBackend({ workers: 1, spawn: port, local: inThread, inThreadBelow: 0 });
    const spec = { tensorName: 't', chunkIndex: 0, chunkCount: 2, start: 0, length: 64, rowStart: 0, rows: 1, cols: 64, totalRows: 2, seed: 1, jobId: 9001 };
    const bytes = new Uint8Array(new Float32Array(64).fill(0.5).buffer);
    const sum = async (): Promise<ChunkRequest> => {
      const chunk = pool.beginChunk(spec, [{ bytes: bytes.slice(), dtype: 'F32', cols: 64 }]);
      try {
        expect(await chunk.readPartials([chunk.ops.sum(chunk.ops.input(0)) as unknown as ReductionToken])).toEqual([32]);
      } finally {
        chunk.release();
      }
      return messages.at(-1) as ChunkRequest;
    };
    try {
      // A statistics pass keeps the input; a second one takes it from the cache.
      expect((await sum()).stores.map(([, key]) => key)).toEqual(['9001|0|input0']);
      expect((await sum()).hits.map(([, key]) => key)).toEqual(['9001|0|input0']);
      pool.endJob(9001);
      expect(messages.at(-1)).toEqual({ type: 'forget', keys: ['9001|0|input0'] });
      // Forgotten: the same chunk asked again reads its input and keeps it anew.
      const again = await sum();
      expect(again.hits).toEqual([]);
      expect(again.inputs[0]).not.toBeNull();
    } finally {
      await pool.dispose();
    }
  });
});

for (const method of ['della', 'dare_ties'] as const) {
  describe(`cross-pass cache of ${method}`, () => {
    const tiny = CASES.find((x) => x.name === `${method} BF16 [64, 96] tiny`)!;
    const c = { ...tiny, options: { ...tiny.options, params: { ...tiny.options.params, rescale: 1 } } };
    const base = c.options.baseIndex!;
    const others = c.inputs.map((_, i) => i).filter((i) => i !== base);
    const keys = (list: readonly (readonly [number, string])[]): string[] => list.map(([, key]) => key.split('|')[2]).sort();
    const masks = (list: readonly (readonly [number, string])[]): string[] => keys(list).filter((k) => k.startsWith('mask:gt('));

    /** The requests of a pooled merge of `c` (equal to the in-thread bytes), rescale pass first. */
    async function run(cacheBytes?: number): Promise<{ rescale: ChunkRequest[]; output: ChunkRequest[] }> {
      const sent: ChunkRequest[] = [];
      const pool = new WorkerPoolBackend({ workers: 2, spawn: (i) => recordingPort(workerUrl, sent, i), local: inThread, inThreadBelow: 0, cacheBytes });
      try {
        const want = await outcome(c, inThread);
        const got = await outcome(c, pool);
        expect(Buffer.from((got as { bytes: Uint8Array }).bytes).equals(Buffer.from((want as { bytes: Uint8Array }).bytes))).toBe(true);
      } finally {
        await pool.dispose();
      }
      const chunks = Math.max(...sent.map((r) => r.spec.chunkCount));
      expect(chunks).toBe(7);
      expect(sent.length).toBe(2 * chunks);
      return { rescale: sent.slice(0, chunks), output: sent.slice(chunks) };
    }

    it('its output pass takes the keep masks (a bit per element) and inputs of its rescale pass from the cache: it reads, draws (and ranks) nothing again', async () => {
      const { rescale, output } = await run();
      for (const r of rescale) {
        expect(masks(r.stores)).toHaveLength(others.length);
        expect(keys(r.stores)).toEqual([...INPUTS, ...masks(r.stores)].sort());
        // The masks, and only they, are kept as bits; each spells the keep test, scalars and all.
        expect(r.bitStores.map((id) => r.nodes[id].op)).toEqual(others.map(() => 'gt'));
        expect(r.stores.filter(([id]) => r.bitStores.includes(id)).map(([, key]) => key)).toEqual(r.stores.filter(([, key]) => key.includes('|mask:')).map(([, key]) => key));
        const test = method === 'della' ? /^mask:gt\(add\(mul\(sub\(rowRanks\(sub\(input\d,input\d\)\),1\),[^,]+\),[^,]+\),random\d\)$/ : /^mask:gt\([\d.]+,random\d\)$/;
        expect(masks(r.stores).every((k) => test.test(k)), masks(r.stores).join(' ')).toBe(true);
      }
      for (const r of output) {
        const first = rescale.find((s) => s.spec.chunkIndex === r.spec.chunkIndex)!;
        expect(keys(r.hits)).toEqual(keys(first.stores));
        // Every keep test is a hit: nothing under it (ranks, random streams) is computed.
        const hit = new Set(r.hits.map(([id]) => id));
        expect(r.nodes.flatMap((n, id) => (n.op === 'gt' ? [id] : [])).every((id) => hit.has(id))).toBe(true);
        expect(r.inputs.every((i) => i === null)).toBe(true);
        expect(r.stores).toEqual([]);
      }
    });

    it('with room for the masks alone (not one input), the output pass still draws nothing', async () => {
      // Per worker 1440 bytes: a worker's masks take at most 3 · 360 + 144 (chunks 0, 2, 4 and 6:
      // see below), its smallest input 768 (bf16, of the last chunk).
      const { rescale, output } = await run(2 * 1440);
      for (const r of rescale) expect(keys(r.stores)).toEqual(masks(r.stores));
      expect(rescale.every((r) => masks(r.stores).length === others.length)).toBe(true);
      for (const r of output) expect(masks(r.hits)).toHaveLength(others.length);
    });

    it("inputs leave room for the masks of the worker's later chunks", async () => {
      // 6 chunks of 960 elements (a mask 120 bytes, a bf16 input 1920) and one of 384 (a mask 48
      // bytes); chunks 0, 2, 4 and 6 on one worker. Per worker: the masks of those 4 chunks and
      // one input, less a byte. Kept first come first, chunk 0's input would leave no room for
      // all of chunk 6's masks.
      const perWorker = 3 * (3 * 120) + 3 * 48 + 1920 - 1;
      const { rescale, output } = await run(2 * perWorker);
      expect(rescale.map((r) => r.spec.length)).toEqual([960, 960, 960, 960, 960, 960, 384]);
      for (const r of output) expect(masks(r.hits)).toHaveLength(others.length);
      // The worker with 3 chunks keeps an input all the same.
      expect(rescale.some((r) => keys(r.stores).length > masks(r.stores).length)).toBe(true);
    });
  });
}

describe('cross-pass cache of single-pass methods', () => {
  it('an output pass stores nothing: it is the last pass over its tensor', async () => {
    const sent: ChunkRequest[] = [];
    const pool = new WorkerPoolBackend({ workers: 2, spawn: (i) => recordingPort(workerUrl, sent, i), local: inThread, inThreadBelow: 0 });
    try {
      for (const method of ['linear', 'task_arithmetic']) {
        const c = CASES.find((x) => x.name === `${method} BF16 [64, 96] tiny`)!;
        expect(Buffer.from((await outcome(c, pool) as { bytes: Uint8Array }).bytes).equals(Buffer.from((references.get(c.name) as { bytes: Uint8Array }).bytes))).toBe(true);
      }
      expect(sent.length).toBeGreaterThan(4);
      expect(sent.every((r) => r.stores.length === 0 && r.hits.length === 0 && r.inputs.every((i) => i !== null))).toBe(true);
    } finally {
      await pool.dispose();
    }
  });
});

describe('worker failures', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'alloy-crash-'));
    writeFileSync(join(dir, 'throws.mjs'), `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => { throw new Error('boom in worker'); });\n`);
    writeFileSync(join(dir, 'exits.mjs'), `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(7));\n`);
    writeFileSync(join(dir, 'syntax.mjs'), `this is not javascript\n`);
  });

  for (const [file, message] of [
    ['throws.mjs', /CPU worker 1 of 2 stopped: boom in worker/],
    ['exits.mjs', /CPU worker 1 of 2 stopped: it exited with code 7/],
    ['syntax.mjs', /CPU worker \d of 2 stopped/],
  ] as const) {
    it(`a worker that ${file.replace('.mjs', '')} fails the merge with a clear error, no hang`, async () => {
      const pool = new WorkerPoolBackend({
        workers: 2,
        spawn: (i) => nodeWorkerPort(i === 0 || file === 'syntax.mjs' ? pathToFileURL(join(dir, file)) : workerUrl),
        local: inThread,
        inThreadBelow: 0,
      });
      try {
        const c = CASES.find((x) => x.name === 'linear BF16 [64, 96] tiny')!;
        await expect(runMethod('linear', c.inputs, { ...c.options, backend: pool })).rejects.toThrow(message);
        // The pool stays failed: later chunks are refused at once.
        await expect(runMethod('linear', c.inputs, { ...c.options, backend: pool })).rejects.toThrow(/CPU worker/);
      } finally {
        await pool.dispose();
      }
    });
  }

  it('a failing op in a worker rejects that chunk with its message', async () => {
    const pool = new WorkerPoolBackend({ workers: 1, spawn: () => nodeWorkerPort(workerUrl), local: inThread, inThreadBelow: 0 });
    try {
      const chunk = pool.beginChunk(
        { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: 4, rowStart: 0, rows: 1, cols: 4, totalRows: 1, seed: 1 },
        [{ bytes: new Uint8Array(16), dtype: 'F32', cols: 4 }],
      );
      const bogus = { kind: 'sum' as const, partial: 99 };
      await expect(chunk.readPartials([bogus])).rejects.toThrow();
    } finally {
      await pool.dispose();
    }
  });
});
