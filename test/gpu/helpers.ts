import type { ComputeBackend } from '../../src/backend';
import type { WebGpuBackend, WebGpuBackendOptions } from '../../src/gpu';
import { createNodeWebGpuBackend } from '../../src/gpu/node';
import { TensorJobRunner } from '../../src/engine/tensor-job-runner';
import type { TensorMerge } from '../../src/methods';
import type { TensorJob } from '../../src/plan/types';
import { encodeFromF32 } from '../../src/storage';
import type { ByteSource, FloatDtype } from '../../src/storage/types';

/**
 * Rules for GPU test files (docs/browser.md §5.1: dawn.node on SwiftShader has hung or crashed
 * when the JS thread blocked between GPU submissions):
 * - compute every CPU reference before the first device is created;
 * - give every await on the GPU a timeout (`within`);
 * - dispose devices in afterAll.
 */

/** `p`, or a rejection after `ms` naming `what`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A WebGPU backend on this machine's adapter (SwiftShader without a GPU). */
export function gpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  return within(createNodeWebGpuBackend({ syncTimeoutMs: 120_000, ...options }), 60_000, 'creating a WebGPU device');
}

export async function disposeAll(backends: (ComputeBackend | undefined)[]): Promise<void> {
  for (const b of backends) if (b) await within(b.dispose(), 30_000, 'disposing a backend');
}

/** f32 bit patterns, with every NaN mapped to one pattern (payloads may differ across backends). */
export function canonicalBits(values: Float32Array): Uint32Array {
  const bits = new Uint32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7fffffff) > 0x7f800000) bits[i] = 0x7fc00000;
  return bits;
}

/** Index and values of the first element whose canonical bits differ, or null. */
export function firstBitDifference(actual: Float32Array, expected: Float32Array): string | null {
  if (actual.length !== expected.length) return `length ${actual.length} ≠ ${expected.length}`;
  const a = canonicalBits(actual);
  const e = canonicalBits(expected);
  let count = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      count++;
      if (first < 0) first = i;
    }
  }
  return count === 0 ? null : `${count} of ${a.length} differ, first at ${first}: ${actual[first]} vs ${expected[first]}`;
}

/**
 * Largest distance in f32 ulps (ordered bit patterns; NaN must match NaN). `flushToZero`: a ±0
 * where a subnormal is expected counts as equal (WGSL lets implementations flush subnormals).
 */
export function maxUlpDistance(actual: Float32Array, expected: Float32Array, flushToZero = false): number {
  const key = (b: number): number => (b & 0x80000000 ? -(b & 0x7fffffff) : b);
  const a = canonicalBits(actual);
  const e = canonicalBits(expected);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const an = a[i] === 0x7fc00000, en = e[i] === 0x7fc00000;
    if (an || en) {
      if (an !== en) return Infinity;
      continue;
    }
    if (flushToZero && (a[i] & 0x7fffffff) === 0 && (e[i] & 0x7fffffff) < 0x00800000) continue;
    worst = Math.max(worst, Math.abs(key(a[i]) - key(e[i])));
  }
  return worst;
}

export interface JobInput {
  readonly values: Float32Array;
  readonly dtype: FloatDtype;
  readonly shape?: readonly number[];
}

export interface JobSpec {
  readonly name?: string;
  readonly shape: readonly number[];
  readonly inputs: readonly JobInput[];
  readonly dtype: FloatDtype;
  readonly budgetBytes: number;
  readonly seed?: number;
  readonly wholeRows?: boolean;
  /** Sources return views at an odd byte offset (safetensors data is only dtype-aligned). */
  readonly misaligned?: boolean;
}

/**
 * Runs `body` on a TensorJobRunner over in-memory inputs (the real engine chunking, prefetch and
 * reduction combining) and returns what it returned plus the bytes the output pass wrote.
 */
export async function runJob<T>(
  backend: ComputeBackend,
  spec: JobSpec,
  body: (t: TensorMerge) => Promise<T>,
): Promise<{ result: T; bytes: Uint8Array }> {
  const numel = spec.shape.reduce((a, b) => a * b, 1);
  const encoded = spec.inputs.map((i) => encodeFromF32(i.values, i.dtype));
  const sources: ByteSource[] = encoded.map((bytes, i) => ({
    name: `input${i}`,
    size: bytes.length,
    async read(offset: number, length: number) {
      if (!spec.misaligned) return bytes.slice(offset, offset + length);
      const padded = new Uint8Array(length + 1);
      padded.set(bytes.subarray(offset, offset + length), 1);
      return padded.subarray(1);
    },
  }));
  const job: TensorJob = {
    name: spec.name ?? 'model.layers.0.mlp.down_proj.weight',
    shape: [...spec.shape],
    dtype: spec.dtype,
    method: 'test',
    baseIndex: -1,
    params: {},
    isEmbed: false,
    byteLength: numel * (spec.dtype === 'F32' ? 4 : 2),
    inputs: spec.inputs.map((input, i) => ({
      model: `m${i}`,
      params: {},
      tensor: {
        name: 'x',
        dtype: input.dtype,
        shape: [...(input.shape ?? spec.shape)],
        file: `input${i}`,
        offset: 0,
        byteLength: encoded[i].length,
      },
    })),
  };
  const parts: Uint8Array[] = [];
  const runner = new TensorJobRunner(job, {
    backend,
    source: async (model) => sources[Number(model.slice(1))],
    seed: spec.seed ?? 1234,
    budgetBytes: spec.budgetBytes,
    wholeRows: spec.wholeRows,
    warn: () => undefined,
    onRead: () => undefined,
    onOutput: () => undefined,
    write: async (b) => {
      parts.push(b.slice());
    },
  });
  const result = await body(runner);
  const bytes = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return { result, bytes };
}
