import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebGpuBackend } from '../../src/gpu';
import { METHODS, type MergeMethod } from '../../src/methods';
import type { FloatDtype } from '../../src/storage/types';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod, type ArrayInput, type RunOptions } from '../helpers/run-method';
import { ulp } from '../helpers/ulp';
import { disposeAll, gpuBackend, within } from './helpers';
import { METHOD_GLOBAL_PARAMS as GLOBALS } from '../helpers/method-params';

/**
 * Every merge method on the WebGPU backend against the CPU backend, through the real job runner:
 * bf16, f16 and f32 tensors (2-D and a long 1-D one), at a natural chunk size on a device with
 * the adapter's limits, and at a 64 KiB budget (many chunks per tensor) on a device with WebGPU's
 * minimum limits and 4 storage buffers per stage (many-input operations in several passes) that
 * ranks rows with the bitonic sort (the first device uses the adapter's default).
 * Outputs agree within 1 ulp of the output dtype; DARE and DELLA (random masks) byte for byte.
 */

const DTYPES: FloatDtype[] = ['BF16', 'F16', 'F32'];
const SHAPES = [[64, 96], [3000]];
const NATURAL = 1 << 24;
const TINY = 64 * 1024;

const MODEL_PARAMS = (method: MergeMethod, k: number): Record<string, number> => {
  const names = new Set(method.params.filter((p) => p.scope === 'model').map((p) => p.name));
  const params: Record<string, number> = {};
  if (names.has('weight')) params.weight = [0.6, 0.3, 0.5, 0.2, 0.45][k % 5];
  if (names.has('density')) params.density = [0.5, 0.7, 0.3, 0.6][k % 4];
  if (names.has('epsilon')) params.epsilon = 0.1;
  if (names.has('gamma')) params.gamma = 0.05;
  if (names.has('scale')) params.scale = 0.5;
  return params;
};

interface Case {
  readonly name: string;
  readonly method: MergeMethod;
  readonly inputs: ArrayInput[];
  readonly options: RunOptions;
  readonly dtype: FloatDtype;
  readonly budget: 'natural' | 'tiny';
}

function casesFor(method: MergeMethod): Case[] {
  const hasBase = method.base !== 'member';
  // Enough models that a 4-storage-buffer device needs several passes (5 inputs with a base).
  const wanted = hasBase ? 5 : 4;
  const count = Math.max(method.minInputs ?? 1, Math.min(method.maxInputs ?? wanted, wanted));
  const out: Case[] = [];
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    const base = randomArray(n, 1, 0.02);
    const models = Array.from({ length: count }, (_, k) => (hasBase && k === 1 ? base : perturbed(base, k + 2, 0.005)));
    for (const dtype of DTYPES) {
      for (const budget of ['natural', 'tiny'] as const) {
        const inputs: ArrayInput[] = models.map((values, k) => ({ values, params: MODEL_PARAMS(method, k), dtype }));
        const options: RunOptions = {
          baseIndex: hasBase && count > 1 ? 1 : hasBase ? 0 : -1,
          shape,
          dtype,
          params: GLOBALS[method.name] ?? {},
          budgetBytes: budget === 'natural' ? NATURAL : TINY,
          seed: 4242,
        };
        out.push({ name: `${method.name} ${dtype} [${shape.join(', ')}] ${budget}`, method, inputs, options, dtype, budget });
      }
    }
  }
  return out;
}

const CASES = METHODS.flatMap(casesFor);
const RANDOM_MASKS = /^(dare|della)/;

/** Worst |gpu − cpu| in ulps of the output dtype (NaN must match NaN). */
function worstUlps(gpu: Float32Array, cpu: Float32Array, dtype: FloatDtype): { worst: number; at: number } {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < cpu.length; i++) {
    if (Number.isNaN(cpu[i]) || Number.isNaN(gpu[i])) {
      if (Number.isNaN(cpu[i]) !== Number.isNaN(gpu[i])) return { worst: Infinity, at: i };
      continue;
    }
    const d = Math.abs(gpu[i] - cpu[i]) / ulp(cpu[i], dtype);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  return { worst, at };
}

const references = new Map<string, { values: Float32Array; bytes: Uint8Array }>();

beforeAll(async () => {
  // Every CPU reference before the first GPU device (see helpers.ts).
  for (const c of CASES) references.set(c.name, await runMethod(c.method.name, c.inputs, c.options));
});

describe('every method: WebGPU = CPU', () => {
  let natural: WebGpuBackend | undefined;
  let tiny: WebGpuBackend | undefined;
  beforeAll(async () => {
    natural = await gpuBackend({ budgetBytes: NATURAL });
    // Three chunks in flight, finishing in order: the pipelined path at the smallest limits.
    tiny = await gpuBackend({ budgetBytes: TINY, limits: 'minimum', maxStorageBuffersPerStage: 4, rowRanks: 'bitonic', maxWorkgroupsPerDimension: 3, chunksInFlight: 3 });
  });
  afterAll(async () => {
    await disposeAll([natural, tiny]);
  });

  it('covers every method in METHODS', () => {
    expect(new Set(CASES.map((c) => c.method.name))).toEqual(new Set(METHODS.map((m) => m.name)));
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const backend = c.budget === 'natural' ? natural! : tiny!;
      const gpu = await within(runMethod(c.method.name, c.inputs, { ...c.options, backend }), 300_000, c.name);
      const cpu = references.get(c.name)!;
      if (RANDOM_MASKS.test(c.method.name)) {
        // Same seed, same masks: the same bytes.
        const differing = gpu.bytes.findIndex((b, i) => b !== cpu.bytes[i]);
        expect(differing, `first differing byte of ${c.name}`).toBe(-1);
      }
      const { worst, at } = worstUlps(gpu.values, cpu.values, c.dtype);
      expect(worst, `${c.name}: element ${at}: gpu ${gpu.values[at]}, cpu ${cpu.values[at]}`).toBeLessThanOrEqual(1);
    });
  }
});
